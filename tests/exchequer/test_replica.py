"""The replica is the SQL edition's layout: every column exsync reads or writes is the vendor's, by name
and type, checked against a list taken from the vendor's schema files (data/vendor_columns.json, with
the repository, commit and files it came from); the tables the demo company gets are exactly those."""

import json
import pathlib

import pytest

from exsync.exchequer import (
    DatabaseError,
    Mapping,
    NotADemoCompanyError,
    connect,
    init_schema,
    is_demo_company,
    seed,
)
from exsync.exchequer.dialect import POSTGRESQL

VENDOR = json.loads((pathlib.Path(__file__).parent / "data" / "vendor_columns.json").read_text())
TYPES = {"int": "int", "float": "float", "bit": "bit"}


def _vendor_type(kind):
    kind = kind.removeprefix("standin:")
    if kind.startswith("str:"):
        return f"varchar({kind[4:]})"
    if kind.startswith(("pstr:", "bytes:")):
        return "varbinary"
    return TYPES[kind]


def _company_tables():
    return [spec for spec in Mapping().tables.values() if spec.home != "state"]


def test_the_vendor_list_names_where_it_came_from():
    assert VENDOR["repository"] == "adv-hack/Exchequer" and len(VENDOR["commit"]) == 40
    for table in VENDOR["tables"].values():
        assert table["source"].startswith(("ExchSQL/SQLEmulator/Schemas/", "ENTRPRSE/"))


@pytest.mark.parametrize("spec", _company_tables(), ids=lambda spec: spec.name)
def test_every_column_exsync_uses_is_the_vendors(spec):
    vendor = VENDOR["tables"][spec.name]
    assert spec.source == vendor["source"], "each table cites the vendor file it follows"
    for logical, column in spec.columns.items():
        where = f"{spec.name}.{column.name} ({logical})"
        if vendor.get("view"):
            assert column.name in vendor["columns"], f"{where} is not a column of the vendor's view"
        elif column.kind == "identity":
            assert column.name == "PositionId", where
        elif column.kind.startswith(("read:", "standin:")):
            assert column.name in vendor.get("computed", {}), f"{where} is not one of the vendor's computed columns"
        else:
            assert column.name in vendor["columns"], f"{where} is not in {vendor['source']}"
            assert vendor["columns"][column.name] == _vendor_type(column.kind), \
                f"{where}: vendor {vendor['columns'][column.name]}, exsync {column.kind}"


def test_the_names_exsync_reads_are_the_real_ones():
    names = Mapping(company="ACME01").bind(POSTGRESQL)
    assert names.sql("{accounts.price_band} {stock.desc_1} {stock.desc_6} {counters.counter_type} "
                     "{counters.next_number} {lines.stock_code_text} {documents.long_your_ref_text} "
                     "{lines.abs_line_no} {lines.sop_abs_line_no}") == (
        '"acDiscountBand" "stDescLine1" "stDescLine6" "ssCountType" "ssNextCount" "tlStockCodeTrans1" '
        '"thLongYourRefTrans" "tlABSLineNo" "tlSOPABSLineNo"')
    assert names.table("settings") == '"ACME01"."evw_SystemSettings"'
    assert names.table("vat_rates") == '"ACME01"."evw_VATRate"'
    assert names.table("bom_view") == '"ACME01"."evw_BillOfMaterials"'


def _columns(database, spec):
    names = database.names
    if database.dialect.name == "sqlite":
        table = names.qualified(spec).strip('"')
        with database.transaction(write=False) as cursor:
            return {row[1] for row in cursor.execute(f'PRAGMA table_xinfo("{table}")').fetchall()}
    with database.transaction(write=False) as cursor:
        return {row[0] for row in cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            (names.schema_of(spec), spec.name)).fetchall()}


def test_the_demo_company_has_exactly_the_declared_layout(database):
    assert is_demo_company(database)
    for spec in _company_tables():
        assert _columns(database, spec) == {column.name for column in spec.columns.values()}, spec.name


def test_pascal_strings_are_stored_binary_and_read_through_their_computed_copies(seeded):
    with seeded.transaction(write=False) as cursor:
        raw, text = cursor.run("SELECT {lines.stock_code}, {lines.stock_code_text} FROM {lines} "
                               "ORDER BY {lines.position_id}").fetchone()
    raw = bytes(raw)
    assert raw[0] == 16 and len(raw) == 21, "tlStockCode: a Pascal String[20] holding the code padded to 16"
    assert text == raw[1:17].decode() and text.rstrip() == text.rstrip().upper()


def test_init_and_seed_refuse_a_company_exsync_did_not_create(dsn):
    with connect(dsn) as database:
        table = database.names.table("accounts")
        with database.transaction() as cursor:
            schema = database.dialect.create_schema(database.mapping.company)
            if schema:
                cursor.execute(schema)
            cursor.execute(f'CREATE TABLE {table} ("acCode" VARCHAR(10))')
            cursor.execute(f"INSERT INTO {table} VALUES ('REAL01')")
        with pytest.raises(NotADemoCompanyError, match="not an exsync demo company"):
            init_schema(database)
        with pytest.raises(NotADemoCompanyError, match="seed refused"):
            seed(database, items=10, locations=1, boms=0, accounts=0)
        assert not is_demo_company(database)
        with database.transaction(write=False) as cursor:
            assert cursor.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 1
            with pytest.raises(DatabaseError):  # nothing else was created in the real company
                cursor.run("SELECT COUNT(*) FROM {stock}").fetchall()
