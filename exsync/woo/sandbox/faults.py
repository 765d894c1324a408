"""Latency and injected faults for the sandbox shop, so benchmarks and reliability tests see a real host.

A real host spends 0.2-1.5 s starting WordPress per request and 40-60 ms per item in a batch, and
the firewall in front of it may answer 429 or 503; these knobs reproduce that on demand.
"""

import dataclasses
import threading

__all__ = ["Fault", "Faults"]


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

    def matches(self, method, route):
        return ((self.method is None or self.method.upper() == method.upper())
                and (self.route_prefix is None or route.startswith(self.route_prefix)))


class Faults:
    """The sandbox's latency settings and queue of injected faults; thread-safe."""

    def __init__(self, *, latency_seconds=0.0, item_latency_seconds=0.0):
        self.latency_seconds = latency_seconds
        self.item_latency_seconds = item_latency_seconds
        self._faults = []
        self._lock = threading.Lock()

    def inject(self, *, status=None, retry_after_seconds=None, delay_seconds=0.0, count=1, method=None,
               route_prefix=None, body=b""):
        """Queues a fault: `status` (e.g. 429 or 503, with `Retry-After`) and/or a `delay_seconds` stall.

        `route_prefix` matches the wc/v3 route (e.g. `products/batch`); `count` requests are affected.
        """
        fault = Fault(status=status, retry_after_seconds=retry_after_seconds, delay_seconds=delay_seconds,
                      count=count, method=method, route_prefix=route_prefix, body=body)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self):
        with self._lock:
            self._faults.clear()

    def take(self, method, route):
        """The first queued fault matching this request, used up by one."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, route):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None
