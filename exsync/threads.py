"""Resources one per thread, for objects that must not be shared across threads (DB connections)."""

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["PerThread"]

Resource = TypeVar("Resource")


class PerThread(Generic[Resource]):
    """Makes a thread's resource on first use, drops it after a failure, and closes them all at the end."""

    def __init__(self, *, make: Callable[[], Resource], close: Callable[[Resource], object]) -> None:
        self._make = make
        self._close = close
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[Resource] = []

    def get(self) -> Resource:
        resource = getattr(self._local, "resource", None)
        if resource is None:
            resource = self._local.resource = self._make()
            with self._lock:
                self._all.append(resource)
        return resource

    def discard(self) -> None:
        """Closes this thread's resource (a broken connection stays broken); the next get() makes another."""
        resource = getattr(self._local, "resource", None)
        if resource is None:
            return
        self._local.resource = None
        with self._lock:
            self._all = [held for held in self._all if held is not resource]
        self._close(resource)

    def close(self) -> None:
        with self._lock:
            everything, self._all = self._all, []
        for resource in everything:
            self._close(resource)
        self._local = threading.local()
