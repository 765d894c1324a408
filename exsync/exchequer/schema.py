"""Creates the Exchequer-shaped tables of a company (and the integration's own) from the mapping.

Used for the bundled demo company, the tests and staging databases; a real Exchequer company
already has its tables, and `init_schema` leaves existing tables and rows alone.
"""

from exsync.exchequer.dialect import PERVASIVE
from exsync.exchequer.errors import MappingError
from exsync.exchequer.mapping import FOLIO_COUNTER

__all__ = ["COUNTER_TYPES", "DEFAULT_FIRST_NUMBER", "init_schema"]

COUNTER_TYPES = ("SOR", "SQU", "SDN", "SIN", FOLIO_COUNTER)
DEFAULT_FIRST_NUMBER = 1


def _column_sql(dialect, column):
    sql_type = dialect.column_type(column.kind)
    if column.kind == "identity":
        return f"{dialect.quote(column.name)} {sql_type}"
    if column.kind.startswith("str:"):
        return f"{dialect.quote(column.name)} {sql_type} {dialect.string_default()}"
    return f"{dialect.quote(column.name)} {sql_type} NOT NULL DEFAULT 0"


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
        table_sql = names.qualified(spec)
        schema = names.schema_of(spec)
        literal = f"{schema}.{spec.name}" if schema else table_sql.strip('"')
        body = ", ".join(_column_sql(dialect, column) for column in spec.columns.values())
        yield dialect.create_table(table_sql, literal, body)
        bare = table_sql.replace('"', "").replace(".", "_")
        for unique, keys in [(True, key) for key in spec.unique] + [(False, key) for key in spec.indexes]:
            columns = [dialect.quote(spec.physical(logical)) for logical in keys]
            suffix = "key" if unique else "idx"
            index_name = f"{bare}_{'_'.join(keys)}_{suffix}"
            yield dialect.create_index(index_name, schema, table_sql, columns, unique=unique)


def init_schema(database, *, first_number=DEFAULT_FIRST_NUMBER):
    """Creates missing schemas, tables and indexes, the settings row and the document counters."""
    names = database.names
    dialect = database.dialect
    if dialect is PERVASIVE:
        raise MappingError("a Pervasive company's tables are Exchequer's own DDF dictionaries; exsync does "
                           "not create them")
    with database.transaction() as cursor:
        for statement in _statements(names):
            cursor.execute(statement)
        if cursor.scalar("SELECT COUNT(*) FROM {settings}") == 0:
            cursor.run("INSERT INTO {settings} ({settings.free_stock_excludes_sales_orders}, "
                       "{settings.orders_allocate_when_picked}) VALUES (0, 0)")
        insert = dialect.insert_if_absent(
            names.table("counters"),
            [names.column("counters", "counter_type"), names.column("counters", "next_number")],
            [names.column("counters", "counter_type")])
        for counter in COUNTER_TYPES:
            cursor.execute(insert, dialect.insert_if_absent_params((counter, first_number), (counter,)))
