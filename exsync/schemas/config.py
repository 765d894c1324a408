"""The YAML configuration file: rules and mappings, validated before anything runs."""

from marshmallow import Schema, ValidationError, fields, validate

__all__ = ["ConfigSchema", "validate_config"]

DEFAULT_RETRY_DELAYS_SECONDS = (5, 30, 300)
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_PREFETCH = 10
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024


class BusSchema(Schema):
    prefetch = fields.Integer(load_default=DEFAULT_PREFETCH, validate=validate.Range(min=1, max=1000))
    retry_delays_seconds = fields.List(
        fields.Integer(validate=validate.Range(min=1)),
        load_default=list(DEFAULT_RETRY_DELAYS_SECONDS),
        validate=validate.Length(min=1),
    )
    max_attempts = fields.Integer(load_default=DEFAULT_MAX_ATTEMPTS, validate=validate.Range(min=1))


class WebhookSchema(Schema):
    max_body_bytes = fields.Integer(
        load_default=DEFAULT_MAX_BODY_BYTES, validate=validate.Range(min=1024)
    )


class ConfigSchema(Schema):
    bus = fields.Nested(BusSchema, load_default=lambda: BusSchema().load({}))
    webhook = fields.Nested(WebhookSchema, load_default=lambda: WebhookSchema().load({}))


def _flatten(messages, prefix=""):
    """Turns marshmallow's nested error dict into (dotted.path, message) pairs."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        for message in messages:
            yield prefix or "<root>", message
    else:
        for index, value in enumerate(messages):
            yield from _flatten(value, f"{prefix}[{index}]")


def validate_config(raw):
    """Returns (config, problems): the loaded config, or None with every problem found."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return None, [("<root>", "the configuration must be a mapping")]
    try:
        return ConfigSchema().load(raw), []
    except ValidationError as error:
        return None, sorted(_flatten(error.messages))
