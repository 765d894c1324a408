"""init_schema: the company's tables, views, system setup records and counters, created once."""

from exsync.exchequer import connect, init_schema
from exsync.exchequer.schema import COUNTER_TYPES


def test_init_is_idempotent_and_creates_settings_and_counters(database):
    init_schema(database)
    with database.transaction(write=False) as cursor:
        assert cursor.scalar("SELECT COUNT(*) FROM {settings}") == 1
        assert cursor.scalar("SELECT COUNT(*) FROM {system_setup}") == 2  # the 'SYS' and 'VAT' records
        counters = {row[0]: row[1] for row in cursor.run(
            "SELECT {counters.counter_type}, {counters.next_number} FROM {counters}").fetchall()}
        assert counters == {counter: 1 for counter in COUNTER_TYPES}
        assert cursor.scalar("SELECT COUNT(*) FROM {stock}") == 0


def test_tables_live_in_the_company_schema_on_postgresql(pg_odbc_dsn):
    with connect(pg_odbc_dsn) as database:
        init_schema(database)
        with database.transaction(write=False) as cursor:
            found = {(row[0], row[1]) for row in cursor.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema IN ('ZZZZ01', 'common', 'exsync')").fetchall()}
    assert {("ZZZZ01", "STOCK"), ("ZZZZ01", "StockLocation"), ("ZZZZ01", "EXCHQCHK"), ("ZZZZ01", "DOCUMENT"),
            ("ZZZZ01", "DETAILS"), ("ZZZZ01", "CUSTSUPP"), ("ZZZZ01", "EXCHQNUM"), ("ZZZZ01", "Location"),
            ("ZZZZ01", "EXCHQSS"), ("ZZZZ01", "HISTORY"), ("ZZZZ01", "evw_SystemSettings"),
            ("ZZZZ01", "evw_VATRate"), ("ZZZZ01", "evw_BillOfMaterials"), ("exsync", "external_keys"),
            ("exsync", "demo_company")} <= found
    assert not any(schema == "common" for schema, _ in found), "the settings view is in the company schema"


def test_a_prefix_keeps_two_companies_apart_in_one_sqlite_file(sqlite_dsn):
    from exsync.exchequer import Mapping, seed

    with connect(sqlite_dsn, mapping=Mapping(table_prefix="AAAA01_")) as first:
        init_schema(first)
        seed(first, items=10, locations=1, boms=0, accounts=0)
    with connect(sqlite_dsn, mapping=Mapping(table_prefix="BBBB01_")) as second:
        init_schema(second)
        with second.transaction(write=False) as cursor:
            assert cursor.scalar("SELECT COUNT(*) FROM {stock}") == 0
            assert cursor.execute('SELECT COUNT(*) FROM "AAAA01_STOCK"').fetchone()[0] == 18
