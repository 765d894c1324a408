"""Exchequer's table and column names: the one module that spells them.

Code everywhere else uses logical names (`stock.qty_in_stock`) and formats its SQL through a
`BoundNames` (a mapping bound to a dialect), so a site points exsync at its own company by
configuration, never by editing code. Names marked "modeled" are the project's stand-ins where no
public source gave Exchequer's real name (see /work/shared/exchequer.md); a site confirms or
overrides them with `exchequer.tables` / `exchequer.columns`.

Document progress is modeled on the lines: an SDN or SIN line carries the folio of the SOR it was
raised from in `tlSOPFolioNum` and that SOR line's number in `tlSOPABSLineNo` (both modeled).
"""

import dataclasses
import re
import string

from exsync.exchequer.errors import MappingError

__all__ = [
    "BOM_RECORD_PREFIX",
    "BOM_SUB_TYPE",
    "DEFAULT_CATEGORY_FIELD",
    "DEFAULT_COMPANY",
    "DEFAULT_EDITION",
    "DEFAULT_STATE_SCHEMA",
    "DEFAULT_WEB_FLAG_FIELD",
    "DEFAULT_WEB_FLAG_VALUE",
    "DOC_TYPES",
    "DOC_TYPE_NAMES",
    "EDITIONS",
    "FOLIO_COUNTER",
    "PRICE_BANDS",
    "RUN_NO",
    "STOCK_TYPES",
    "BoundNames",
    "Column",
    "Mapping",
    "TableSpec",
]

DEFAULT_EDITION = "sql"
DEFAULT_COMPANY = "ZZZZ01"
DEFAULT_COMMON_SCHEMA = "common"
DEFAULT_STATE_SCHEMA = "exsync"
DEFAULT_CATEGORY_FIELD = "stUserField1"
DEFAULT_WEB_FLAG_FIELD = "stUserField2"
DEFAULT_WEB_FLAG_VALUE = "Y"

DOC_TYPES = {"SIN": 0, "SRC": 1, "SCR": 2, "SRF": 5, "SQU": 7, "SOR": 8, "SDN": 9, "PIN": 15,
             "POR": 23, "PDN": 24, "ADJ": 35, "WOR": 40, "SRN": 44}
DOC_TYPE_NAMES = {number: name for name, number in DOC_TYPES.items()}
# thRunNo: -40 is an unposted sales order (Exchequer's); 0 for the rest is modeled.
RUN_NO = {"SOR": -40, "SQU": 0, "SDN": 0, "SIN": 0}
BOM_RECORD_PREFIX = "B"
BOM_SUB_TYPE = 77
# Folio numbers come from an EXCHQNUM row of their own (modeled key).
FOLIO_COUNTER = "FOL"
STOCK_TYPES = {"G": "group", "P": "product", "D": "description only", "M": "bill of materials",
               "X": "discontinued"}
PRICE_BANDS = "ABCDEFGH"


@dataclasses.dataclass(frozen=True)
class Column:
    """One column: its physical name and kind (`identity`, `int`, `float`, `str:<length>`)."""

    name: str
    kind: str
    unique: bool = False


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """One table: physical name, columns by logical name, keys, and where it lives.

    `home` is `company` (the company schema), `common` (Exchequer's shared schema) or `state`
    (the integration's own tables). `aliases` map extra logical names onto existing columns
    (the configured category and web-flag user fields); they are not created twice.
    """

    name: str
    columns: dict
    home: str = "company"
    unique: tuple = ()
    indexes: tuple = ()
    aliases: dict = dataclasses.field(default_factory=dict)

    def physical(self, logical):
        if logical in self.columns:
            return self.columns[logical].name
        if logical in self.aliases:
            return self.columns[self.aliases[logical]].name
        raise MappingError(f"table {self.name} has no column {logical!r} in the mapping")


def _numbered(logical, physical, count, kind):
    return {f"{logical}_{n}": Column(f"{physical}{n}", kind) for n in range(1, count + 1)}


def _sql_edition():
    identity = {"position_id": Column("PositionId", "identity")}
    return {
        "accounts": TableSpec("CUSTSUPP", {
            **identity,
            "code": Column("acCode", "str:6"),
            "cust_supp": Column("acCustSupp", "str:1"),
            "company": Column("acCompany", "str:45"),
            **_numbered("address", "acAddressLine", 5, "str:30"),
            "post_code": Column("acPostCode", "str:20"),
            "email": Column("acEmailAddr", "str:100"),
            "contact": Column("acContact", "str:30"),  # modeled
            "phone": Column("acPhone", "str:30"),  # modeled
            "price_band": Column("acPriceBand", "str:1"),  # modeled
            "last_used": Column("acLastUsed", "str:8"),
            **_numbered("user_def", "acUserDef", 10, "str:30"),
        }, unique=(("code",),), indexes=(("email",),)),
        "stock": TableSpec("STOCK", {
            **identity,
            "code": Column("stCode", "str:16"),
            "folio": Column("stFolioNum", "int"),
            **_numbered("desc", "stDesc", 6, "str:35"),
            "type": Column("stType", "str:1"),
            "parent_code": Column("stParentCode", "str:16"),
            "qty_in_stock": Column("stQtyInStock", "float"),
            "qty_allocated": Column("stQtyAllocated", "float"),
            "qty_picked": Column("stQtyPicked", "float"),
            "qty_on_order": Column("stQtyOnOrder", "float"),
            **{f"band_{band.lower()}_price": Column(f"stSalesBand{n}Price", "float")
               for n, band in enumerate(PRICE_BANDS, start=1)},
            **_numbered("user_field", "stUserField", 10, "str:30"),
        }, unique=(("code",), ("folio",))),
        "stock_locations": TableSpec("StockLocation", {
            **identity,
            "stock_code": Column("LsStkCode", "str:16"),
            "location": Column("LsLocCode", "str:3"),
            "qty_in_stock": Column("LsQtyInStock", "float"),
            "qty_allocated": Column("LsQtyAlloc", "float"),
            "qty_picked": Column("LsQtyPicked", "float"),
            "qty_on_order": Column("LsQtyOnOrder", "float"),
        }, unique=(("stock_code", "location"),)),
        "locations": TableSpec("Location", {
            **identity,
            "code": Column("LoCode", "str:3"),
            "name": Column("LoName", "str:45"),
        }, unique=(("code",),)),
        "bom": TableSpec("EXCHQCHK", {
            **identity,
            "record_prefix": Column("RecPfix", "str:1"),
            "sub_type": Column("SubType", "int"),
            "parent_folio": Column("StockFolio", "int"),  # modeled
            "component_code": Column("FullStkCode", "str:16"),
            "qty_used": Column("QtyUsed", "float"),
        }, indexes=(("record_prefix", "sub_type", "parent_folio"),)),
        "documents": TableSpec("DOCUMENT", {
            **identity,
            "our_ref": Column("thOurRef", "str:10"),
            "folio": Column("thFolioNum", "int"),
            "doc_type": Column("thDocType", "int"),
            "account_code": Column("thAcCode", "str:6"),
            "run_no": Column("thRunNo", "int"),
            "trans_date": Column("thTransDate", "str:8"),
            "your_ref": Column("thYourRef", "str:10"),
            "long_your_ref": Column("thLongYourRef", "str:20"),
            "net_value": Column("thNetValue", "float"),  # modeled
            "total_vat": Column("thTotalVAT", "float"),  # modeled
            **_numbered("user_field", "thUserField", 12, "str:30"),
        }, unique=(("our_ref",), ("folio",)), indexes=(("account_code",),)),
        "lines": TableSpec("DETAILS", {
            **identity,
            "folio": Column("tlFolioNum", "int"),
            "our_ref": Column("tlOurRef", "str:10"),
            "line_no": Column("tlLineNo", "int"),
            "stock_code": Column("tlStockCode", "str:16"),
            "qty": Column("tlQty", "float"),
            "qty_delivered": Column("tlQtyDel", "float"),
            "qty_picked": Column("tlQtyPicked", "float"),
            "location": Column("tlLocation", "str:3"),
            "net_value": Column("tlNetValue", "float"),
            "discount": Column("tlDiscount", "float"),
            "vat_code": Column("tlVATCode", "str:1"),
            "vat_amount": Column("tlVATAmount", "float"),
            "description": Column("tlDescription", "str:60"),
            "account_code": Column("tlAcCode", "str:6"),
            "sop_folio": Column("tlSOPFolioNum", "int"),  # modeled: the SOR an SDN/SIN line came from
            "sop_line_no": Column("tlSOPABSLineNo", "int"),  # modeled: that SOR line's number
            **_numbered("user_field", "tlUserField", 10, "str:30"),
        }, indexes=(("folio",), ("sop_folio",))),
        "counters": TableSpec("EXCHQNUM", {
            **identity,
            "counter_type": Column("CountTyp", "str:3"),  # modeled
            "next_number": Column("NextCount", "int"),  # modeled
        }, unique=(("counter_type",),)),
        # A view in Exchequer; modeled as a one-row table.
        "settings": TableSpec("evw_SystemSettings", {
            "free_stock_excludes_sales_orders": Column("FreeStockExcludesSalesOrders", "int"),
            "orders_allocate_when_picked": Column("OrdersToAllocateStockWhenPicked", "int"),
        }, home="common"),
        # The integration's own: one row per external key written (order id, customer id...).
        "external_keys": TableSpec("external_keys", {
            "kind": Column("kind", "str:16"),
            "external_key": Column("external_key", "str:100"),
            "reference": Column("reference", "str:16"),
        }, home="state", unique=(("kind", "external_key"),)),
    }


EDITIONS = {"sql": _sql_edition}
USER_FIELD_PATTERN = re.compile(r"^stUserField([1-9]|10)$")


class Mapping:
    """Where a company's tables are and what their columns are called, for one edition.

    `company` is the schema on databases with schemas (SQL Server, PostgreSQL); `table_prefix`
    replaces schemas where there are none (SQLite): `None` there means no prefix. The
    integration's own tables go in `state_schema`, or get `state_schema + "_"` as a prefix.
    """

    def __init__(self, *, edition=DEFAULT_EDITION, company=DEFAULT_COMPANY, table_prefix=None,
                 common_schema=DEFAULT_COMMON_SCHEMA, state_schema=DEFAULT_STATE_SCHEMA,
                 category_field=DEFAULT_CATEGORY_FIELD, web_flag_field=DEFAULT_WEB_FLAG_FIELD,
                 web_flag_value=DEFAULT_WEB_FLAG_VALUE, tables=None, columns=None):
        if edition not in EDITIONS:
            raise MappingError(f"unknown Exchequer edition {edition!r}; known: {', '.join(EDITIONS)}")
        for field in (category_field, web_flag_field):
            if not USER_FIELD_PATTERN.match(field):
                raise MappingError(f"{field!r} is not a stock user field (stUserField1..stUserField10)")
        if category_field == web_flag_field:
            raise MappingError("the category and the web flag need different user fields")
        self.edition = edition
        self.company = company
        self.table_prefix = table_prefix
        self.common_schema = common_schema
        self.state_schema = state_schema
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

    def bind(self, dialect):
        return BoundNames(mapping=self, dialect=dialect)

    def __repr__(self):
        return f"Mapping(edition={self.edition!r}, company={self.company!r}, table_prefix={self.table_prefix!r})"


class _TableRef:
    """Formats as the qualified table name; attributes are its quoted column names."""

    def __init__(self, names, logical):
        self._names = names
        self._spec = names.mapping.tables[logical]

    def __format__(self, spec):
        return self._names.qualified(self._spec)

    def __getattr__(self, logical):
        return self._names.dialect.quote(self._spec.physical(logical))


class BoundNames:
    """A mapping bound to a dialect: formats SQL templates such as
    `SELECT {stock.code} FROM {stock} WHERE {stock.type} = ?` into the site's names."""

    def __init__(self, *, mapping, dialect):
        self.mapping = mapping
        self.dialect = dialect
        self._refs = {logical: _TableRef(self, logical) for logical in mapping.tables}
        self._cache = {}

    def sql(self, template):
        text = self._cache.get(template)
        if text is None:
            try:
                text = string.Formatter().vformat(template, (), self._refs)
            except (KeyError, AttributeError) as error:
                raise MappingError(f"SQL template names something not in the mapping: {error}") from error
            self._cache[template] = text
        return text

    def schema_of(self, spec):
        """The schema a table lives in, or None on databases without schemas."""
        if not self.dialect.supports_schemas:
            return None
        return {"company": self.mapping.company, "common": self.mapping.common_schema,
                "state": self.mapping.state_schema}[spec.home]

    def qualified(self, spec):
        schema = self.schema_of(spec)
        if schema is not None:
            return f"{self.dialect.quote(schema)}.{self.dialect.quote(spec.name)}"
        if spec.home == "state":
            prefix = f"{self.mapping.state_schema}_"
        else:
            prefix = self.mapping.table_prefix or ""
        return self.dialect.quote(prefix + spec.name)

    def table(self, logical):
        return self.qualified(self.mapping.tables[logical])

    def state_table(self, name):
        """Where one of the integration's own tables called `name` lives: `"exsync"."name"`, or
        `"exsync_name"` on databases without schemas (for the other packages' state tables)."""
        return self.qualified(TableSpec(name, {}, home="state"))

    def column(self, logical_table, logical_column):
        return self.dialect.quote(self.mapping.tables[logical_table].physical(logical_column))
