"""A PostgreSQL database of a test's own, made fresh and dropped after."""

import contextlib
import uuid

__all__ = ["fresh_pg_database"]


@contextlib.contextmanager
def fresh_pg_database(server):
    """An ODBC connection string to a new database on `server` (a connection string without a
    Database), dropped when the block ends."""
    import pyodbc

    name = f"exsync_test_{uuid.uuid4().hex[:12]}"
    admin = pyodbc.connect(server + "Database=postgres;", autocommit=True)
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        yield server + f"Database={name};"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
