"""RabbitMQ: topology, the confirming publisher, the consume loop."""

from exsync.bus.connection import Connection, open_connection
from exsync.bus.consumer import Message, Worker
from exsync.bus.dead_letters import DeadLetter, DeadLetters, parked_queue_names
from exsync.bus.errors import (
    BrokerUnavailable,
    BusError,
    MessageUnroutable,
    PermanentError,
    PublishNotConfirmed,
)
from exsync.bus.middleware import LoggingMiddleware, MetricsMiddleware, Middleware
from exsync.bus.publisher import Publisher
from exsync.bus.shared_publisher import SharedPublisher
from exsync.bus.topology import (
    EXCHEQUER_EXCHANGE,
    INVALID_QUEUE,
    WOO_EXCHANGE,
    QueueSpec,
    Topology,
    dead_queue_name,
    declare_topology,
    retry_queue_name,
    unrouted_name,
)
from exsync.schemas.envelope import new_event

__all__ = [
    "BrokerUnavailable",
    "BusError",
    "Connection",
    "DeadLetter",
    "DeadLetters",
    "EXCHEQUER_EXCHANGE",
    "INVALID_QUEUE",
    "LoggingMiddleware",
    "Message",
    "MessageUnroutable",
    "MetricsMiddleware",
    "Middleware",
    "PermanentError",
    "PublishNotConfirmed",
    "Publisher",
    "QueueSpec",
    "SharedPublisher",
    "Topology",
    "WOO_EXCHANGE",
    "Worker",
    "dead_queue_name",
    "declare_topology",
    "new_event",
    "open_connection",
    "parked_queue_names",
    "retry_queue_name",
    "unrouted_name",
]
