"""Errors of the bus; pika's exceptions are translated into these where they enter."""

from exsync.errors import ExsyncError

__all__ = ["BusError", "BrokerUnavailable", "PublishNotConfirmed", "MessageUnroutable", "PermanentError"]


class BusError(ExsyncError):
    """Something went wrong talking to RabbitMQ."""


class BrokerUnavailable(BusError):
    """RabbitMQ cannot be reached, or the connection dropped and could not be made again."""


class PublishNotConfirmed(BusError):
    """The broker refused (nacked) a message: it is not stored."""


class MessageUnroutable(BusError):
    """No queue is bound for the message's routing key: it was returned, not stored."""


class PermanentError(BusError):
    """A message that can never succeed (malformed, invalid): park it now instead of retrying."""
