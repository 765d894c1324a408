"""The confirming publisher: a message counts as sent only once the broker has confirmed it."""

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions
import tenacity

from exsync.bus.connection import CONNECTION_ERRORS, Connection, open_connection
from exsync.bus.errors import BrokerUnavailable, BusError, MessageUnroutable, PublishNotConfirmed
from exsync.metrics import Metrics

__all__ = ["Publisher", "counted_publish", "encode_event", "message_properties"]

log = logging.getLogger(__name__)

PERSISTENT = pika.DeliveryMode.Persistent
# A publish that lost its connection is tried once more on a new one.
PUBLISH_ATTEMPTS = 2


class _ConnectionDropped(Exception):
    """The connection died under a publish (internal: its cause is pika's error; retried once)."""


def _log_reconnect(retry_state: tenacity.RetryCallState) -> None:
    error = retry_state.outcome.exception() if retry_state.outcome is not None else None
    if isinstance(error, _ConnectionDropped):
        log.warning("publish failed (%r); reconnecting once", error.__cause__)


def encode_event(event):
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def message_properties(event, headers=None):
    return pika.BasicProperties(
        content_type="application/json",
        delivery_mode=PERSISTENT,
        message_id=event.get("id"),
        type=event.get("type"),
        timestamp=int(time.time()),
        app_id="exsync",
        headers=headers or {},
    )


@contextlib.contextmanager
def counted_publish(metrics: Metrics, exchange: str) -> Iterator[None]:
    """Records one publish's outcome and, when confirmed, how long the confirm took."""
    label = exchange or "default"
    try:
        with metrics.timed("bus_publish_duration_seconds", observe_errors=False, exchange=label):
            yield
    except MessageUnroutable:
        metrics.inc("bus_messages_published", exchange=label, outcome="unroutable")
        raise
    except PublishNotConfirmed:
        metrics.inc("bus_messages_published", exchange=label, outcome="nacked")
        raise
    except BusError:
        metrics.inc("bus_messages_published", exchange=label, outcome="unavailable")
        raise
    metrics.inc("bus_messages_published", exchange=label, outcome="confirmed")


class Publisher:
    """Publishes envelopes with confirms, `mandatory` and persistence; reconnects once per call.

    Not thread-safe (pika connections are not): give each thread its own, or share a
    `SharedPublisher`.
    """

    def __init__(self, *, url, topology=None, metrics=None, connect=open_connection):
        self.url = url
        self.topology = topology
        self.metrics = metrics or Metrics()
        self._connect = connect
        self._connection: Connection | None = None
        self._channel: Any = None

    def _open(self) -> tuple[Connection, Any]:
        try:
            connection = self._connect(self.url)
        except BrokerUnavailable:
            self.metrics.set("bus_connected", 0, client="publisher")
            raise
        try:
            with connection.translated_errors():
                channel = connection.pika.channel()
                channel.confirm_delivery()
                if self.topology is not None:
                    self.topology.declare(channel)
        except BaseException as error:
            connection.close()
            if isinstance(error, BrokerUnavailable):
                self.metrics.set("bus_connected", 0, client="publisher")
            raise
        self._connection, self._channel = connection, channel
        self.metrics.set("bus_connected", 1, client="publisher")
        return connection, channel

    def _ready(self) -> tuple[Connection, Any]:
        """The open connection and its channel, (re)opened when there is none or it closed."""
        connection, channel = self._connection, self._channel
        if connection is None or channel is None or not connection.is_open:
            self._discard()
            connection, channel = self._open()
        return connection, channel

    def _discard(self):
        if self._connection is not None:
            self._connection.close()
        self._connection = self._channel = None

    def publish(self, *, exchange: str, routing_key: str, event: dict[str, Any],
                headers: dict[str, Any] | None = None) -> None:
        """Sends one envelope and waits for the broker's confirm.

        Raises MessageUnroutable, PublishNotConfirmed or BrokerUnavailable; on return the
        message is stored by the broker.
        """
        body = encode_event(event)
        properties = message_properties(event, headers)
        with counted_publish(self.metrics, exchange):
            self._publish_with_reconnect(exchange, routing_key, body, properties)

    def _publish_with_reconnect(self, exchange, routing_key, body, properties):
        # One retry after a dropped connection: a broker restart or an idle connection closed by a
        # proxy should not fail a request. A second failure means the broker really is down.
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(PUBLISH_ATTEMPTS),
            retry=tenacity.retry_if_exception_type((_ConnectionDropped, BrokerUnavailable)),
            before_sleep=_log_reconnect,
            reraise=True,
        )
        try:
            retrying(self._publish_once, exchange, routing_key, body, properties)
        except _ConnectionDropped as dropped:
            self.metrics.set("bus_connected", 0, client="publisher")
            raise BrokerUnavailable(f"cannot publish to RabbitMQ: {dropped.__cause__!r}") from dropped.__cause__

    def _publish_once(self, exchange, routing_key, body, properties):
        """One attempt: (re)opens the connection if needed and publishes, translating pika's errors."""
        try:
            _, channel = self._ready()
            channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
        except pika.exceptions.UnroutableError as error:
            raise MessageUnroutable(
                f"no queue bound for {exchange!r} / {routing_key!r}: the message was returned"
            ) from error
        except pika.exceptions.NackError as error:
            raise PublishNotConfirmed(f"the broker nacked the message to {exchange!r} / {routing_key!r}") from error
        except pika.exceptions.ChannelClosedByBroker as error:
            self._discard()
            raise BusError(f"the broker closed the channel publishing to {exchange!r}: {error}") from error
        except CONNECTION_ERRORS as error:
            self._discard()
            raise _ConnectionDropped() from error
        except BrokerUnavailable:
            self._discard()
            raise

    def check(self) -> None:
        """Raises BrokerUnavailable unless a connection is (or can be) open: the readiness probe."""
        connection, _ = self._ready()
        with connection.translated_errors():
            connection.pika.process_data_events(time_limit=0)

    def close(self):
        self._discard()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
