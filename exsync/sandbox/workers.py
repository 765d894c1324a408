"""A host's pool of PHP workers: at most K requests run at once, the rest wait their turn.

A real shop runs PHP-FPM with a fixed number of workers (`pm.max_children`); a request beyond them
waits in the listen queue until one is free, so K parallel writers are served in parallel and a
(K+1)th waits. The firewall in front answers its 429/503 without a worker.
"""

import contextlib
import threading
from collections.abc import Iterator

__all__ = ["WorkerPool"]


class WorkerPool:
    """At most `workers` requests served at once (None: unlimited, the sandbox's default); thread-safe.

    `busy` and `peak_busy` say how many were served at once (what a test or benchmark reads)."""

    def __init__(self, *, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise ValueError("a shop needs at least one worker")
        self.workers = workers
        self._slots = threading.BoundedSemaphore(workers) if workers is not None else None
        self._lock = threading.Lock()
        self.busy = 0
        self.peak_busy = 0
        self.waited = 0

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Holds one worker for the block, waiting (queued, as on a host) while all are busy."""
        if self._slots is not None and not self._slots.acquire(blocking=False):
            with self._lock:
                self.waited += 1
            self._slots.acquire()
        with self._lock:
            self.busy += 1
            self.peak_busy = max(self.peak_busy, self.busy)
        try:
            yield
        finally:
            with self._lock:
                self.busy -= 1
            if self._slots is not None:
                self._slots.release()
