"""Events onto the bus: the one way an envelope is built and published, and the one place a
WooCommerce body is checked and routed (published as `woo.<topic>`, or parked as `woo.invalid`).

The webhook receiver and the reconciler both route through `woo_event()`, so a body the shop sends
either way lands in the same queue with the same envelope.
"""

import dataclasses
import json
import re
from typing import Any

from exsync.bus.protocols import EventPublisher
from exsync.bus.topology import INVALID_ROUTING_PREFIX
from exsync.schemas.envelope import new_event
from exsync.schemas.woo import TOPIC_SHAPE, validate_body

__all__ = ["Envelope", "RoutedEvent", "invalid_event", "publish_event", "woo_event"]

# A \uD800-\uDFFF escape: half of a surrogate pair, or a lone one that cannot be stored as UTF-8.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


class Envelope(dict):
    """An event whose JSON is already written (`encoded`, UTF-8): a publisher sends those bytes
    instead of writing the event again. The receiver's: the signed body spliced in as `data`."""

    encoded: bytes


@dataclasses.dataclass(frozen=True, kw_only=True)
class RoutedEvent:
    """Where a WooCommerce body goes: its routing key on exchange `woo` and its envelope; `errors`
    are its schema's (empty unless it is parked as `woo.invalid`)."""

    routing_key: str
    event: dict[str, Any]
    errors: dict[str, Any]

    @property
    def parked(self) -> bool:
        return bool(self.errors)


def publish_event(publisher: EventPublisher, *, exchange: str, routing_key: str, type: str, source: str,
                  subject: object, data: Any, **attributes: Any) -> dict[str, Any]:
    """Builds an envelope (`new_event`) and publishes it, returning once the broker confirmed it;
    returns the envelope. `attributes`: `id`, `time` or CloudEvents extensions."""
    event = new_event(type=type, source=source, subject=subject, data=data, **attributes)
    publisher.publish(exchange=exchange, routing_key=routing_key, event=event)
    return event


def invalid_event(*, topic: str, errors: dict[str, Any], source: str, body: dict[str, Any] | None = None,
                  raw: str | None = None, **attributes: Any) -> RoutedEvent:
    """A body parked for a person (`woo.invalid`) with why: the parsed `body`, else the `raw` text."""
    data: dict[str, Any] = {"topic": topic, "errors": errors}
    if body is not None:
        data["body"] = body
    else:
        data["raw"] = raw
    routing_key = f"{INVALID_ROUTING_PREFIX}.{topic if TOPIC_SHAPE.match(topic) else 'unknown'}"
    event = new_event(type="woo.invalid", source=source, subject=body.get("id") if body is not None else None,
                      data=data, **attributes)
    return RoutedEvent(routing_key=routing_key, event=event, errors=errors)


def woo_event(*, topic: str, payload: dict[str, Any], source: str, text: str | None = None,
              **attributes: Any) -> RoutedEvent:
    """Validates a WooCommerce body under its topic, then routes it: `woo.<topic>` with routing key
    `topic`, or, when the topic or the body fails its checks, parked as `woo.invalid`.

    `text`: the JSON `payload` was parsed from, when the caller has it (the receiver's signed body):
    the envelope is written around it rather than writing the payload out again.
    """
    if not TOPIC_SHAPE.match(topic):
        errors = {"X-WC-Webhook-Topic": [f"missing or not a topic: {topic!r}"]}
    else:
        errors = validate_body(topic, payload)
    if errors:
        return invalid_event(topic=topic, errors=errors, source=source, body=payload, **attributes)
    event = new_event(type=f"woo.{topic}", source=source, subject=payload.get("id", payload.get("arg")),
                      data=payload, **attributes)
    if text is not None:
        event = _spliced(event, text)
    return RoutedEvent(routing_key=topic, event=event, errors={})


def _spliced(event: dict[str, Any], text: str) -> dict[str, Any]:
    """`event` as an Envelope whose JSON holds `text` verbatim as its data (it parses to the same
    value). Left as it is when `text` escapes a surrogate: a lone one must fail to encode, as it
    does when the event is written out (the receiver parks it), and pairs are rare."""
    if _SURROGATE_ESCAPE.search(text):
        return event
    head = {name: value for name, value in event.items() if name != "data"}
    try:
        written = json.dumps(head, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        return event
    envelope = Envelope(event)
    envelope.encoded = written[:-1] + b',"data":' + data + b"}"
    return envelope
