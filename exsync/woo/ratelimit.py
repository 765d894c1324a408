"""Keeping exsync under the request rate a shop's host tolerates, and waiting as the host asks.

- `TokenBucket`: one process's bucket (the fallback, and for clients made without settings).
- `SharedTokenBucket`: the deployment's budget. `shop.requests_per_second` is what the whole
  deployment may send to a shop, so every process takes its tokens from one row in exsync's state
  database (locked for the moment of the take). Shared rather than divided by each process's
  maximum replicas: KEDA scales the write-back pods from 0 to 10, and a share fixed for 10 would
  leave the one busy pod a tenth of the budget while the others sleep; sharing also needs no
  per-process setting to keep in step with the manifests. Times are wall-clock (NTP keeps pods
  within milliseconds). Should the state database be unreachable, the process falls back to its
  own bucket at the full rate (logged) and tries the database again a little later.
- `Pause`: after a 429 or 503 with `Retry-After`, every request of the process to that shop waits
  (`pause_for(shop_url)`), not only the one retried; the shared bucket carries the pause to the
  other processes as well.
"""

import logging
import threading
import time

from exsync.exchequer.errors import DuplicateKeyError, ExchequerError
from exsync.exchequer.mapping import Column
from exsync.state import StateTable, create_state_tables

__all__ = ["BUDGET_TABLES", "Pause", "SharedTokenBucket", "TokenBucket", "pause_for"]

log = logging.getLogger(__name__)

DEFAULT_RECONNECT_SECONDS = 30.0
# Above this a wait is re-read from the shared row rather than slept in one go (a pause may be lifted
# by nobody, but tokens freed by a slower process's idleness are picked up sooner).
_MAX_SLEEP_SECONDS = 1.0
_TOLERANCE = 1e-9

BUDGET_TABLES = (
    StateTable(name="shop_budget", key=("shop",), columns={
        "shop": Column("shop", "str:200"),
        "tokens": Column("tokens", "float"),
        "updated_at": Column("updated_at", "float"),
        "paused_until": Column("paused_until", "float"),
    }),
)


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
                if self._tokens >= 1 - _TOLERANCE:
                    self._tokens = max(0.0, self._tokens - 1)
                    return waited
                shortfall_seconds = (1 - self._tokens) / self.rate_per_second
            self._sleep(shortfall_seconds)
            waited += shortfall_seconds

    def pause(self, seconds):
        """A process-local bucket has nobody to tell: the process's Pause does the waiting."""

    def close(self):
        pass


class Pause:
    """Holds every request of a process to one shop until a time the shop asked for; thread-safe."""

    def __init__(self, *, clock=time.monotonic, sleep=time.sleep):
        self._clock = clock
        self._sleep = sleep
        self._until = 0.0
        self._lock = threading.Lock()

    def extend(self, seconds):
        """Nothing goes to the shop for `seconds` from now (a longer pause already set stays)."""
        with self._lock:
            self._until = max(self._until, self._clock() + max(0.0, seconds))

    def remaining_seconds(self):
        with self._lock:
            return max(0.0, self._until - self._clock())

    def wait(self):
        """Blocks while the pause lasts; returns the seconds waited."""
        waited = 0.0
        while (remaining := self.remaining_seconds()) > 0:
            self._sleep(remaining)
            waited += remaining
        return waited


_pauses = {}
_pauses_lock = threading.Lock()


def pause_for(shop_url):
    """The process's one Pause for a shop (every client of the process to that shop shares it)."""
    key = shop_url.rstrip("/")
    with _pauses_lock:
        return _pauses.setdefault(key, Pause())


class SharedTokenBucket:
    """The deployment's token bucket for one shop, kept in a row of the state database.

    `connect()` opens the state database (lazily, again after a failure); `fallback` is the
    process's own bucket, used while the database cannot be reached.
    """

    def __init__(self, *, connect, shop, rate_per_second, burst=None, fallback=None, clock=time.time,
                 sleep=time.sleep, reconnect_seconds=DEFAULT_RECONNECT_SECONDS):
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.shop = shop.rstrip("/")[:200]
        self.rate_per_second = float(rate_per_second)
        self.burst = float(burst if burst is not None else max(1.0, rate_per_second))
        self.fallback = fallback or TokenBucket(rate_per_second=rate_per_second, burst=burst)
        self.reconnect_seconds = reconnect_seconds
        self._connect = connect
        self._clock = clock
        self._sleep = sleep
        self._database = None
        self._table_sql = None
        self._down_until = 0.0
        # One Database carries one transaction at a time: the process's threads take turns.
        self._lock = threading.Lock()

    def _db(self):
        if self._database is None:
            database = self._connect()
            try:
                create_state_tables(database, BUDGET_TABLES)
            except BaseException:
                database.close()
                raise
            self._database = database
            self._table_sql = BUDGET_TABLES[0].sql_name(database)
        return self._database

    def _shared(self, work):
        """Runs `work(database)` under the lock; None (use the fallback) while the database is away."""
        with self._lock:
            if time.monotonic() < self._down_until:
                return None
            try:
                return work(self._db())
            except DuplicateKeyError:
                raise  # another process made the row first: the caller takes from it
            except ExchequerError as error:
                log.warning("shop budget: the state database failed (%s); this process keeps to its own bucket "
                            "for %.0f s", error, self.reconnect_seconds)
                self._down_until = time.monotonic() + self.reconnect_seconds
                if self._database is not None:
                    self._database.close()
                    self._database = None
                return None

    def _take(self, database):
        """Takes a token: 0 when taken, else the seconds to wait before trying again."""
        dialect, table = database.dialect, self._table_sql
        now = self._clock()
        with database.transaction() as cursor:
            row = cursor.execute(dialect.for_update(
                f'SELECT "tokens", "updated_at", "paused_until" FROM {dialect.locked(table)} WHERE "shop" = ?'),
                (self.shop,)).fetchone()
            if row is None:
                cursor.execute(f'INSERT INTO {table} ("shop", "tokens", "updated_at", "paused_until") '
                               "VALUES (?, ?, ?, 0)", (self.shop, self.burst - 1, now))
                return 0.0
            tokens, updated_at, paused_until = (float(value) for value in row)
            if now < paused_until:
                return paused_until - now
            tokens = min(self.burst, tokens + max(0.0, now - updated_at) * self.rate_per_second)
            if tokens >= 1 - _TOLERANCE:
                cursor.execute(f'UPDATE {table} SET "tokens" = ?, "updated_at" = ? WHERE "shop" = ?',
                               (max(0.0, tokens - 1), now, self.shop))
                return 0.0
            return (1 - tokens) / self.rate_per_second

    def acquire(self):
        """Blocks until the deployment's budget has a token for this request; returns the seconds waited."""
        waited = 0.0
        while True:
            try:
                wait = self._shared(self._take)
            except DuplicateKeyError:
                continue  # another process made the row first: take from it
            if wait is None:
                return waited + self.fallback.acquire()
            if wait <= 0:
                return waited
            wait = min(wait, _MAX_SLEEP_SECONDS)
            self._sleep(wait)
            waited += wait

    def pause(self, seconds):
        """Holds every process's requests to the shop for `seconds` (the shop's Retry-After)."""
        until = self._clock() + max(0.0, seconds)

        def work(database):
            table = self._table_sql
            with database.transaction() as cursor:
                cursor.execute(f'UPDATE {table} SET "paused_until" = ? WHERE "shop" = ? AND "paused_until" < ?',
                               (until, self.shop, until))

        self._shared(work)

    def close(self):
        with self._lock:
            if self._database is not None:
                self._database.close()
                self._database = None
