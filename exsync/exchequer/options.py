"""The `exchequer:` section of the configuration, turned into a Mapping and the layer's options."""

import dataclasses

from exsync.exchequer.accounts import AccountCodePattern
from exsync.exchequer.mapping import Mapping
from exsync.exchequer.rules import ALL_LOCATIONS
from exsync.schemas.sections import Config

__all__ = ["ExchequerOptions", "mapping_for", "options_for"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExchequerOptions:
    """Rules beyond names: which locations count, where lines go, VAT rates, account codes (made by
    `options_for`: the defaults are the configuration schema's)."""

    locations: str | tuple[str, ...]
    default_location: str
    vat_codes: dict
    account_codes: AccountCodePattern
    write_backend: str
    agent_toolkit: str
    agent_data_directory: str | None
    agent_reply_timeout_seconds: float
    agent_account_key_field: str


def mapping_for(config: Config) -> Mapping:
    """The Mapping the configuration describes (an empty configuration: SQL edition, ZZZZ01)."""
    section = config.exchequer
    keys = ("edition", "company", "table_prefix", "state_schema", "category_field", "web_flag_field",
            "web_flag_value", "tables", "columns")
    return Mapping(**{key: getattr(section, key) for key in keys if getattr(section, key) is not None})


def options_for(config: Config) -> ExchequerOptions:
    """The `exchequer:` section's rules beyond names."""
    section = config.exchequer
    return ExchequerOptions(
        locations=ALL_LOCATIONS if section.locations == ALL_LOCATIONS else tuple(section.locations),
        default_location=section.default_location,
        vat_codes=dict(section.vat_codes),
        account_codes=AccountCodePattern(pattern=section.account_code.pattern, source=section.account_code.source),
        write_backend=section.write_backend,
        agent_toolkit=section.agent.toolkit,
        agent_data_directory=section.agent.data_directory,
        agent_reply_timeout_seconds=float(section.agent.reply_timeout_seconds),
        agent_account_key_field=section.agent.account_key_field,
    )
