"""The `exchequer:` section of the configuration, turned into a Mapping and the layer's options."""

import dataclasses

from exsync.exchequer.accounts import AccountCodePattern
from exsync.exchequer.mapping import Mapping
from exsync.exchequer.rules import ALL_LOCATIONS
from exsync.exchequer.writer import DEFAULT_LOCATION, DEFAULT_VAT_CODES

__all__ = ["ExchequerOptions", "mapping_for", "options_for"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExchequerOptions:
    """Rules beyond names: which locations count, where lines go, VAT rates, account codes."""

    locations: object = ALL_LOCATIONS
    default_location: str = DEFAULT_LOCATION
    vat_codes: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_VAT_CODES))
    account_codes: AccountCodePattern = dataclasses.field(default_factory=AccountCodePattern)


def _section(config):
    return (config or {}).get("exchequer") or {}


def mapping_for(config):
    """The Mapping the configuration describes (an empty configuration: SQL edition, ZZZZ01)."""
    section = _section(config)
    keys = ("edition", "company", "table_prefix", "state_schema", "category_field", "web_flag_field",
            "web_flag_value", "tables", "columns")
    return Mapping(**{key: section[key] for key in keys if section.get(key) is not None})


def options_for(config):
    section = _section(config)
    defaults = ExchequerOptions()
    locations = section.get("locations", ALL_LOCATIONS)
    account_code = section.get("account_code") or {}
    return ExchequerOptions(
        locations=ALL_LOCATIONS if locations == ALL_LOCATIONS else tuple(locations),
        default_location=section.get("default_location") or defaults.default_location,
        vat_codes=dict(section.get("vat_codes") or defaults.vat_codes),
        account_codes=AccountCodePattern(**{key: account_code[key] for key in ("pattern", "source")
                                            if account_code.get(key)}),
    )
