"""What happens to one webhook delivery, apart from HTTP: verify, check, publish, answer.

Nothing authentic is lost: a delivery is answered 200 only once the broker confirmed its
message, and an authentic body that fails its schema, or is not JSON, or holds text that cannot be
stored as UTF-8, is parked on the bus with the errors. Each answer means what it says:
- 200: stored (confirmed by the broker), for import or for review;
- 400: refused for good (nested too deeply, a topic exsync cannot carry): sending it again is useless;
- 401: not signed by a configured secret;
- 503: not confirmed in time: it may or may not be stored; WooCommerce's next delivery or the
  reconciler settles it (everything downstream is idempotent).
"""

import dataclasses
import json
import logging
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any, NoReturn, Protocol

from exsync.bus import INVALID_QUEUE, WOO_EXCHANGE, BusError
from exsync.bus.events import RoutedEvent, invalid_event, woo_event
from exsync.bus.protocols import EventPublisher
from exsync.bus.topology import INVALID_ROUTING_PREFIX
from exsync.metrics import Metrics
from exsync.schemas.config import DEFAULT_MAX_JSON_DEPTH
from exsync.webhooks.signature import verify_signature

__all__ = ["Receiver", "Outcome", "MAX_TOPIC_CHARS", "OWN_TOPIC_PREFIXES", "json_depth_exceeds", "topic_label"]

log = logging.getLogger(__name__)

KNOWN_TOPIC = re.compile(r"^(order|customer|product|coupon)\.(created|updated|deleted|restored)$")
DEFAULT_SOURCE = "woocommerce:unknown"
# A routing key is an AMQP short string (255 bytes) and the parked copy's key adds `invalid.`;
# WooCommerce's longest topics (`action.<hook>`) are far shorter.
MAX_TOPIC_CHARS = 200
# Routing-key prefixes exsync uses for its own messages on the woo exchange: a delivery's topic
# must never route there (a signed `invalid.order` would otherwise land on the parking queue).
OWN_TOPIC_PREFIXES = (INVALID_ROUTING_PREFIX,)
# A JSON string, quotes included: written "unrolled" (runs of plain characters, then one escape)
# so the engine takes a run in one step instead of trying two alternatives per character.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether JSON `body` (bytes) nests arrays/objects deeper than `limit`, checked before parsing.

    No body nests deeper than it has opening brackets, so most bodies are cleared by counting
    them (two passes in C). Otherwise strings are cut out first (a bracket in a string does not
    nest), then only brackets are counted, so a 5 MB body costs two passes in C and a loop over
    its brackets alone.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for byte in _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS):
        if byte in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


UNSTORABLE_TEXT = "holds text that is not valid Unicode (a lone surrogate): kept with it escaped"


class _Headers(Protocol):
    """A delivery's headers, names looked up case-insensitively (werkzeug's EnvironHeaders)."""

    def get(self, key: str, /) -> str | None: ...


def _no_constants(name: str) -> NoReturn:
    # Python's json reads NaN and Infinity, which are not JSON and never money.
    raise ValueError(f"{name} is not JSON")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outcome:
    """The answer to a delivery and what was done with it."""

    status: int
    outcome: str
    message: str
    topic: str = "unknown"


def topic_label(topic: str | None) -> str:
    """A metrics label for a topic: the known ones as they are, the rest folded, never free text."""
    if topic and KNOWN_TOPIC.match(topic):
        return topic
    if topic and topic.startswith("action."):
        return "action"
    return "other"


def _delivery_fields(headers: _Headers) -> dict[str, str]:
    """WooCommerce's ids of a delivery, as log fields."""
    fields = {"delivery_id": headers.get("X-WC-Webhook-Delivery-ID"), "webhook_id": headers.get("X-WC-Webhook-ID"),
              "topic": headers.get("X-WC-Webhook-Topic")}
    return {name: value for name, value in fields.items() if value}


def _is_ping(headers: _Headers, body: bytes) -> bool:
    """WooCommerce's ping: a form body `webhook_id=N`, sent with no signature and no topic."""
    if headers.get("X-WC-Webhook-Signature") or headers.get("X-WC-Webhook-Topic"):
        return False
    if len(body) > 64:
        return False
    try:
        fields = urllib.parse.parse_qs(body.decode("ascii"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return False
    return list(fields) == ["webhook_id"] and fields["webhook_id"][0].isdigit()


class Receiver:
    """Turns a signed WooCommerce delivery into a confirmed message on exchange `woo`."""

    def __init__(self, *, secrets: Iterable[str], publisher: EventPublisher, metrics: Metrics | None = None,
                 max_json_depth: int = DEFAULT_MAX_JSON_DEPTH) -> None:
        self.secrets = tuple(secrets)
        self.publisher = publisher
        self.metrics = metrics or Metrics()
        self.max_json_depth = max_json_depth

    def receive(self, *, headers: _Headers, body: bytes) -> Outcome:
        """`headers` must look names up case-insensitively (werkzeug's do)."""
        outcome = self._receive(headers, body)
        self.metrics.inc("webhook_requests", topic=outcome.topic, outcome=outcome.outcome)
        return outcome

    def _unauthorized(self, reason: str, message: str, headers: _Headers) -> Outcome:
        self.metrics.inc("webhook_unauthorized", reason=reason)
        log.warning("webhook refused: %s", message, extra={**_delivery_fields(headers), "outcome": "unauthorized"})
        return Outcome(status=401, outcome="unauthorized", message=message)

    def _receive(self, headers: _Headers, body: bytes) -> Outcome:
        if _is_ping(headers, body):
            log.info("webhook ping answered (webhook %s)", body.decode("ascii").partition("=")[2])
            return Outcome(status=200, outcome="ping", message="pong")
        if not self.secrets:
            return self._unauthorized("no_secrets", "no webhook secret is configured (EXSYNC_WEBHOOK_SECRETS)",
                                      headers)
        signature = headers.get("X-WC-Webhook-Signature")
        if not signature:
            return self._unauthorized("missing_signature", "no X-WC-Webhook-Signature header", headers)
        if not verify_signature(body, signature, self.secrets):
            return self._unauthorized("bad_signature", "the signature does not match the body under any secret",
                                      headers)

        topic = (headers.get("X-WC-Webhook-Topic") or "").strip().lower()
        label = topic_label(topic)
        refused = self._refused_topic(topic)
        if refused:
            log.warning("webhook refused: %s", refused)
            return Outcome(status=400, outcome="refused", message=refused, topic=label)
        if json_depth_exceeds(body, self.max_json_depth):
            log.warning("webhook topic=%s refused: JSON nested deeper than %d", topic or "?", self.max_json_depth)
            return Outcome(status=400, outcome="refused", topic=label,
                           message=f"the body nests deeper than {self.max_json_depth} levels")

        source = headers.get("X-WC-Webhook-Source") or DEFAULT_SOURCE
        trace = {
            "wcwebhookid": headers.get("X-WC-Webhook-ID") or "",
            "wcdeliveryid": headers.get("X-WC-Webhook-Delivery-ID") or "",
        }
        try:
            try:
                payload = json.loads(body, parse_constant=_no_constants)
            except (ValueError, UnicodeDecodeError) as error:
                # Authentic but unreadable: kept as received for a person to look at.
                return self._park(topic, label, source, trace, body, errors={"body": [f"not JSON: {error}"]},
                                  headers=headers)
            if not isinstance(payload, dict):
                return self._park(topic, label, source, trace, body, errors={"body": ["not a JSON object"]},
                                  headers=headers)
            routed = woo_event(topic=topic, payload=payload, source=source, text=_utf8(body), **trace)
            if routed.parked:
                return self._park(topic, label, source, trace, body, errors=routed.errors, payload=payload,
                                  headers=headers, routed=routed)
            try:
                self.publisher.publish(exchange=WOO_EXCHANGE, routing_key=routed.routing_key, event=routed.event)
            except UnicodeEncodeError:
                # A lone surrogate (`\\ud800`) parses but is no UTF-8: the body is kept as received.
                return self._park(topic, label, source, trace, body, errors={}, payload=payload, headers=headers)
        except BusError as error:
            log.error("webhook topic=%s not confirmed, answering 503 (it may or may not be stored): %s", topic, error,
                      extra={**_delivery_fields(headers), "outcome": "unavailable"})
            return Outcome(status=503, outcome="unavailable", topic=label,
                           message="the message was not confirmed: it may or may not be stored")
        return Outcome(status=200, outcome="accepted", message="stored", topic=label)

    @staticmethod
    def _refused_topic(topic: str) -> str | None:
        """Why a topic can never be carried (None when it can)."""
        if len(topic) > MAX_TOPIC_CHARS:
            return f"the topic is longer than {MAX_TOPIC_CHARS} characters"
        if topic.partition(".")[0] in OWN_TOPIC_PREFIXES:
            return f"the topic {topic!r} is in exsync's own namespace"
        return None

    def _park(self, topic: str, label: str, source: str, trace: dict[str, str], body: bytes, *,
              errors: dict[str, Any], payload: dict[str, Any] | None = None, headers: _Headers | None = None,
              routed: RoutedEvent | None = None) -> Outcome:
        """Stores an authentic delivery for review: the parsed `payload`, or else the body as received."""
        log.warning("webhook topic=%s failed its checks, parked on %s: %s", topic, INVALID_QUEUE, _escaped(errors),
                    extra={**_delivery_fields(headers or {}), "queue": INVALID_QUEUE, "outcome": "parked"})
        if routed is None:
            # Bytes that are no UTF-8 become \xNN escapes; the rest is the signed body as it came.
            routed = invalid_event(topic=topic, errors=errors, source=source, body=payload,
                                   raw=None if payload is not None else body.decode("utf-8", "backslashreplace"),
                                   **trace)
        try:
            self.publisher.publish(exchange=WOO_EXCHANGE, routing_key=routed.routing_key, event=routed.event)
        except UnicodeEncodeError:
            event = routed.event
            data = {**event["data"], "errors": {**errors, "_text": [UNSTORABLE_TEXT]}}
            self.publisher.publish(exchange=WOO_EXCHANGE, routing_key=routed.routing_key,
                                   event={**event, "subject": None, "data": _escaped(data)})
        return Outcome(status=200, outcome="parked", message="stored for review: it failed its checks", topic=label)


def _utf8(body: bytes) -> str | None:
    """`body` as the text JSON parsed it from, or None when it is no plain UTF-8 (then the event is
    written out from the parsed value, as for any other publisher)."""
    if json.detect_encoding(body) != "utf-8":
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _escaped(value: object) -> object:
    """`value` with every lone surrogate in its strings written as a `\\udXXX` escape (storable)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_escaped(key): _escaped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_escaped(item) for item in value]
    return value
