"""What happens to one webhook delivery, apart from HTTP: verify, check, publish, answer.

Nothing authentic is lost: a delivery is answered 200 only once the broker confirmed its
message, and an authentic body that fails its schema is parked on the bus with the errors.
"""

import dataclasses
import json
import logging
import re
import urllib.parse

from exsync.bus import INVALID_QUEUE, WOO_EXCHANGE, BusError, new_event
from exsync.bus.topology import INVALID_ROUTING_PREFIX
from exsync.metrics import Metrics
from exsync.schemas.woo import TOPIC_SHAPE, validate_body
from exsync.webhooks.signature import verify_signature

__all__ = ["Receiver", "Outcome", "topic_label"]

log = logging.getLogger(__name__)

KNOWN_TOPIC = re.compile(r"^(order|customer|product|coupon)\.(created|updated|deleted|restored)$")
DEFAULT_SOURCE = "woocommerce:unknown"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outcome:
    """The answer to a delivery and what was done with it."""

    status: int
    outcome: str
    message: str
    topic: str = "unknown"


def topic_label(topic):
    """A metrics label for a topic: the known ones as they are, the rest folded, never free text."""
    if topic and KNOWN_TOPIC.match(topic):
        return topic
    if topic and topic.startswith("action."):
        return "action"
    return "other"


def _delivery_fields(headers):
    """WooCommerce's ids of a delivery, as log fields."""
    fields = {"delivery_id": headers.get("X-WC-Webhook-Delivery-ID"), "webhook_id": headers.get("X-WC-Webhook-ID"),
              "topic": headers.get("X-WC-Webhook-Topic")}
    return {name: value for name, value in fields.items() if value}


def _is_ping(headers, body):
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

    def __init__(self, *, secrets, publisher, metrics=None):
        self.secrets = tuple(secrets)
        self.publisher = publisher
        self.metrics = metrics or Metrics()

    def receive(self, *, headers, body):
        """`headers` must look names up case-insensitively (werkzeug's do)."""
        outcome = self._receive(headers, body)
        self.metrics.inc("webhook_requests", topic=outcome.topic, outcome=outcome.outcome)
        return outcome

    def _unauthorized(self, reason, message, headers):
        self.metrics.inc("webhook_unauthorized", reason=reason)
        log.warning("webhook refused: %s", message, extra={**_delivery_fields(headers), "outcome": "unauthorized"})
        return Outcome(status=401, outcome="unauthorized", message=message)

    def _receive(self, headers, body):
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
        try:
            payload = json.loads(body)
        except ValueError:
            log.warning("webhook topic=%s: authentic body is not JSON", topic or "?")
            return Outcome(status=400, outcome="malformed", message="the body is not JSON", topic=label)
        if not isinstance(payload, dict):
            return Outcome(status=400, outcome="malformed", message="the body is not a JSON object", topic=label)

        source = headers.get("X-WC-Webhook-Source") or DEFAULT_SOURCE
        trace = {
            "wcwebhookid": headers.get("X-WC-Webhook-ID") or "",
            "wcdeliveryid": headers.get("X-WC-Webhook-Delivery-ID") or "",
        }
        if not TOPIC_SHAPE.match(topic):
            errors = {"X-WC-Webhook-Topic": [f"missing or not a topic: {topic!r}"]}
        else:
            errors = validate_body(topic, payload)
        try:
            if errors:
                return self._park(topic, label, source, payload, errors, trace, headers)
            subject = payload.get("id", payload.get("arg"))
            event = new_event(type=f"woo.{topic}", source=source, subject=subject, data=payload, **trace)
            self.publisher.publish(exchange=WOO_EXCHANGE, routing_key=topic, event=event)
        except BusError as error:
            log.error("webhook topic=%s not stored, answering 503: %s", topic, error,
                      extra={**_delivery_fields(headers), "outcome": "unavailable"})
            return Outcome(status=503, outcome="unavailable", message="the message could not be stored", topic=label)
        return Outcome(status=200, outcome="accepted", message="stored", topic=label)

    def _park(self, topic, label, source, payload, errors, trace, headers):
        event = new_event(
            type="woo.invalid",
            source=source,
            subject=payload.get("id"),
            data={"topic": topic, "errors": errors, "body": payload},
            **trace,
        )
        routing_key = f"{INVALID_ROUTING_PREFIX}.{topic if TOPIC_SHAPE.match(topic) else 'unknown'}"
        self.publisher.publish(exchange=WOO_EXCHANGE, routing_key=routing_key, event=event)
        log.warning("webhook topic=%s failed its schema, parked on %s: %s", topic, INVALID_QUEUE, errors,
                    extra={**_delivery_fields(headers), "event_id": event["id"], "queue": INVALID_QUEUE,
                           "outcome": "parked"})
        return Outcome(status=200, outcome="parked", message="stored for review: it failed validation", topic=label)
