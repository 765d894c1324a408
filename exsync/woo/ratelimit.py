"""A token bucket that keeps exsync under the request rate a shop's host tolerates."""

import threading
import time

__all__ = ["TokenBucket"]


class TokenBucket:
    """Allows `rate_per_second` requests on average with bursts of up to `burst`; thread-safe."""

    def __init__(self, *, rate_per_second, burst=None, clock=time.monotonic, sleep=time.sleep):
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.rate_per_second = float(rate_per_second)
        self.burst = float(burst if burst is not None else max(1.0, rate_per_second))
        self._tokens = self.burst
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def acquire(self):
        """Blocks until a token is free, then takes it; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate_per_second)
                self._updated = now
                # The tolerance keeps float rounding from leaving a sliver of a token forever short.
                if self._tokens >= 1 - 1e-9:
                    self._tokens = max(0.0, self._tokens - 1)
                    return waited
                shortfall_seconds = (1 - self._tokens) / self.rate_per_second
            self._sleep(shortfall_seconds)
            waited += shortfall_seconds
