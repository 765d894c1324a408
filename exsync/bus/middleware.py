"""Cross-cutting concerns of the consume loop, as small hooks with no-op defaults."""

import logging
import time
from typing import TYPE_CHECKING, Any

from exsync.metrics import Metrics

if TYPE_CHECKING:  # the consumer imports this module: the Message type is for annotations only
    from exsync.bus.consumer import Message

__all__ = ["Middleware", "LoggingMiddleware", "MetricsMiddleware", "OUTCOMES", "message_fields"]

OUTCOMES = ("ok", "retried", "parked")


class Middleware:
    """Hooks around each message; override what you need."""

    def before_process(self, message: "Message") -> None:
        pass

    def after_process(self, message: "Message", *, outcome: str, error: BaseException | None = None) -> None:
        """Called once the message's fate is settled: outcome is one of OUTCOMES."""


def message_fields(message: "Message", outcome: str | None = None) -> dict[str, Any]:
    """The log fields (exsync.logs.FIELDS) that tie a line to a message and its delivery."""
    event = message.event or {}
    fields = {"event_id": message.event_id, "queue": message.queue, "attempt": message.attempt,
              "subject": event.get("subject"), "delivery_id": event.get("wcdeliveryid") or None,
              "webhook_id": event.get("wcwebhookid") or None}
    if str(event.get("type") or "").startswith("woo.order."):
        fields["order_id"] = event.get("subject")
    if outcome is not None:
        fields["outcome"] = outcome
    return {name: value for name, value in fields.items() if value is not None}


class LoggingMiddleware(Middleware):
    def __init__(self, *, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger("exsync.bus.consumer")

    def after_process(self, message: "Message", *, outcome: str, error: BaseException | None = None) -> None:
        fields = message_fields(message, outcome)
        if outcome == "retried":
            self.log.warning("queue=%s event=%s attempt=%d failed, retrying: %s",
                             message.queue, message.event_id, message.attempt, error, extra=fields)
        elif outcome == "parked":
            self.log.error("queue=%s event=%s attempt=%d failed, parked on the dead queue: %s",
                           message.queue, message.event_id, message.attempt, error, extra=fields)
        else:
            self.log.debug("queue=%s event=%s handled", message.queue, message.event_id, extra=fields)


class MetricsMiddleware(Middleware):
    def __init__(self, *, metrics: Metrics | None = None) -> None:
        self.metrics = metrics or Metrics()

    def before_process(self, message: "Message") -> None:
        message.started_at = time.perf_counter()

    def after_process(self, message: "Message", *, outcome: str, error: BaseException | None = None) -> None:
        self.metrics.observe("bus_handler_duration_seconds", time.perf_counter() - message.started_at,
                             queue=message.queue)
        self.metrics.inc("bus_messages_consumed", queue=message.queue, outcome=outcome)
        if message.replayed:
            # Counted where it is handled, in a process Prometheus scrapes, with how it went.
            self.metrics.inc("dead_letters_replayed", queue=message.queue, outcome=outcome)
        if outcome == "retried":
            self.metrics.inc("bus_messages_retried", queue=message.queue)
        elif outcome == "parked":
            self.metrics.inc("bus_messages_parked", queue=message.queue)
