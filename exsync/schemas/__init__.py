"""marshmallow schemas: WooCommerce payloads in, event envelopes on the bus, the config file."""

from exsync.schemas.config import ConfigSchema, validate_config
from exsync.schemas.envelope import EnvelopeSchema, new_event

__all__ = ["ConfigSchema", "EnvelopeSchema", "new_event", "validate_config"]
