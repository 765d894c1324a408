"""The Exchequer connections a consumer thread holds, and the one way a consumer drops broken ones."""

import contextlib
from collections.abc import Iterator
from typing import Any

from exsync.exchequer import ConnectError, DatabaseError, ExchequerReader, connect
from exsync.exchequer.mapping import Mapping
from exsync.exchequer.options import ExchequerOptions
from exsync.exchequer.write_paths import consumer_toolkit
from exsync.metrics import Metrics
from exsync.threads import PerThread

__all__ = ["ExchequerConnections", "fresh_after_failure", "use_broker"]

# The broker a consumer process talks to, for writes sent to the Exchequer agent
# (exchequer.write_backend: toolkit); set once by `exsync consume` (exsync/cli/processes.py).
_broker: dict[str, str | None] = {"url": None}


def use_broker(url: str | None) -> None:
    """Names the broker this process's consumers send Exchequer write commands through."""
    _broker["url"] = url


class ExchequerConnections:
    """One thread's connections: the company, the state tables (the same connection when they
    share a DSN), a reader and the Toolkit writes go through (the emulator on the demo company, or
    the Exchequer agent's client: exchequer.write_backend)."""

    def __init__(self, *, exchequer_dsn: str, state_dsn: str | None, mapping: Mapping, options: ExchequerOptions,
                 metrics: Metrics | None) -> None:
        self.exchequer = connect(exchequer_dsn, mapping=mapping)
        self.state = self.exchequer if state_dsn in (None, exchequer_dsn) else connect(state_dsn, mapping=mapping)
        self.reader = ExchequerReader(database=self.exchequer)
        self.backend = consumer_toolkit(options=options, company=self.exchequer, state=self.state,
                                        amqp_url=_broker["url"], metrics=metrics)

    def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()
        self.exchequer.close()
        if self.state is not self.exchequer:
            self.state.close()


@contextlib.contextmanager
def fresh_after_failure(per_thread: PerThread[Any]) -> Iterator[None]:
    """Drops this thread's connections when a database call failed: a dropped connection stays
    broken, so the message's retry must get fresh ones."""
    try:
        yield
    except (ConnectError, DatabaseError):
        per_thread.discard()
        raise
