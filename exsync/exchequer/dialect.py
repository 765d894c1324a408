"""The SQL differences between the databases exsync meets, kept in one small place.

Every dialect uses `?` placeholders (sqlite3's qmark style and ODBC's). What differs: column
types and identity columns, schemas versus table prefixes, row locks taken by a SELECT, LIMIT
versus TOP, insert-if-absent, and which driver errors mean "duplicate key" or "try again".
"""

import dataclasses
from collections.abc import Sequence

__all__ = ["DIALECTS", "MSSQL", "PERVASIVE", "POSTGRESQL", "SQLITE", "Dialect", "dialect_for_dbms"]

_UNIQUE_SQLSTATES = ("23505", "23000")
_RETRY_SQLSTATES = ("40001", "40P01", "HYT00")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Dialect:
    """How one database spells the things exsync needs that SQL does not standardise."""

    name: str
    supports_schemas: bool
    identity: str
    float_type: str
    lock_table_hint: str = ""
    lock_suffix: str = ""
    limit_style: str = "limit"  # limit | top
    insert_ignore_style: str = "on_conflict"  # on_conflict | not_exists
    fast_executemany: bool = False
    bytes_type: str = "BLOB"
    bit_type: str = "SMALLINT"
    # UPDATE ... RETURNING: a counter taken in one statement (and one round trip) instead of two.
    update_returning: bool = False
    # Writers lock rows, not the whole database: a second connection can write while a transaction
    # on the first is open (SQLite has one writer at a time).
    locks_rows: bool = True

    def quote(self, identifier: str) -> str:
        return '"' + identifier.replace('"', '""') + '"'

    def column_type(self, kind: str) -> str:
        if kind.startswith("standin:"):
            kind = kind[len("standin:"):]
        if kind == "identity":
            return self.identity
        if kind == "int":
            return "INTEGER"
        if kind == "bit":
            return self.bit_type
        if kind == "bigint":
            # Ids of the shop (WordPress's are BIGINT UNSIGNED): 2^31 and above must fit.
            return "BIGINT"
        if kind == "float":
            return self.float_type
        if kind.startswith("str:"):
            return f"VARCHAR({int(kind[4:])})"
        if kind.startswith(("pstr:", "bytes:")):
            size = int(kind.partition(":")[2]) + (1 if kind.startswith("pstr:") else 0)
            return self.bytes_type.format(size=size)
        raise ValueError(f"unknown column kind {kind!r}")

    def pascal_text(self, column_sql: str) -> str:
        """An expression reading the text of a Pascal short string column, as Exchequer's
        `common.GetString(col, 1)` does (ifn_BinaryConversionFunctions.sql)."""
        if self.name == "postgresql":
            # encode(..., 'escape') is immutable (convert_from is not, and a generated column needs
            # immutable); Exchequer's codes and references are plain ASCII.
            return (f"CASE WHEN {column_sql} IS NULL OR octet_length({column_sql}) = 0 THEN '' ELSE "
                    f"encode(substring({column_sql} from 2 for get_byte({column_sql}, 0)), 'escape') END")
        if self.name == "mssql":
            return (f"CONVERT(varchar(255), SUBSTRING({column_sql}, 2, "
                    f"CAST(SUBSTRING({column_sql}, 1, 1) AS INT)))")
        # SQLite: substr() of a blob counts bytes; the length byte read through unicode() (< 128).
        return (f"CAST(substr({column_sql}, 2, coalesce(unicode(CAST(substr({column_sql}, 1, 1) AS TEXT)), 0)) "
                "AS TEXT)")

    def generated(self, column_sql: str, expression: str) -> str:
        """A column computed from others (the replica's stand-in for Exchequer's computed columns)."""
        if self.name == "postgresql":
            return f"{column_sql} TEXT GENERATED ALWAYS AS ({expression}) STORED"
        if self.name == "mssql":
            return f"{column_sql} AS ({expression})"
        return f"{column_sql} TEXT GENERATED ALWAYS AS ({expression}) VIRTUAL"

    def create_view(self, view_sql: str, view_literal: str, select_sql: str) -> str:
        """A CREATE VIEW that leaves an existing view alone."""
        if self.name == "mssql":
            literal = view_literal.replace("'", "''")
            body = select_sql.replace("'", "''")
            return f"IF OBJECT_ID('{literal}') IS NULL EXEC('CREATE VIEW {view_sql} AS {body}')"
        if self.name == "postgresql":
            return f"CREATE OR REPLACE VIEW {view_sql} AS {select_sql}"
        return f"CREATE VIEW IF NOT EXISTS {view_sql} AS {select_sql}"

    def string_default(self) -> str:
        """Exchequer's strings are NOT NULL and empty rather than missing."""
        return "NOT NULL DEFAULT ''"

    def limit(self, select_sql: str, rows: int) -> str:
        """Restricts a `SELECT ...` to its first `rows` rows."""
        rows = int(rows)
        if self.limit_style == "top":
            head, _, rest = select_sql.partition("SELECT ")
            return f"{head}SELECT TOP {rows} {rest}"
        return f"{select_sql} LIMIT {rows}"

    def locked(self, table_sql: str) -> str:
        """The table reference in a FROM clause that reads rows for update."""
        return table_sql + self.lock_table_hint

    def for_update(self, select_sql: str) -> str:
        return select_sql + self.lock_suffix

    def insert_if_absent(self, table_sql: str, columns: Sequence[str], key_columns: Sequence[str]) -> str:
        """An INSERT that does nothing when a row with the same key exists (one row, `?` values)."""
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        if self.insert_ignore_style == "on_conflict":
            keys = ", ".join(key_columns)
            return f"INSERT INTO {table_sql} ({names}) VALUES ({marks}) ON CONFLICT ({keys}) DO NOTHING"
        where = " AND ".join(f"{key} = ?" for key in key_columns)
        return (f"INSERT INTO {table_sql} ({names}) SELECT {marks} "
                f"WHERE NOT EXISTS (SELECT 1 FROM {table_sql} WHERE {where})")

    def insert_if_absent_params(self, values: Sequence[object], key_values: Sequence[object]) -> tuple[object, ...]:
        if self.insert_ignore_style == "on_conflict":
            return tuple(values)
        return (*values, *key_values)

    def create_schema(self, schema: str) -> str | None:
        """A statement creating `schema` if missing, or None where schemas do not exist."""
        if not self.supports_schemas:
            return None
        if self.name == "mssql":
            literal = schema.replace("'", "''")
            return f"IF SCHEMA_ID('{literal}') IS NULL EXEC('CREATE SCHEMA {self.quote(schema)}')"
        return f"CREATE SCHEMA IF NOT EXISTS {self.quote(schema)}"

    def create_table(self, table_sql: str, table_literal: str, body: str) -> str:
        """A CREATE TABLE that leaves an existing table alone (`table_literal`: its name as text)."""
        if self.name == "mssql":
            literal = table_literal.replace("'", "''")
            return f"IF OBJECT_ID('{literal}') IS NULL CREATE TABLE {table_sql} ({body})"
        return f"CREATE TABLE IF NOT EXISTS {table_sql} ({body})"

    def create_index(self, index_name: str, schema: str | None, table_sql: str, columns: Sequence[str], *,
                     unique: bool) -> str:
        """A CREATE INDEX that leaves an existing index alone."""
        kind = "UNIQUE INDEX" if unique else "INDEX"
        cols = ", ".join(columns)
        if self.name == "mssql":
            literal = index_name.replace("'", "''")
            return (f"IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = '{literal}') "
                    f"CREATE {kind} {self.quote(index_name)} ON {table_sql} ({cols})")
        return f"CREATE {kind} IF NOT EXISTS {self.quote(index_name)} ON {table_sql} ({cols})"

    def is_unique_violation(self, sqlstate: str | None) -> bool:
        return sqlstate in _UNIQUE_SQLSTATES

    def is_retryable(self, sqlstate: str | None) -> bool:
        return sqlstate in _RETRY_SQLSTATES


SQLITE = Dialect(name="sqlite", supports_schemas=False, identity="INTEGER PRIMARY KEY AUTOINCREMENT",
                 float_type="REAL", locks_rows=False)
POSTGRESQL = Dialect(name="postgresql", supports_schemas=True,
                     identity="INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                     float_type="DOUBLE PRECISION", lock_suffix=" FOR UPDATE", fast_executemany=True,
                     bytes_type="BYTEA", update_returning=True)
MSSQL = Dialect(name="mssql", supports_schemas=True, identity="INT IDENTITY(1,1) PRIMARY KEY",
                float_type="FLOAT", lock_table_hint=" WITH (UPDLOCK, ROWLOCK)", limit_style="top",
                insert_ignore_style="not_exists", fast_executemany=True, bytes_type="VARBINARY({size})",
                bit_type="BIT")
# Pervasive/Zen has no schemas and no row-lock hint in SELECT; its writes are single-row updates.
PERVASIVE = Dialect(name="pervasive", supports_schemas=False, identity="IDENTITY PRIMARY KEY",
                    float_type="DOUBLE", limit_style="top", insert_ignore_style="not_exists")

DIALECTS = {d.name: d for d in (SQLITE, POSTGRESQL, MSSQL, PERVASIVE)}


def dialect_for_dbms(dbms_name: str | None) -> Dialect | None:
    """The dialect for an ODBC connection's SQL_DBMS_NAME, or None if exsync does not know it."""
    lowered = (dbms_name or "").lower()
    if "postgres" in lowered:
        return POSTGRESQL
    if "sql server" in lowered:
        return MSSQL
    if "pervasive" in lowered or "zen" in lowered or "btrieve" in lowered:
        return PERVASIVE
    if "sqlite" in lowered:
        return SQLITE
    return None
