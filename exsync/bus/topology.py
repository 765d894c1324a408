"""Exchanges, queues and bindings, and the one place queue names are made.

The bus knows no domain queue: a Topology declares the QueueSpecs it is given (each consumer
module declares its own; `exsync.wiring.topology()` collects them).

Every consuming queue Q is a durable quorum queue with:
- `Q.retry.<N>s` queues, one per delay, whose messages expire after N seconds and are
  dead-lettered back to Q (growing delays between attempts);
- `Q.dead`, where a message is parked after its last attempt, with the reason in its headers.
Each exchange has an alternate exchange and queue (`<exchange>.unrouted`) so a topic nobody
consumes yet (`action.*`, `coupon.*`) is kept rather than returned as unroutable.
"""

import dataclasses
from typing import Any

from exsync.bus.connection import open_connection
from exsync.bus.errors import BusError
from exsync.schemas.config import DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_DELAYS_SECONDS

__all__ = [
    "QueueSpec",
    "Topology",
    "declare_topology",
    "dead_queue_name",
    "retry_queue_name",
    "unrouted_name",
    "WOO_EXCHANGE",
    "EXCHEQUER_EXCHANGE",
    "INVALID_QUEUE",
]

WOO_EXCHANGE = "woo"
EXCHEQUER_EXCHANGE = "exchequer"
INVALID_QUEUE = "woo.invalid"
INVALID_ROUTING_PREFIX = "invalid"
# The unrouted queues are a safety net, not a store: bounded so a forgotten one cannot fill the disk.
DEFAULT_UNROUTED_MAX_LENGTH = 100_000


def retry_queue_name(queue: str, delay_seconds: float) -> str:
    return f"{queue}.retry.{int(delay_seconds)}s"


def dead_queue_name(queue: str) -> str:
    return f"{queue}.dead"


def unrouted_name(exchange: str) -> str:
    return f"{exchange}.unrouted"


@dataclasses.dataclass(frozen=True, kw_only=True)
class QueueSpec:
    """A consuming queue and the routing keys that feed it from one exchange."""

    name: str
    exchange: str
    binding_keys: tuple[str, ...]
    single_active_consumer: bool = False
    # (exchange, routing key) pairs that feed the queue from other exchanges as well
    other_bindings: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Topology:
    """What exsync declares on the broker."""

    exchanges: tuple[str, ...] = (WOO_EXCHANGE, EXCHEQUER_EXCHANGE)
    # the consuming queues, as the modules that consume them declare them (collected by exsync.wiring)
    queues: tuple[QueueSpec, ...] = ()
    retry_delays_seconds: tuple[int, ...] = DEFAULT_RETRY_DELAYS_SECONDS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    def queue(self, name: str) -> QueueSpec:
        for spec in self.queues:
            if spec.name == name:
                return spec
        raise BusError(f"no queue {name!r} in the topology")

    def retry_delay_seconds(self, attempt: int) -> int:
        """The delay before attempt `attempt + 1`, growing and then staying at the longest."""
        return self.retry_delays_seconds[min(attempt, len(self.retry_delays_seconds)) - 1]

    def all_queue_names(self) -> list[str]:
        names = [INVALID_QUEUE]
        names.extend(unrouted_name(exchange) for exchange in self.exchanges)
        for spec in self.queues:
            names.append(spec.name)
            names.extend(retry_queue_name(spec.name, d) for d in self.retry_delays_seconds)
            names.append(dead_queue_name(spec.name))
        return names

    def declare(self, channel: Any) -> None:
        """Declares everything on an open pika channel; safe to repeat."""
        quorum = {"x-queue-type": "quorum"}
        for exchange in self.exchanges:
            unrouted = unrouted_name(exchange)
            channel.exchange_declare(unrouted, exchange_type="fanout", durable=True)
            channel.queue_declare(
                unrouted,
                durable=True,
                arguments={**quorum, "x-max-length": DEFAULT_UNROUTED_MAX_LENGTH, "x-overflow": "drop-head"},
            )
            channel.queue_bind(unrouted, unrouted)
            channel.exchange_declare(
                exchange, exchange_type="topic", durable=True, arguments={"alternate-exchange": unrouted}
            )
        channel.queue_declare(INVALID_QUEUE, durable=True, arguments=quorum)
        channel.queue_bind(INVALID_QUEUE, WOO_EXCHANGE, routing_key=f"{INVALID_ROUTING_PREFIX}.#")
        for spec in self.queues:
            arguments = {**quorum, "x-single-active-consumer": True} if spec.single_active_consumer else quorum
            channel.queue_declare(spec.name, durable=True, arguments=arguments)
            for key in spec.binding_keys:
                channel.queue_bind(spec.name, spec.exchange, routing_key=key)
            for exchange, key in spec.other_bindings:
                channel.queue_bind(spec.name, exchange, routing_key=key)
            for delay in self.retry_delays_seconds:
                channel.queue_declare(
                    retry_queue_name(spec.name, delay),
                    durable=True,
                    arguments={
                        **quorum,
                        "x-message-ttl": int(delay * 1000),
                        "x-dead-letter-exchange": "",
                        "x-dead-letter-routing-key": spec.name,
                    },
                )
            channel.queue_declare(dead_queue_name(spec.name), durable=True, arguments=quorum)


def declare_topology(url: str, topology: Topology) -> None:
    """Connects, declares the topology and disconnects."""
    with open_connection(url) as connection:
        with connection.translated_errors():
            channel = connection.pika.channel()
            topology.declare(channel)
            channel.close()
