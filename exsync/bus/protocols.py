"""What the layers above ask of a publisher, as a type: `Publisher` (one connection per process) and
`SharedPublisher` (one connection shared by a process's threads) both provide it."""

from typing import Any, Protocol

__all__ = ["ClosingEventPublisher", "EventPublisher"]


class EventPublisher(Protocol):
    def publish(self, *, exchange: str, routing_key: str, event: dict[str, Any],
                headers: dict[str, Any] | None = None) -> None:
        """Sends one envelope and returns once the broker confirmed it (raises a BusError if not)."""


class ClosingEventPublisher(EventPublisher, Protocol):
    """A publisher its user owns and closes when it closes (a consumer's own, not a shared one)."""

    def close(self) -> None:
        """Closes the publisher's connection."""
