"""Latency and injected faults for the sandbox shop, so benchmarks and reliability tests see a real host.

A real host spends 0.2-1.5 s starting WordPress per request and 40-60 ms per item in a batch, and
the firewall in front of it may answer 429 or 503; these knobs reproduce that on demand.
"""

import collections
import dataclasses
import random
import threading
import time
from collections.abc import Iterable

__all__ = ["Fault", "Faults", "Storm"]


@dataclasses.dataclass(kw_only=True)
class Fault:
    """One injected answer (or delay) for up to `count` matching requests."""

    status: int | None = None
    retry_after_seconds: float | None = None
    delay_seconds: float = 0.0
    count: int = 1
    method: str | None = None
    route_prefix: str | None = None
    body: bytes = b""

    def matches(self, method: str, route: str) -> bool:
        return ((self.method is None or self.method.upper() == method.upper())
                and (self.route_prefix is None or route.startswith(self.route_prefix)))


@dataclasses.dataclass(kw_only=True)
class Storm:
    """For `duration_seconds` from its start, each matching request has `rate` chance of one of
    `statuses` with `Retry-After` (a host's firewall or an overloaded PHP pool under a storm)."""

    rate: float
    duration_seconds: float
    statuses: tuple[int, ...] = (429, 503)
    retry_after_seconds: float = 1.0
    route_prefix: str | None = None
    seed: int | None = None
    # A request arriving this long after a Retry-After answer was sent before the client had read it.
    in_flight_seconds: float = 0.1
    started_at: float = dataclasses.field(default_factory=time.monotonic)
    answered: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._asked_at: float | None = None
        self._quiet_until = -1.0

    def _note_arrival(self):
        """Counts requests that came while the last Retry-After was still running (a client that
        waits as asked sends none: issue 11 §7), for one client at a time."""
        now = time.monotonic()
        if self._asked_at is not None and self._asked_at + self.in_flight_seconds < now < self._quiet_until:
            self.answered["inside_retry_after"] += 1

    def active(self) -> bool:
        return time.monotonic() - self.started_at < self.duration_seconds

    def take(self, method: str, route: str) -> Fault | None:
        """A fault for this request, or None (the storm passed over it, or is over)."""
        if not self.active() or (self.route_prefix is not None and not route.startswith(self.route_prefix)):
            return None
        self._note_arrival()
        if self._random.random() >= self.rate:
            self.answered["passed"] += 1
            return None
        status = self._random.choice(self.statuses)
        self.answered[status] += 1
        self._asked_at = time.monotonic()
        self._quiet_until = self._asked_at + self.retry_after_seconds
        return Fault(status=status, retry_after_seconds=self.retry_after_seconds)


class Faults:
    """The sandbox's latency settings and queue of injected faults; thread-safe."""

    def __init__(self, *, latency_seconds: float = 0.0, item_latency_seconds: float = 0.0) -> None:
        self.latency_seconds = latency_seconds
        self.item_latency_seconds = item_latency_seconds
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.storm: Storm | None = None

    def inject(self, *, status: int | None = None, retry_after_seconds: float | None = None,
               delay_seconds: float = 0.0, count: int = 1, method: str | None = None,
               route_prefix: str | None = None, body: bytes = b"") -> Fault:
        """Queues a fault: `status` (e.g. 429 or 503, with `Retry-After`) and/or a `delay_seconds` stall.

        `route_prefix` matches the wc/v3 route (e.g. `products/batch`); `count` requests are affected.
        """
        fault = Fault(status=status, retry_after_seconds=retry_after_seconds, delay_seconds=delay_seconds,
                      count=count, method=method, route_prefix=route_prefix, body=body)
        with self._lock:
            self._faults.append(fault)
        return fault

    def start_storm(self, *, rate: float, duration_seconds: float, statuses: Iterable[int] = (429, 503),
                    retry_after_seconds: float = 1.0, route_prefix: str | None = None,
                    seed: int | None = None) -> Storm:
        """Starts a Storm (replacing one still blowing); returns it, to read what it answered."""
        storm = Storm(rate=rate, duration_seconds=duration_seconds, statuses=tuple(statuses),
                      retry_after_seconds=retry_after_seconds, route_prefix=route_prefix, seed=seed)
        with self._lock:
            self.storm = storm
        return storm

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.storm = None

    def take(self, method: str, route: str) -> Fault | None:
        """The first queued fault matching this request, used up by one; else the storm's, if any."""
        with self._lock:
            if self.storm is not None and (fault := self.storm.take(method, route)) is not None:
                return fault
            for fault in self._faults:
                if fault.matches(method, route):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None
