"""marshmallow schemas: WooCommerce payloads in, event envelopes on the bus, the config file."""

from exsync.schemas.config import ConfigSchema, validate_config

__all__ = ["ConfigSchema", "validate_config"]
