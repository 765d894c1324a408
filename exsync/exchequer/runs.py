"""When each periodic job (capture, reconcile, stock audit) last ran and last succeeded.

One row per job in the state database, so `exsync status` can say how long ago each one made
progress without reaching into the job's pod; the jobs' metrics say the same to Prometheus.
"""

import dataclasses
import time

from exsync.exchequer.mapping import Column
from exsync.state import StateTable, create_state_tables

__all__ = ["RUNS_TABLE", "Run", "RunLog", "CAPTURE", "RECONCILE", "STOCK_AUDIT", "MAX_DETAIL_CHARS"]

CAPTURE = "capture"
RECONCILE = "reconcile"
STOCK_AUDIT = "stock_audit"
MAX_DETAIL_CHARS = 500

RUNS_TABLE = StateTable(name="job_runs", key=("job",), columns={
    "job": Column("job", "str:40"),
    "last_run_at": Column("last_run_at", "float"),
    "last_success_at": Column("last_success_at", "float"),
    "outcome": Column("outcome", "str:40"),
    "detail": Column("detail", f"str:{MAX_DETAIL_CHARS}"),
})


@dataclasses.dataclass(frozen=True, kw_only=True)
class Run:
    job: str
    last_run_at: float
    last_success_at: float | None
    outcome: str
    detail: str


class RunLog:
    """Reads and records job runs on one Database (one thread's)."""

    def __init__(self, *, database, clock=time.time):
        self.database = database
        self.clock = clock
        self.table_sql = RUNS_TABLE.sql_name(database)

    def ensure(self):
        create_state_tables(self.database, (RUNS_TABLE,))
        return self

    def record(self, job, *, ok, detail=""):
        """One run of `job` ended: ok, or failed with `detail` (an error message)."""
        now = self.clock()
        detail = str(detail)[:MAX_DETAIL_CHARS]
        outcome = "ok" if ok else "error"
        with self.database.transaction() as cursor:
            if ok:
                cursor.execute(f'UPDATE {self.table_sql} SET "last_run_at" = ?, "last_success_at" = ?, "outcome" = ?, '
                               '"detail" = ? WHERE "job" = ?', (now, now, outcome, detail, job))
            else:
                cursor.execute(f'UPDATE {self.table_sql} SET "last_run_at" = ?, "outcome" = ?, "detail" = ? '
                               'WHERE "job" = ?', (now, outcome, detail, job))
            if cursor.rowcount == 0:
                cursor.execute(f'INSERT INTO {self.table_sql} ("job", "last_run_at", "last_success_at", "outcome", '
                               '"detail") VALUES (?, ?, ?, ?, ?)', (job, now, now if ok else 0, outcome, detail))

    def all(self):
        """job -> Run, for every job that ever recorded a run."""
        with self.database.transaction(write=False) as cursor:
            rows = cursor.execute(f'SELECT "job", "last_run_at", "last_success_at", "outcome", "detail" '
                                  f'FROM {self.table_sql}').fetchall()
        return {row[0]: Run(job=row[0], last_run_at=float(row[1]), last_success_at=float(row[2]) or None,
                            outcome=row[3], detail=row[4]) for row in rows}
