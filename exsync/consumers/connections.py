"""The Exchequer connections a consumer thread holds, and the one way a consumer drops broken ones."""

import contextlib

from exsync.exchequer import ConnectError, DatabaseError, ExchequerReader, SqlWriteBackend, connect

__all__ = ["ExchequerConnections", "fresh_after_failure"]


class ExchequerConnections:
    """One thread's connections: the company, the state tables (the same connection when they
    share a DSN), a reader and the write backend over the company."""

    def __init__(self, *, exchequer_dsn, state_dsn, mapping, options, metrics):
        self.exchequer = connect(exchequer_dsn, mapping=mapping)
        self.state = self.exchequer if state_dsn in (None, exchequer_dsn) else connect(state_dsn, mapping=mapping)
        self.reader = ExchequerReader(database=self.exchequer)
        self.backend = SqlWriteBackend(database=self.exchequer, vat_codes=options.vat_codes,
                                       default_location=options.default_location,
                                       account_codes=options.account_codes, metrics=metrics)

    def close(self):
        self.exchequer.close()
        if self.state is not self.exchequer:
            self.state.close()


@contextlib.contextmanager
def fresh_after_failure(per_thread):
    """Drops this thread's connections when a database call failed: a dropped connection stays
    broken, so the message's retry must get fresh ones."""
    try:
        yield
    except (ConnectError, DatabaseError):
        per_thread.discard()
        raise
