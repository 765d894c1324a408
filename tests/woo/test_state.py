"""The reconciler's watermark store: a table in the state database."""

import pytest

from exsync.exchequer import StateValues, connect


@pytest.fixture(params=["sqlite", "postgresql"])
def state_dsn(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("pg_odbc_dsn")


def test_values_survive_a_new_connection(state_dsn):
    key = "woo.reconciler.orders:http://shop"
    with connect(state_dsn) as database:
        first = StateValues(database=database).ensure()
        assert first.get(key) is None
        first.set(key, "2026-11-27T10:00:00+00:00")
        first.set("woo.reconciler.customers:http://shop", "2026-11-27T09:00:00+00:00")
        first.set(key, "2026-11-27T11:00:00+00:00")
    with connect(state_dsn) as database:
        second = StateValues(database=database).ensure()
        assert second.get(key) == "2026-11-27T11:00:00+00:00"
        assert second.get("woo.reconciler.customers:http://shop") == "2026-11-27T09:00:00+00:00"
