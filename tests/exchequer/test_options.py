"""The `exchequer:` configuration section becomes a Mapping and options."""

from exsync.exchequer import ALL_LOCATIONS, mapping_for, options_for
from exsync.exchequer.dialect import POSTGRESQL
from exsync.schemas.config import validate_config


def test_an_empty_configuration_gives_the_demo_defaults():
    config, problems = validate_config({})
    assert problems == []
    mapping, options = mapping_for(config), options_for(config)
    assert (mapping.company, mapping.edition, mapping.table_prefix) == ("ZZZZ01", "sql", None)
    assert options.locations == ALL_LOCATIONS and options.default_location == "MAI"
    assert options.vat_codes["S"] == 20.0 and options.account_codes.pattern == "LLLLNN"


def test_a_site_configuration_is_honoured():
    config, problems = validate_config({"exchequer": {
        "company": "ACME01", "locations": ["MAI", "W02"], "default_location": "W02",
        "category_field": "stUserField4", "web_flag_field": "stUserField5", "web_flag_value": "1",
        "account_code": {"pattern": "LLLNNN", "source": "surname"}, "vat_codes": {"S": 17.5, "Z": 0},
        "tables": {"settings": "SystemSetup"}, "columns": {"bom_view.parent_folio": "ParentFolio"}}})
    assert problems == []
    names = mapping_for(config).bind(POSTGRESQL)
    options = options_for(config)
    assert names.sql("{stock.category} {stock.web_flag} {bom_view.parent_folio} {settings}") == \
        '"stUserField4" "stUserField5" "ParentFolio" "ACME01"."SystemSetup"'
    assert mapping_for(config).web_flag_value == "1"
    assert options.locations == ("MAI", "W02") and options.default_location == "W02"
    assert options.vat_codes == {"S": 17.5, "Z": 0.0}
    assert (options.account_codes.pattern, options.account_codes.source) == ("LLLNNN", "surname")


def test_configuration_problems_are_listed_with_their_paths():
    _, problems = validate_config({"exchequer": {"locations": "some", "category_field": "stDesc1",
                                                 "account_code": {"pattern": "NNLL"}}})
    assert {path for path, _ in problems} == {"exchequer.locations", "exchequer.category_field",
                                              "exchequer.account_code.pattern"}
