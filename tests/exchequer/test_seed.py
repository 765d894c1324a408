"""The demo company: reproducible and realistic."""

import pytest

from exsync.exchequer import ExchequerReader, SeedError, connect, init_schema, seed
from tests.exchequer.conftest import SMALL_SEED


def _snapshot(database):
    reader = ExchequerReader(database=database)
    return list(reader.iter_stock_items()), reader.bom_components(), list(reader.iter_accounts())


def test_the_same_seed_gives_the_same_company(tmp_path):
    snapshots = []
    for name in ("one", "two"):
        with connect(f"sqlite:///{tmp_path}/{name}.db") as database:
            init_schema(database)
            seed(database, **SMALL_SEED)
            snapshots.append(_snapshot(database))
    assert snapshots[0] == snapshots[1]
    with connect(f"sqlite:///{tmp_path}/three.db") as database:
        init_schema(database)
        seed(database, **SMALL_SEED, seed_value=1)
        assert _snapshot(database)[0] != snapshots[0][0]


def test_both_backends_hold_the_same_company(tmp_path, pg_odbc_dsn):
    snapshots = []
    for dsn in (f"sqlite:///{tmp_path}/company.db", pg_odbc_dsn):
        with connect(dsn) as database:
            init_schema(database)
            seed(database, **SMALL_SEED)
            items, boms, accounts = _snapshot(database)
            # the servers' collations may order codes differently; the content must not differ
            snapshots.append(({i.code: i for i in items}, boms, {a.code: a for a in accounts}))
    assert snapshots[0] == snapshots[1]


def test_the_company_looks_like_exchequer(seeded):
    reader = ExchequerReader(database=seeded)
    items = list(reader.iter_stock_items())
    products = [i for i in items if i.type == "P"]
    assert len([i for i in items if i.code.startswith("KIT-")]) == SMALL_SEED["boms"]
    assert {i.type for i in items} == {"G", "P", "D", "X", "M"}
    assert [code for code, _ in reader.locations()] == ["MAI", "W02", "W03"]
    for product in products:
        assert len(product.locations) == 3
        assert product.in_stock == sum(ls.in_stock for ls in product.locations)
        assert product.allocated == sum(ls.allocated for ls in product.locations)
        assert all(ls.picked <= ls.allocated <= ls.in_stock for ls in product.locations)
        assert 0 < product.band_b_price < product.band_a_price
        assert product.category and product.code.split("-")[1].isdigit()
    assert any(p.allocated > 0 for p in products) and any(p.picked > 0 for p in products)
    assert {p.web_enabled for p in products} == {True, False}
    boms = reader.bom_components()
    assert any(c.component_code.startswith("KIT-") for components in boms.values() for c in components)
    assert any(c.component_type == "D" for components in boms.values() for c in components)
    accounts = list(reader.iter_accounts())
    assert len(accounts) == SMALL_SEED["accounts"]
    assert {a.price_band for a in accounts} == {"A", "B"}
    assert all(len(a.code) == 6 and a.code.isupper() and a.email for a in accounts)
    assert reader.free_stock_settings().excludes_sales_orders is False


def test_a_seeded_company_is_not_seeded_twice(seeded):
    with pytest.raises(SeedError, match="already holds"):
        seed(seeded, **SMALL_SEED)
