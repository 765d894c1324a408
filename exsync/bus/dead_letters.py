"""Parked messages a person can see, replay and drop: `<queue>.dead` and `woo.invalid`.

Reading a quorum queue without losing what is read: every message is taken with `basic_get`
(unacknowledged), and one that stays is published back to the same queue and confirmed before
the original is acknowledged. A requeue (`basic_nack`) would be shorter, but on RabbitMQ 4 it
counts against a quorum queue's delivery limit (20 by default), and a dead queue has nowhere to
dead-letter to: listing the queue twenty times would drop its messages. The cost is order: a
listed queue is rotated, not reordered, so it reads the same the next time.

A replay goes back to the queue the message was parked from with its attempt count reset (no
`x-exsync-attempt` header: attempt 1) and the failure it had appended to `x-exsync-history`, so
the next failure is retried as a new message's would be. A `woo.invalid` message is validated
again against the current schema and, if it passes, published to exchange `woo` under its topic,
as the receiver would have; one that still fails stays parked with the new errors.
"""

import builtins
import dataclasses
import datetime
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

import pika
import pika.exceptions

from exsync.bus.connection import open_connection
from exsync.bus.consumer import ATTEMPT_HEADER, ERROR_HEADER, FAILED_AT_HEADER, HISTORY_HEADER, QUEUE_HEADER
from exsync.bus.errors import BusError, MessageUnroutable, PublishNotConfirmed
from exsync.bus.events import woo_event
from exsync.bus.topology import INVALID_QUEUE, WOO_EXCHANGE, Topology, dead_queue_name
from exsync.metrics import Metrics
from exsync.schemas.woo import TOPIC_SHAPE

__all__ = ["DeadLetter", "DeadLetters", "parked_queue_names"]

log = logging.getLogger(__name__)

KEEP, REPLAY, DROP = "keep", "replay", "drop"


def parked_queue_names(topology: Topology) -> list[str]:
    """Every queue a message is parked on: each consuming queue's `.dead`, and `woo.invalid`."""
    return [dead_queue_name(spec.name) for spec in topology.queues] + [INVALID_QUEUE]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeadLetter:
    """One parked message as an operator sees it."""

    id: str
    queue: str
    subject: str | None
    type: str | None
    routing_key: str
    attempts: int
    last_error: str
    failed_at: str | None
    replays: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _text(value: object) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _event(body: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(body)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _message_id(properties: Any, body: bytes) -> str:
    """The message's id (the envelope's), or a digest of a body that has none."""
    if properties.message_id:
        return properties.message_id
    event = _event(body) or {}
    return str(event.get("id") or "sha256:" + hashlib.sha256(body).hexdigest()[:16])


def _invalid_errors(event: dict[str, Any] | None) -> str:
    errors = ((event or {}).get("data") or {}).get("errors")
    return json.dumps(errors, sort_keys=True)[:500] if errors else "failed validation"


class DeadLetters:
    """List, replay and drop the messages parked on one queue of `topology`."""

    def __init__(self, *, url: str, topology: Topology, metrics: Metrics | None = None,
                 clock: Callable[[], datetime.datetime] | None = None) -> None:
        self.url = url
        self.topology = topology
        self.metrics = metrics or Metrics()
        self.clock = clock or (lambda: datetime.datetime.now(datetime.timezone.utc))

    def parked_queue(self, name: str) -> str:
        """`Q` or `Q.dead` -> `Q.dead` (Q a consuming queue); the invalid-delivery queue as it is."""
        names = parked_queue_names(self.topology)
        if name in names:
            return name
        if dead_queue_name(name) in names:
            return dead_queue_name(name)
        raise BusError(f"no parked queue {name!r}; one of {', '.join(names)}")

    # `list` names this method inside the class: the signatures after it say builtins.list.
    def list(self, queue: str, *, limit: int | None = None) -> list[DeadLetter]:
        """The messages parked on `queue`, oldest first, every one left in place."""
        queue = self.parked_queue(queue)
        seen: list[DeadLetter] = []

        def keep(letter: DeadLetter, *_: object) -> tuple[str, None]:
            if limit is None or len(seen) < limit:
                seen.append(letter)
            return KEEP, None

        self._each(queue, keep)
        return seen

    def replay(self, queue: str, *,
               ids: Iterable[str] | None = None) -> tuple[builtins.list[DeadLetter], builtins.list[DeadLetter]]:
        """Sends back the messages with these ids (None: all); returns (replayed, still parked) letters."""
        queue = self.parked_queue(queue)
        wanted = None if ids is None else set(ids)
        replayed: list[DeadLetter] = []
        refused: list[DeadLetter] = []

        def choose(letter: DeadLetter, properties: Any, body: bytes) -> tuple[str, Any]:
            if wanted is not None and letter.id not in wanted:
                return KEEP, None
            if queue == INVALID_QUEUE:
                target, errors = self._revalidated(letter, properties, body)
                if target is None:
                    refused.append(dataclasses.replace(letter, last_error=json.dumps(errors, sort_keys=True)[:500]))
                    return KEEP, _with_errors(body, errors)
            else:
                target = ("", queue[: -len(".dead")], body, self._reset(letter, properties))
            replayed.append(letter)
            return REPLAY, target

        self._each(queue, choose)
        for letter in replayed:
            # Counted as exsync_dead_letters_replayed_total by the consumer that handles it.
            log.info("dead letter replayed", extra={"queue": queue, "event_id": letter.id, "outcome": "replayed"})
        self._missing(queue, wanted, replayed + refused)
        return replayed, refused

    def drop(self, queue: str, *, ids: Iterable[str]) -> builtins.list[DeadLetter]:
        """Deletes the messages with these ids; returns the letters dropped."""
        queue = self.parked_queue(queue)
        wanted = set(ids)
        dropped: list[DeadLetter] = []

        def choose(letter: DeadLetter, *_: object) -> tuple[str, None]:
            if letter.id in wanted:
                dropped.append(letter)
                return DROP, None
            return KEEP, None

        self._each(queue, choose)
        for letter in dropped:
            self.metrics.inc("dead_letters_dropped", queue=queue)
            log.warning("dead letter dropped", extra={"queue": queue, "event_id": letter.id, "outcome": "dropped"})
        self._missing(queue, wanted, dropped)
        return dropped

    # --- the walk over a queue

    def _missing(self, queue: str, wanted: set[str] | None, found: builtins.list[DeadLetter]) -> None:
        missing = sorted((wanted or set()) - {letter.id for letter in found})
        if missing:
            raise BusError(f"no message {', '.join(missing)} on {queue}")

    def _letter(self, queue: str, method: Any, properties: Any, body: bytes) -> DeadLetter:
        headers = properties.headers or {}
        event = _event(body) or {}
        if queue == INVALID_QUEUE:
            attempts, last_error = 0, _invalid_errors(event)
            failed_at = event.get("time")
        else:
            attempts = int(headers.get(ATTEMPT_HEADER, 1))
            last_error = _text(headers.get(ERROR_HEADER)) or ""
            failed_at = _text(headers.get(FAILED_AT_HEADER))
        return DeadLetter(
            id=_message_id(properties, body), queue=queue, subject=event.get("subject"),
            type=event.get("type") or properties.type, routing_key=method.routing_key, attempts=attempts,
            last_error=last_error, failed_at=failed_at, replays=len(headers.get(HISTORY_HEADER) or ()))

    def _each(self, queue: str, choose: Callable[[DeadLetter, Any, bytes], tuple[str, Any]]) -> None:
        """Takes each message on `queue` once; `choose(letter, properties, body)` says what becomes of it.

        It returns (KEEP, None or a new body), (REPLAY, (exchange, routing key, body,
        properties)) or (DROP, None). Whatever happens, a message is acknowledged only after its
        copy (kept or replayed) is confirmed by the broker: an interruption leaves it where it was.
        """
        with open_connection(self.url) as connection, connection.translated_errors():
            channel = connection.pika.channel()
            channel.confirm_delivery()
            depth = channel.queue_declare(queue, passive=True).method.message_count
            # Only as many as were there: the copies put back go behind them.
            for _ in range(depth):
                method, properties, body = channel.basic_get(queue, auto_ack=False)
                if method is None:
                    break
                letter = self._letter(queue, method, properties, body)
                action, detail = choose(letter, properties, body)
                if action == KEEP:
                    self._publish(channel, "", queue, detail or body, properties)
                elif action == REPLAY:
                    self._publish(channel, *detail)
                channel.basic_ack(method.delivery_tag)
            channel.close()

    def _publish(self, channel: Any, exchange: str, routing_key: str, body: bytes, properties: Any) -> None:
        try:
            channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
        except pika.exceptions.UnroutableError as error:
            raise MessageUnroutable(f"nothing bound for {exchange or 'the default exchange'!r} / "
                                    f"{routing_key!r}: the message stays parked") from error
        except pika.exceptions.NackError as error:
            raise PublishNotConfirmed(f"the broker nacked the copy to {routing_key!r}; "
                                      f"the message stays parked") from error

    # --- what a replay sends

    def _history_entry(self, letter: DeadLetter) -> dict[str, Any]:
        return {"queue": letter.queue, "attempts": letter.attempts, "last_error": letter.last_error,
                "failed_at": letter.failed_at or "", "replayed_at": self.clock().isoformat(timespec="seconds")}

    def _reset(self, letter: DeadLetter, properties: Any) -> Any:
        headers = dict(properties.headers or {})
        for name in (ATTEMPT_HEADER, ERROR_HEADER, FAILED_AT_HEADER, QUEUE_HEADER):
            headers.pop(name, None)
        headers[HISTORY_HEADER] = [*(headers.get(HISTORY_HEADER) or ()), self._history_entry(letter)]
        return _with_headers(properties, headers)

    def _revalidated(self, letter: DeadLetter, properties: Any, body: bytes) -> tuple[Any, Any]:
        """(the publish of a woo.invalid message as the receiver would make it now, None), or
        (None, the current schema's errors) when it still fails."""
        event = _event(body) or {}
        raw = event.get("data")
        data = raw if isinstance(raw, dict) else {}
        topic, payload = data.get("topic"), data.get("body")
        if not isinstance(topic, str) or not TOPIC_SHAPE.match(topic):
            return None, {"X-WC-Webhook-Topic": [f"missing or not a topic: {topic!r}"]}
        if not isinstance(payload, dict):
            return None, {"body": ["not a JSON object"]}
        extensions = {key: event[key] for key in ("wcwebhookid", "wcdeliveryid") if key in event}
        # the receiver's own path: validated under the current schema, then routed as woo.<topic>
        routed = woo_event(topic=topic, payload=payload, source=event.get("source") or "woocommerce",
                           id=event.get("id"), **extensions)
        if routed.errors:
            return None, routed.errors
        replayed = routed.event
        headers = dict(properties.headers or {})
        headers[HISTORY_HEADER] = [*(headers.get(HISTORY_HEADER) or ()), self._history_entry(letter)]
        return (WOO_EXCHANGE, routed.routing_key, json.dumps(replayed, separators=(",", ":")).encode("utf-8"),
                _with_headers(properties, headers, type=replayed["type"])), None


def _with_errors(body: bytes, errors: object) -> bytes:
    """A woo.invalid body carrying the current schema's errors instead of those it was parked with."""
    event = _event(body)
    if event is None or not isinstance(event.get("data"), dict):
        return body
    event["data"] = {**event["data"], "errors": errors}
    return json.dumps(event, separators=(",", ":")).encode("utf-8")


def _with_headers(properties: Any, headers: dict[str, Any], **changes: Any) -> Any:
    fields = {name: getattr(properties, name) for name in (
        "content_type", "content_encoding", "delivery_mode", "priority", "correlation_id", "reply_to",
        "expiration", "message_id", "timestamp", "type", "user_id", "app_id", "cluster_id")}
    fields.update(changes)
    return pika.BasicProperties(headers=headers, **fields)
