"""`exsync exchequer init` and `exsync exchequer seed` against a SQLite demo company."""

import os
import subprocess
import sys

from exsync.exchequer import ExchequerReader, connect


def _exsync(*args, dsn):
    env = {**os.environ, "EXSYNC_EXCHEQUER_DSN": dsn}
    env.pop("EXSYNC_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "exsync.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_init_then_seed_then_refuse_to_seed_again(sqlite_dsn):
    assert _exsync("exchequer", "init", dsn=sqlite_dsn).returncode == 0
    seeded = _exsync("exchequer", "seed", "--items", "40", "--locations", "2", "--boms", "3", "--accounts", "5",
                     dsn=sqlite_dsn)
    assert seeded.returncode == 0, seeded.stderr
    assert "seeded 51 stock rows" in seeded.stdout
    with connect(sqlite_dsn) as database:
        reader = ExchequerReader(database=database)
        assert [code for code, _ in reader.locations()] == ["MAI", "W02"]
        assert len(list(reader.iter_accounts())) == 5
    again = _exsync("exchequer", "seed", "--items", "40", dsn=sqlite_dsn)
    assert again.returncode == 1 and "already holds stock" in again.stderr


def test_a_missing_driver_is_reported_with_its_package():
    result = _exsync("exchequer", "init", dsn="Driver={ODBC Driver 18 for SQL Server};Server=db;Database=x;")
    assert result.returncode == 1
    assert "msodbcsql18" in result.stderr
