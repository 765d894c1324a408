"""The reconciler's small key/value state (its watermarks), behind an interface.

In production it is `exsync.exchequer.StateValues`, a table in the state database, so the
watermarks survive a restarted pod; `MemoryStore` serves one-off runs and tests.
"""

__all__ = ["MemoryStore", "StateStore"]


class StateStore:
    """Get and set string values by key; implementations must make a `set` durable before returning."""

    def get(self, key: str) -> str | None:
        raise NotImplementedError

    def set(self, key: str, value: str) -> None:
        raise NotImplementedError


class MemoryStore(StateStore):
    """Keeps values in the process (tests, one-off runs)."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self._values.get(key)

    def set(self, key: str, value: str) -> None:
        self._values[key] = value
