"""Opening RabbitMQ connections; the one place pika's connection errors are translated."""

import contextlib
from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions

from exsync.bus.errors import BrokerUnavailable, BusError
from exsync.redact import redact, redact_url, secrets_in

__all__ = ["Connection", "open_connection", "connection_parameters", "node_urls", "DEFAULT_HEARTBEAT_SECONDS",
           "DEFAULT_CONNECT_TIMEOUT_SECONDS"]

DEFAULT_HEARTBEAT_SECONDS = 30
DEFAULT_CONNECT_TIMEOUT_SECONDS = 3.0
DEFAULT_BLOCKED_TIMEOUT_SECONDS = 30.0

# Everything pika raises when the broker is unreachable or the connection or channel dies.
CONNECTION_ERRORS = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.ConnectionClosed,
    pika.exceptions.ChannelClosed,
    pika.exceptions.StreamLostError,
    ConnectionError,
    OSError,
)


def node_urls(url: str) -> list[str]:
    """The URLs in `url`: one broker, or the nodes of a RabbitMQ cluster separated by commas."""
    urls = [part.strip() for part in url.split(",") if part.strip()]
    if not urls:
        raise BusError("no RabbitMQ URL given")
    return urls


def connection_parameters(url: str, *, heartbeat_seconds: int = DEFAULT_HEARTBEAT_SECONDS,
                          connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS) -> list[Any]:
    """pika's parameters for each node `url` names, in order: one attempt each, bounded waits,
    heartbeats on. A connection tries the nodes in turn, so a cluster outlives one lost node."""
    listed = []
    for node_url in node_urls(url):
        parameters = pika.URLParameters(node_url)
        parameters.heartbeat = heartbeat_seconds
        parameters.socket_timeout = connect_timeout_seconds
        parameters.stack_timeout = connect_timeout_seconds * 2
        # A broker that blocks publishers (a memory or disk alarm) for this long counts as down.
        parameters.blocked_connection_timeout = DEFAULT_BLOCKED_TIMEOUT_SECONDS
        parameters.connection_attempts = 1
        listed.append(parameters)
    return listed


class Connection:
    """A pika BlockingConnection whose failures surface as BrokerUnavailable."""

    def __init__(self, *, url: str, heartbeat_seconds: int = DEFAULT_HEARTBEAT_SECONDS,
                 connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS) -> None:
        parameters = connection_parameters(url, heartbeat_seconds=heartbeat_seconds,
                                           connect_timeout_seconds=connect_timeout_seconds)
        self.url = url
        try:
            self.pika = pika.BlockingConnection(parameters)
        except CONNECTION_ERRORS as error:
            raise BrokerUnavailable(f"cannot connect to RabbitMQ at {_safe(url)}: "
                                    f"{redact(repr(error), secrets=secrets_in(url))}") from error

    @property
    def is_open(self) -> bool:
        return self.pika.is_open

    @contextlib.contextmanager
    def translated_errors(self) -> Iterator[None]:
        try:
            yield
        except pika.exceptions.ChannelClosedByBroker as error:
            # The broker is there and refused something (a missing exchange, a queue declared with
            # other arguments): a mistake to report, not an outage to wait out.
            raise BusError(f"RabbitMQ refused the operation: {error.reply_code} {error.reply_text}") from error
        except CONNECTION_ERRORS as error:
            raise BrokerUnavailable(f"RabbitMQ connection failed: {error!r}") from error

    def check(self) -> None:
        """Raises BrokerUnavailable unless the connection still answers (a readiness probe)."""
        with self.translated_errors():
            self.pika.process_data_events(time_limit=0)

    def close(self) -> None:
        try:
            if self.pika.is_open:
                self.pika.close()
        except CONNECTION_ERRORS:
            pass  # closing a dead connection: nothing left to release

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_connection(url: str, **kwargs: Any) -> Connection:
    return Connection(url=url, **kwargs)


def _safe(url: str) -> str:
    """The URL (each node's, comma-separated) without its password, for messages and logs."""
    return redact_url(url)
