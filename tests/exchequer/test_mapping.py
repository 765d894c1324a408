"""The mapping: SQL templates come out in the site's names, schemas or prefixes as the database allows."""

import pytest

from exsync.exchequer import Mapping, MappingError
from exsync.exchequer.dialect import MSSQL, POSTGRESQL, SQLITE


def test_sql_edition_names_on_a_database_with_schemas():
    names = Mapping(company="ACME01").bind(MSSQL)
    sql = names.sql("SELECT {stock.code}, {stock.qty_allocated} FROM {stock} WHERE {stock.type} = ?")
    assert sql == 'SELECT "stCode", "stQtyAllocated" FROM "ACME01"."STOCK" WHERE "stType" = ?'
    assert names.table("stock_locations") == '"ACME01"."StockLocation"'
    assert names.table("settings") == '"ACME01"."evw_SystemSettings"'
    assert names.table("external_keys") == '"exsync"."external_keys"'
    assert names.state_table("order_tracking") == '"exsync"."order_tracking"'


def test_prefix_replaces_schemas_on_sqlite():
    assert Mapping().bind(SQLITE).table("stock") == '"STOCK"'
    names = Mapping(table_prefix="ZZZZ01_", state_schema="sync").bind(SQLITE)
    assert names.table("documents") == '"ZZZZ01_DOCUMENT"'
    assert names.table("external_keys") == '"sync_external_keys"'
    assert names.state_table("order_tracking") == '"sync_order_tracking"'


def test_category_and_web_flag_follow_the_configured_user_fields():
    names = Mapping(category_field="stUserField5", web_flag_field="stUserField9").bind(POSTGRESQL)
    assert names.sql("{stock.category} {stock.web_flag}") == '"stUserField5" "stUserField9"'


def test_a_site_overrides_table_and_column_names():
    mapping = Mapping(tables={"bom_view": "BOMLINES"}, columns={"bom_view.parent_folio": "ParentFolio",
                                                               "accounts.price_band": "acUserDef3"})
    names = mapping.bind(POSTGRESQL)
    assert names.table("bom_view") == '"ZZZZ01"."BOMLINES"'
    assert names.column("bom_view", "parent_folio") == '"ParentFolio"'
    assert names.column("accounts", "price_band") == '"acUserDef3"'


@pytest.mark.parametrize("arguments, complaint", [
    ({"edition": "btrieve"}, "unknown Exchequer edition"),
    ({"category_field": "stDesc1"}, "not a stock user field"),
    ({"web_flag_field": "stDescLine1"}, "neither a stock user field"),
    ({"category_field": "stUserField2"}, "different user fields"),
    ({"tables": {"stocks": "X"}}, "unknown table 'stocks'"),
    ({"columns": {"stock.colour": "X"}}, "unknown column 'stock.colour'"),
])
def test_impossible_mappings_are_refused(arguments, complaint):
    with pytest.raises(MappingError, match=complaint):
        Mapping(**arguments)


def test_a_template_naming_an_unmapped_column_is_an_error():
    with pytest.raises(MappingError, match="colour"):
        Mapping().bind(SQLITE).sql("SELECT {stock.colour} FROM {stock}")


def test_the_web_flag_may_be_exchequers_ebusiness_flag():
    mapping = Mapping(web_flag_field="stUseForEbus")
    assert mapping.bind(POSTGRESQL).sql("{stock.web_flag}") == '"stUseForEbus"'
    assert mapping.web_flag_value == "1"
