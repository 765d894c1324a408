"""The CloudEvents envelope every message on the bus travels in."""

import datetime
import uuid
from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validate

__all__ = ["EnvelopeSchema", "new_event", "SPECVERSION"]

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"


class EnvelopeSchema(Schema):
    """Validates an envelope read off the bus; unknown extension attributes are let through."""

    class Meta:
        unknown = EXCLUDE

    specversion = fields.String(required=True, validate=validate.Equal(SPECVERSION))
    id = fields.String(required=True, validate=validate.Length(min=1))
    source = fields.String(required=True, validate=validate.Length(min=1))
    type = fields.String(required=True, validate=validate.Length(min=1))
    time = fields.String(required=True)
    subject = fields.String(load_default=None, allow_none=True)
    datacontenttype = fields.String(load_default=CONTENT_TYPE)
    data = fields.Raw(load_default=None, allow_none=True)


def new_event(*, type: str, source: str, subject: object, data: Any, id: str | None = None, time: str | None = None,
              **extensions: Any) -> dict[str, Any]:
    """Builds an envelope; `extensions` become extra CloudEvents attributes (lower-case names)."""
    return {
        "specversion": SPECVERSION,
        "id": id or str(uuid.uuid4()),
        "source": source,
        "type": type,
        "time": time or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
        "subject": None if subject is None else str(subject),
        "datacontenttype": CONTENT_TYPE,
        "data": data,
        **extensions,
    }
