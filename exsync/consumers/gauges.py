"""Gauges of exsync's state tables (parked orders, conflicts waiting), read when Prometheus scrapes.

A count kept in a database is not one process's to remember: set from a consumer's own work it is
stale as soon as another replica, or a person at the command line, changes the table. Read at
scrape time by the one consumer that owns it, it is always the table's.
"""

import logging
import math
import threading
from collections.abc import Callable, Mapping

from exsync.errors import ExsyncError
from exsync.exchequer import connect
from exsync.exchequer.db import Database
from exsync.exchequer.mapping import Mapping as ExchequerMapping
from exsync.metrics import Metrics

__all__ = ["StateReading", "track_state_gauges"]

log = logging.getLogger(__name__)


class StateReading:
    """`read(database)` on a state-database connection of its own (the scrape's thread is not the
    consumer's); NaN, logged, while the database cannot answer."""

    def __init__(self, *, dsn: str, mapping: ExchequerMapping, read: Callable[[Database], float]) -> None:
        self.dsn = dsn
        self.mapping = mapping
        self.read = read
        self._lock = threading.Lock()
        self._database: Database | None = None

    def __call__(self) -> float:
        with self._lock:
            try:
                if self._database is None:
                    self._database = connect(self.dsn, mapping=self.mapping)
                return float(self.read(self._database))
            except ExsyncError as error:
                log.warning("cannot read a gauge from the state database: %s", error)
                self.close()
                return math.nan

    def close(self) -> None:
        database, self._database = self._database, None
        if database is not None:
            try:
                database.close()
            except ExsyncError:
                pass  # already broken; nothing left to release


def track_state_gauges(metrics: Metrics, *, dsn: str, mapping: ExchequerMapping,
                       gauges: Mapping[str, Callable[[Database], float]]) -> list[StateReading]:
    """Registers `gauges` (name -> read(database)) with `metrics`; returns the readings (to close)."""
    readings: list[StateReading] = []
    for name, read in gauges.items():
        reading = StateReading(dsn=dsn, mapping=mapping, read=read)
        metrics.track(name, reading)
        readings.append(reading)
    return readings
