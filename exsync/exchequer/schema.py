"""Builds the demo company: a replica of the SQL edition's layout, from the declaration in mapping.py.

Only a database exsync marked as its own demo company is ever touched: `init_schema` marks an
empty database (no company tables yet) and then creates the tables, the replica's computed columns
(generated columns for the readable copies of Pascal strings), the vendor views exsync reads
(`evw_SystemSettings`, `evw_VATRate`, `evw_BillOfMaterials`, each defined here over the replica's
tables as the vendor's script defines it over the real ones), the system setup records and the
counters. A database that holds company tables without the mark (a real Exchequer company) is
refused with NotADemoCompanyError, and so are `seed` and the Toolkit emulator's writes.
"""

import time

from exsync.exchequer.dialect import PERVASIVE
from exsync.exchequer.errors import DatabaseError, MappingError, NotADemoCompanyError
from exsync.exchequer.mapping import (
    BOM_RECORD_PREFIX,
    BOM_SUB_TYPE,
    FOLIO_COUNTER,
    VAT_RATE_SLOTS,
    Column,
    pascal_bytes,
)
from exsync.state import StateTable, create_state_tables

__all__ = [
    "COUNTER_TYPES",
    "DEFAULT_FIRST_NUMBER",
    "DEMO_AUDIT_YEAR",
    "DEMO_MARK_TABLE",
    "DEMO_VAT_RATES",
    "init_schema",
    "is_demo_company",
    "require_demo_company",
]

# Document counters and the two folio rows: AFL (orders, quotes, deliveries) and FOL (invoices).
COUNTER_TYPES = ("SOR", "SQU", "SDN", "SIN", FOLIO_COUNTER, "FOL")
DEFAULT_FIRST_NUMBER = 1
# The demo company's VAT record: (code, description, rate %). '5' is "rate 5", set to 5 % here.
DEMO_VAT_RATES = (("S", "Standard", 20.0), ("E", "Exempt", 0.0), ("Z", "Zero", 0.0),
                  ("1", "Rate 1", 0.0), ("2", "Rate 2", 0.0), ("3", "Rate 3", 0.0), ("4", "Rate 4", 0.0),
                  ("5", "Reduced", 5.0), ("6", "Rate 6", 0.0), ("7", "Rate 7", 0.0), ("8", "Rate 8", 0.0),
                  ("9", "Rate 9", 0.0), ("T", "Rate T", 0.0), ("X", "Rate X", 0.0))
# Exchequer years are year - 1900; lines of years up to the audit year are ignored by the
# recalculation (esp_RecalculateStock L153). The demo's audit year is before any line it holds.
DEMO_AUDIT_YEAR = 100
DEMO_MARK_TABLE = StateTable(name="demo_company", key=("company",), columns={
    "company": Column("company", "str:30"),
    "marked_at": Column("marked_at", "float"),
})


def _default_sql(dialect, kind):
    if kind.startswith(("str:", "read:")):
        return "DEFAULT ''"
    if kind.startswith(("pstr:", "bytes:")):
        return {"postgresql": "DEFAULT '\\x00'::bytea", "mssql": "DEFAULT 0x00"}.get(dialect.name, "DEFAULT x'00'")
    return "DEFAULT 0"


def _column_sql(names, spec, column):
    dialect = names.dialect
    quoted = dialect.quote(column.name)
    if column.kind == "identity":
        return f"{quoted} {dialect.identity}"
    if column.kind.startswith("read:"):
        source = dialect.quote(spec.physical(column.kind[len("read:"):]))
        return dialect.generated(quoted, dialect.pascal_text(source))
    null = "" if spec.nullable else " NOT NULL"
    return f"{quoted} {dialect.column_type(column.kind)}{null} {_default_sql(dialect, column.kind)}"


def _settings_view(names):
    """evw_SystemSettings (005 - evw_SystemSettings.sql): the 'SYS' record of EXCHQSS, renamed."""
    text = names.dialect.pascal_text(names.column("system_setup", "id_code"))
    return names.sql(
        "SELECT {system_setup.free_ex_all} AS {settings.free_stock_excludes_sales_orders}, "
        "{system_setup.use_pick4all} AS {settings.orders_allocate_when_picked}, "
        "{system_setup.use_wiss4all} AS {settings.works_orders_allocate_when_picked}, "
        "{system_setup.dead_bom} AS {settings.deduct_bom_components}, "
        "{system_setup.use_mloc} AS {settings.use_multi_locations}, "
        "{system_setup.audit_yr} AS {settings.audit_year}, "
        "{system_setup.current_year} AS {settings.current_year}, "
        "{system_setup.current_period} AS {settings.current_period} "
        f"FROM {{system_setup}} WHERE {text} = 'SYS'")


def _vat_view(names):
    """evw_VATRate (100 - evw_VATRate.sql): one row per rate slot of the 'VAT' record of EXCHQSS."""
    text = names.dialect.pascal_text(names.column("system_setup", "id_code"))
    parts = []
    for n in range(1, VAT_RATE_SLOTS + 1):
        parts.append(names.sql(
            f"SELECT {n} AS {{vat_rates.id}}, {{system_setup.vat_{n}_code}} AS {{vat_rates.code}}, "
            f"{{system_setup.vat_{n}_desc}} AS {{vat_rates.description}}, "
            f"{{system_setup.vat_{n}_include}} AS {{vat_rates.include}}, "
            f"{{system_setup.vat_{n}_rate}} AS {{vat_rates.rate}} FROM {{system_setup}} WHERE {text} = 'VAT'"))
    return " UNION ALL ".join(parts)


def _bom_view(names):
    """evw_BillOfMaterials (255 - evw_BillOfMaterials.sql), the columns exsync reads."""
    return names.sql(
        "SELECT {bom.position_id} AS {bom_view.position_id}, {bom.component_folio} AS {bom_view.component_folio}, "
        "RTRIM({bom.component_code}) AS {bom_view.component_code}, {bom.qty_used} AS {bom_view.qty_used}, "
        "{bom.parent_folio} AS {bom_view.parent_folio} FROM {bom} "
        f"WHERE {{bom.record_prefix}} = '{BOM_RECORD_PREFIX}' AND {{bom.sub_type}} = {BOM_SUB_TYPE}")


_VIEWS = {"settings": _settings_view, "vat_rates": _vat_view, "bom_view": _bom_view}


def _statements(names):
    dialect = names.dialect
    schemas = []
    for spec in names.mapping.tables.values():
        schema = names.schema_of(spec)
        if schema is not None and schema not in schemas:
            schemas.append(schema)
    for schema in schemas:
        yield dialect.create_schema(schema)
    for spec in names.mapping.tables.values():
        if spec.view:
            continue
        table_sql = names.qualified(spec)
        schema = names.schema_of(spec)
        literal = f"{schema}.{spec.name}" if schema else table_sql.strip('"')
        body = ", ".join(_column_sql(names, spec, column) for column in spec.columns.values())
        yield dialect.create_table(table_sql, literal, body)
        bare = table_sql.replace('"', "").replace(".", "_")
        for unique, keys in [(True, key) for key in spec.unique] + [(False, key) for key in spec.indexes]:
            columns = [dialect.quote(spec.physical(column)) for column in keys]
            suffix = "key" if unique else "idx"
            yield dialect.create_index(f"{bare}_{'_'.join(keys)}_{suffix}", schema, table_sql, columns,
                                       unique=unique)
    for logical, build in _VIEWS.items():
        spec = names.mapping.tables[logical]
        schema = names.schema_of(spec)
        view_sql = names.qualified(spec)
        yield dialect.create_view(view_sql, f"{schema}.{spec.name}" if schema else view_sql.strip('"'),
                                  build(names))


def _company_exists(database):
    """Whether the company's accounts table exists (its own transaction: a failed statement aborts one)."""
    try:
        with database.transaction(write=False) as cursor:
            cursor.run("SELECT COUNT(*) FROM {accounts} WHERE 1 = 0").fetchall()
    except DatabaseError:
        return False
    return True


def is_demo_company(database):
    """Whether `init_schema` marked this database's company as an exsync demo company."""
    table = DEMO_MARK_TABLE.sql_name(database)
    try:
        with database.transaction(write=False) as cursor:
            row = cursor.execute(f"SELECT COUNT(*) FROM {table} WHERE {database.dialect.quote('company')} = ?",
                                 (database.mapping.company,)).fetchone()
    except DatabaseError:
        return False
    return bool(row and row[0])


def require_demo_company(database, what):
    """Raises NotADemoCompanyError unless the database is an exsync demo company."""
    if not is_demo_company(database):
        raise NotADemoCompanyError(
            f"{what} refused: {database.dsn_label} company {database.mapping.company!r} is not an exsync demo "
            "company (only `exsync exchequer init` on an empty database makes one). A real Exchequer company is "
            "written only through its Toolkit: set exchequer.write_backend to toolkit and run the agent.")


def _setup_rows(names, first_number):
    """The system setup records and counters of a new demo company (calendar-year periods)."""
    today = time.gmtime()
    sys_row = {"id_code": pascal_bytes("SYS", 3), "free_ex_all": 0, "use_pick4all": 0, "use_wiss4all": 0,
               "dead_bom": 0, "del_pick_only": 0, "use_mloc": 1, "audit_yr": DEMO_AUDIT_YEAR,
               "current_year": today.tm_year - 1900, "current_period": today.tm_mon, "qu_alloc_flg": 0,
               "use_credit_chk": 1}
    vat_row = {"id_code": pascal_bytes("VAT", 3)}
    for n, (code, description, rate) in enumerate(DEMO_VAT_RATES, start=1):
        vat_row.update({f"vat_{n}_code": code, f"vat_{n}_desc": description, f"vat_{n}_rate": rate,
                        f"vat_{n}_include": 0})
    return [sys_row, vat_row], [(counter, first_number) for counter in COUNTER_TYPES]


def init_schema(database, *, first_number=DEFAULT_FIRST_NUMBER):
    """Makes (or completes) the demo company: marks an empty database, creates what is missing.

    NotADemoCompanyError for a database whose company tables exsync did not create.
    """
    names = database.names
    dialect = database.dialect
    if dialect is PERVASIVE:
        raise MappingError("a Pervasive company's tables are Exchequer's own DDF dictionaries; exsync does "
                           "not create them")
    if not is_demo_company(database):
        if _company_exists(database):
            require_demo_company(database, "exsync exchequer init")
        create_state_tables(database, [DEMO_MARK_TABLE])
        with database.transaction() as cursor:
            cursor.execute(f"INSERT INTO {DEMO_MARK_TABLE.sql_name(database)} ({dialect.quote('company')}, "
                           f"{dialect.quote('marked_at')}) VALUES (?, ?)", (database.mapping.company, time.time()))
    with database.transaction() as cursor:
        for statement in _statements(names):
            if statement:
                cursor.execute(statement)
        if cursor.scalar("SELECT COUNT(*) FROM {system_setup}") == 0:
            for row in _setup_rows(names, first_number)[0]:
                columns = ", ".join(f"{{system_setup.{column}}}" for column in row)
                cursor.run(f"INSERT INTO {{system_setup}} ({columns}) VALUES ({', '.join('?' * len(row))})",
                           tuple(row.values()))
        insert = dialect.insert_if_absent(
            names.table("counters"),
            [names.column("counters", "counter_type"), names.column("counters", "next_number")],
            [names.column("counters", "counter_type")])
        for counter, number in _setup_rows(names, first_number)[1]:
            cursor.execute(insert, dialect.insert_if_absent_params((counter, number), (counter,)))
