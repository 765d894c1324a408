"""Connections: DSN forms, a clear error for a missing ODBC driver, driver errors translated."""

import pytest

from exsync.exchequer import (
    ConnectError,
    DatabaseError,
    DriverNotInstalledError,
    DuplicateKeyError,
    connect,
)
from exsync.exchequer.dialect import POSTGRESQL, SQLITE


@pytest.mark.parametrize("driver, package", [
    ("ODBC Driver 18 for SQL Server", "msodbcsql18"),
    ("FreeTDS", "tdsodbc"),
])
def test_a_missing_odbc_driver_names_its_debian_package(driver, package):
    with pytest.raises(DriverNotInstalledError) as raised:
        connect(f"Driver={{{driver}}};Server=127.0.0.1;Database=x;Uid=sa;Pwd=secret;")
    assert raised.value.driver == driver
    assert raised.value.package == package
    assert package in str(raised.value) and driver in str(raised.value)


def test_an_unreachable_server_is_a_connect_error_without_the_password():
    with pytest.raises(ConnectError) as raised:
        connect("Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=1;Uid=postgres;Pwd=hunter2;",
                login_timeout_seconds=2)
    assert "hunter2" not in str(raised.value)


def test_sqlite_dsn_makes_its_directory(tmp_path):
    with connect(f"sqlite:///{tmp_path}/a/b/company.db") as database:
        assert database.dialect is SQLITE
    assert (tmp_path / "a" / "b" / "company.db").exists()
    with pytest.raises(ConnectError):
        connect("sqlite://relative.db")


def test_postgresql_is_recognised_through_odbc(pg_odbc_dsn):
    with connect(pg_odbc_dsn) as database:
        assert database.dialect is POSTGRESQL


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_driver_errors_are_translated_and_roll_back(backend, request, tmp_path):
    dsn = f"sqlite:///{tmp_path}/x.db" if backend == "sqlite" else request.getfixturevalue("pg_odbc_dsn")
    with connect(dsn) as database:
        with database.transaction() as cursor:
            cursor.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
            cursor.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(DuplicateKeyError), database.transaction() as cursor:
            cursor.execute("INSERT INTO t VALUES (2)")
            cursor.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(DatabaseError) as raised, database.transaction() as cursor:
            cursor.execute("SELECT * FROM no_such_table")
        assert "no_such_table" in str(raised.value)
        with database.transaction(write=False) as cursor:
            assert [tuple(row) for row in cursor.execute("SELECT k FROM t ORDER BY k").fetchall()] == [(1,)]


def test_many_rows_with_text_wider_than_the_driver_describes_are_written_whole(pg_odbc_dsn):
    # psqlODBC describes text parameters as 255 characters: the fast path would refuse these as truncated.
    rows = [("short",), ("x" * 300,)]
    with connect(pg_odbc_dsn) as database:
        with database.transaction() as cursor:
            cursor.execute("CREATE TABLE wide (a VARCHAR(1000))")
            cursor.executemany("INSERT INTO wide (a) VALUES (?)", rows)
        with database.transaction(write=False) as cursor:
            assert sorted(len(row[0]) for row in cursor.execute("SELECT a FROM wide").fetchall()) == [5, 300]


def test_a_side_transaction_commits_while_the_first_stays_open(pg_odbc_dsn):
    # What a document counter needs: taken and committed at once, not held to the document's commit.
    with connect(pg_odbc_dsn) as database, connect(pg_odbc_dsn) as observer:
        with database.transaction() as cursor:
            cursor.execute("CREATE TABLE side (k INTEGER PRIMARY KEY)")
        with database.transaction() as cursor:
            cursor.execute("INSERT INTO side VALUES (1)")
            with database.side_transaction() as side:
                side.execute("INSERT INTO side VALUES (2)")
            with observer.transaction(write=False) as seen:
                assert [row[0] for row in seen.execute("SELECT k FROM side ORDER BY k").fetchall()] == [2]
        with observer.transaction(write=False) as seen:
            assert [row[0] for row in seen.execute("SELECT k FROM side ORDER BY k").fetchall()] == [1, 2]
