"""What the layers above ask of a publisher, as a type: `Publisher` (one connection per process) and
`SharedPublisher` (one connection shared by a process's threads) both provide it."""

from typing import Any, Protocol

__all__ = ["EventPublisher"]


class EventPublisher(Protocol):
    def publish(self, *, exchange: str, routing_key: str, event: dict[str, Any],
                headers: dict[str, Any] | None = None) -> None:
        """Sends one envelope and returns once the broker confirmed it (raises a BusError if not)."""
