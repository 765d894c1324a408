"""Exchequer's table and column names and types: the one module that spells them.

The SQL edition (sql_edition.py; the record layout and encodings: layout.py) is Exchequer's real
layout (adv-hack/Exchequer, `ExchSQL/SQLEmulator/Schemas`), as far as exsync reads or writes it;
each table cites the vendor file it follows, and tests/exchequer/data/vendor_columns.json (taken
from those files) checks every name and type. The demo company is built from the same declaration
(schema.py), so the replica and the real company cannot drift apart.

Code everywhere else uses logical names (`stock.qty_in_stock`) and formats its SQL through a
`BoundNames` (a mapping bound to a dialect); a site overrides a name with `exchequer.tables` /
`exchequer.columns`, never by editing code.

Column kinds: `identity` (PositionId), `int`, `float`, `bit`, `str:<n>` (varchar(n)), `pstr:<n>`
(varbinary holding a Pascal short string of up to n characters: a length byte, the text, padding),
`bytes:<n>` (other varbinary), `read:<logical>` (the readable copy of a `pstr` column, a computed
column on the real company and a generated column in the replica; read-only) and `standin:<kind>`
(a computed column of the real company whose decoding from binary exsync does not replicate: the
replica stores the value, written next to its binary source).
"""

import dataclasses
import re
import string

from exsync.exchequer.dialect import Dialect
from exsync.exchequer.errors import MappingError
from exsync.exchequer.layout import (
    ACCOUNT_CODE_LENGTH,
    BOM_RECORD_PREFIX,
    BOM_SUB_TYPE,
    COMPLETED_ORDER_RUN_NO,
    CUSTOMER_HISTORY_CLASS,
    DEFAULT_COMMON_SCHEMA,
    DOC_TYPE_NAMES,
    DOC_TYPES,
    EBUS_WEB_FLAG_FIELD,
    FOLIO_COUNTER,
    LINE_TYPES,
    NO_PRICE_BANDS,
    NOTE_RECORD_PREFIX,
    PRICE_BANDS,
    RUN_NO,
    STOCK_CODE_LENGTH,
    STOCK_TYPES,
    VAT_ANALYSIS,
    VAT_RATE_SLOTS,
    Column,
    TableSpec,
    folio_bytes,
    pascal_bytes,
    pascal_text,
    real48_bytes,
    real48_value,
)
from exsync.exchequer.sql_edition import sql_edition
from exsync.schemas.config import (
    DEFAULT_CATEGORY_FIELD,
    DEFAULT_COMPANY,
    DEFAULT_EDITION,
    DEFAULT_STATE_SCHEMA,
    DEFAULT_WEB_FLAG_FIELD,
    DEFAULT_WEB_FLAG_VALUE,
)

__all__ = [
    "ACCOUNT_CODE_LENGTH",
    "BOM_RECORD_PREFIX",
    "BOM_SUB_TYPE",
    "COMPLETED_ORDER_RUN_NO",
    "CUSTOMER_HISTORY_CLASS",
    "DEFAULT_CATEGORY_FIELD",
    "DEFAULT_COMPANY",
    "DEFAULT_EDITION",
    "DEFAULT_STATE_SCHEMA",
    "DEFAULT_WEB_FLAG_FIELD",
    "DEFAULT_WEB_FLAG_VALUE",
    "DOC_TYPES",
    "DOC_TYPE_NAMES",
    "EBUS_WEB_FLAG_FIELD",
    "EDITIONS",
    "FOLIO_COUNTER",
    "LINE_TYPES",
    "NOTE_RECORD_PREFIX",
    "NO_PRICE_BANDS",
    "PRICE_BANDS",
    "RUN_NO",
    "STOCK_CODE_LENGTH",
    "STOCK_TYPES",
    "VAT_ANALYSIS",
    "VAT_RATE_SLOTS",
    "BoundNames",
    "Column",
    "Mapping",
    "TableSpec",
    "folio_bytes",
    "pascal_bytes",
    "pascal_text",
    "real48_bytes",
    "real48_value",
]


EDITIONS = {"sql": sql_edition}
USER_FIELD_PATTERN = re.compile(r"^stUserField([1-9]|10)$")
WEB_FLAG_PATTERN = re.compile(rf"^(stUserField([1-9]|10)|{EBUS_WEB_FLAG_FIELD})$")


class Mapping:
    """Where a company's tables are and what their columns are called, for one edition.

    `company` is the schema on databases with schemas (SQL Server, PostgreSQL); `table_prefix`
    replaces schemas where there are none (SQLite): `None` there means no prefix. The
    integration's own tables go in `state_schema`, or get `state_schema + "_"` as a prefix.
    """

    def __init__(self, *, edition: str = DEFAULT_EDITION, company: str = DEFAULT_COMPANY,
                 table_prefix: str | None = None, common_schema: str = DEFAULT_COMMON_SCHEMA,
                 state_schema: str = DEFAULT_STATE_SCHEMA, category_field: str = DEFAULT_CATEGORY_FIELD,
                 web_flag_field: str = DEFAULT_WEB_FLAG_FIELD, web_flag_value: str = DEFAULT_WEB_FLAG_VALUE,
                 tables: dict[str, str] | None = None, columns: dict[str, str] | None = None) -> None:
        if edition not in EDITIONS:
            raise MappingError(f"unknown Exchequer edition {edition!r}; known: {', '.join(EDITIONS)}")
        if not USER_FIELD_PATTERN.match(category_field):
            raise MappingError(f"{category_field!r} is not a stock user field (stUserField1..stUserField10)")
        if not WEB_FLAG_PATTERN.match(web_flag_field):
            raise MappingError(f"{web_flag_field!r} is neither a stock user field (stUserField1..stUserField10) "
                               f"nor {EBUS_WEB_FLAG_FIELD}")
        if category_field == web_flag_field:
            raise MappingError("the category and the web flag need different user fields")
        self.edition = edition
        self.company = company
        self.table_prefix = table_prefix
        self.common_schema = common_schema
        self.state_schema = state_schema
        # Exchequer's eBusiness flag is an int: 1 is on.
        if web_flag_field == EBUS_WEB_FLAG_FIELD and web_flag_value == DEFAULT_WEB_FLAG_VALUE:
            web_flag_value = "1"
        self.web_flag_value = web_flag_value
        specs = EDITIONS[edition]()
        for logical, physical in (tables or {}).items():
            if logical not in specs:
                raise MappingError(f"exchequer.tables names unknown table {logical!r}")
            specs[logical] = dataclasses.replace(specs[logical], name=physical)
        for dotted, physical in (columns or {}).items():
            table, _, column = dotted.partition(".")
            if table not in specs or column not in specs[table].columns:
                raise MappingError(f"exchequer.columns names unknown column {dotted!r}")
            spec = specs[table]
            spec.columns[column] = dataclasses.replace(spec.columns[column], name=physical)
        stock = specs["stock"]
        by_physical = {column.name: logical for logical, column in stock.columns.items()}
        specs["stock"] = dataclasses.replace(stock, aliases={
            "category": by_physical[category_field], "web_flag": by_physical[web_flag_field]})
        self.tables = specs

    def bind(self, dialect: Dialect) -> "BoundNames":
        return BoundNames(mapping=self, dialect=dialect)

    def __repr__(self) -> str:
        return f"Mapping(edition={self.edition!r}, company={self.company!r}, table_prefix={self.table_prefix!r})"


class _TableRef:
    """Formats as the qualified table name; attributes are its quoted column names."""

    def __init__(self, names: "BoundNames", logical: str) -> None:
        self._names = names
        self._spec = names.mapping.tables[logical]

    def __format__(self, spec: str) -> str:
        return self._names.qualified(self._spec)

    def __getattr__(self, logical: str) -> str:
        return self._names.dialect.quote(self._spec.physical(logical))


class BoundNames:
    """A mapping bound to a dialect: formats SQL templates such as
    `SELECT {stock.code} FROM {stock} WHERE {stock.type} = ?` into the site's names."""

    def __init__(self, *, mapping: Mapping, dialect: Dialect) -> None:
        self.mapping = mapping
        self.dialect = dialect
        self._refs = {logical: _TableRef(self, logical) for logical in mapping.tables}
        self._cache: dict[str, str] = {}

    def sql(self, template: str) -> str:
        text = self._cache.get(template)
        if text is None:
            try:
                text = string.Formatter().vformat(template, (), self._refs)
            except (KeyError, AttributeError) as error:
                raise MappingError(f"SQL template names something not in the mapping: {error}") from error
            self._cache[template] = text
        return text

    def schema_of(self, spec: TableSpec) -> str | None:
        """The schema a table lives in, or None on databases without schemas."""
        if not self.dialect.supports_schemas:
            return None
        return {"company": self.mapping.company, "common": self.mapping.common_schema,
                "state": self.mapping.state_schema}[spec.home]

    def qualified(self, spec: TableSpec) -> str:
        schema = self.schema_of(spec)
        if schema is not None:
            return f"{self.dialect.quote(schema)}.{self.dialect.quote(spec.name)}"
        if spec.home == "state":
            prefix = f"{self.mapping.state_schema}_"
        else:
            prefix = self.mapping.table_prefix or ""
        return self.dialect.quote(prefix + spec.name)

    def table(self, logical: str) -> str:
        return self.qualified(self.mapping.tables[logical])

    def state_table(self, name: str) -> str:
        """Where one of the integration's own tables called `name` lives: `"exsync"."name"`, or
        `"exsync_name"` on databases without schemas (for the other packages' state tables)."""
        return self.qualified(TableSpec(name, {}, home="state"))

    def column(self, logical_table: str, logical_column: str) -> str:
        return self.dialect.quote(self.mapping.tables[logical_table].physical(logical_column))
