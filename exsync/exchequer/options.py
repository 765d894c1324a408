"""The `exchequer:` section of the configuration, turned into a Mapping and the layer's options."""

import dataclasses
from collections.abc import Mapping
from typing import Any

from exsync.exchequer.accounts import AccountCodePattern
from exsync.exchequer.agent import DEFAULT_REPLY_TIMEOUT_SECONDS
from exsync.exchequer.comtoolkit import DEFAULT_ACCOUNT_KEY_FIELD
from exsync.exchequer.mapping import Mapping as ExchequerMapping
from exsync.exchequer.rules import ALL_LOCATIONS
from exsync.exchequer.writer import DEFAULT_LOCATION, DEFAULT_VAT_CODES

__all__ = ["DEFAULT_AGENT_TOOLKIT", "DEFAULT_WRITE_BACKEND", "ExchequerOptions", "mapping_for", "options_for"]

DEFAULT_WRITE_BACKEND = "emulator"
DEFAULT_AGENT_TOOLKIT = "com"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExchequerOptions:
    """Rules beyond names: which locations count, where lines go, VAT rates, account codes."""

    locations: str | tuple[str, ...] = ALL_LOCATIONS
    default_location: str = DEFAULT_LOCATION
    vat_codes: dict[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_VAT_CODES))
    account_codes: AccountCodePattern = dataclasses.field(default_factory=AccountCodePattern)
    write_backend: str = DEFAULT_WRITE_BACKEND
    agent_toolkit: str = DEFAULT_AGENT_TOOLKIT
    agent_data_directory: str | None = None
    agent_reply_timeout_seconds: float = DEFAULT_REPLY_TIMEOUT_SECONDS
    agent_account_key_field: str = DEFAULT_ACCOUNT_KEY_FIELD


def _section(config: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (config or {}).get("exchequer") or {}


def mapping_for(config: Mapping[str, Any] | None) -> ExchequerMapping:
    """The Mapping the configuration describes (an empty configuration: SQL edition, ZZZZ01)."""
    section = _section(config)
    keys = ("edition", "company", "table_prefix", "state_schema", "category_field", "web_flag_field",
            "web_flag_value", "tables", "columns")
    return ExchequerMapping(**{key: section[key] for key in keys if section.get(key) is not None})


def options_for(config: Mapping[str, Any] | None) -> ExchequerOptions:
    section = _section(config)
    defaults = ExchequerOptions()
    locations = section.get("locations", ALL_LOCATIONS)
    account_code = section.get("account_code") or {}
    agent = section.get("agent") or {}
    return ExchequerOptions(
        locations=ALL_LOCATIONS if locations == ALL_LOCATIONS else tuple(locations),
        default_location=section.get("default_location") or defaults.default_location,
        vat_codes=dict(section.get("vat_codes") or defaults.vat_codes),
        account_codes=AccountCodePattern(**{key: account_code[key] for key in ("pattern", "source")
                                            if account_code.get(key)}),
        write_backend=section.get("write_backend") or defaults.write_backend,
        agent_toolkit=agent.get("toolkit") or defaults.agent_toolkit,
        agent_data_directory=agent.get("data_directory"),
        agent_reply_timeout_seconds=float(agent.get("reply_timeout_seconds") or defaults.agent_reply_timeout_seconds),
        agent_account_key_field=agent.get("account_key_field") or defaults.agent_account_key_field,
    )
