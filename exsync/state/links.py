"""The customer sync's store: links with their snapshots and leases, conflicts awaiting a person,
and every decision a policy (or a person) made between two values.

The rules (what to merge, which side wins) stay in exsync.consumers.customers; this module keeps
their rows. Every method runs one short transaction of its own on the database it was given.
"""

import dataclasses
import json
from collections.abc import Iterable

from exsync.state.errors import LinkChangedError
from exsync.state.lease import Lease, updated_rows
from exsync.state.tables import StateColumn, StateDatabase, StateTable, create_state_tables, text_column

__all__ = ["CUSTOMER_TABLES", "LINKED", "SHOP_DELETED", "Conflict", "Decision", "Link", "LinkStore"]

LINKED = "linked"
SHOP_DELETED = "shop_deleted"

CUSTOMER_TABLES = (
    StateTable(name="customer_links", key=("woo_id",), columns={
        "woo_id": StateColumn("woo_id", "int"),
        "account_code": StateColumn("account_code", "str:10"),
        "state": StateColumn("state", "str:16"),
        "snapshot": text_column("snapshot"),
        "version": StateColumn("version", "int"),
        "synced_at": StateColumn("synced_at", "float"),
        "claimed_by": StateColumn("claimed_by", "str:100"),
        "claimed_until": StateColumn("claimed_until", "float"),
    }),
    StateTable(name="customer_conflicts", key=("woo_id", "field"), columns={
        "woo_id": StateColumn("woo_id", "int"),
        "field": StateColumn("field", "str:16"),
        "account_code": StateColumn("account_code", "str:10"),
        "woo_value": StateColumn("woo_value", "str:1000"),
        "exchequer_value": StateColumn("exchequer_value", "str:1000"),
        "base_value": StateColumn("base_value", "str:1000"),
        "noticed_at": StateColumn("noticed_at", "float"),
    }),
    # every value a policy (or a person) decided against: nothing overridden without a trace
    StateTable(name="customer_decisions", key=("woo_id", "field", "decided_at"), columns={
        "woo_id": StateColumn("woo_id", "int"),
        "field": StateColumn("field", "str:16"),
        "decided_at": StateColumn("decided_at", "float"),
        "account_code": StateColumn("account_code", "str:10"),
        "woo_value": StateColumn("woo_value", "str:1000"),
        "exchequer_value": StateColumn("exchequer_value", "str:1000"),
        "base_value": StateColumn("base_value", "str:1000"),
        "policy": StateColumn("policy", "str:16"),
        "winner": StateColumn("winner", "str:16"),
    }),
)


def _dump(view: object) -> str:
    return json.dumps(view, sort_keys=True)


@dataclasses.dataclass(kw_only=True)
class Link:
    """A shop customer linked to an account, with the view both sides last agreed on.

    `version` counts the saves; a save is refused (LinkChangedError) when the stored version is no
    longer the one read, so a sync never stores a snapshot over a newer one.
    """

    woo_id: int
    account_code: str
    state: str = LINKED
    snapshot: dict | None = None
    version: int = 0
    synced_at: float = 0.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class Conflict:
    """A field both sides changed differently, waiting for a person (`exsync customers resolve`)."""

    woo_id: int
    field: str
    account_code: str
    woo_value: object
    exchequer_value: object
    base_value: object
    noticed_at: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class Decision:
    """A field both sides held differently, and who decided which value stays (`winner`: woo,
    exchequer, or manual when it was left for a person); the loser's value is kept here."""

    woo_id: int
    field: str
    account_code: str
    woo_value: object
    exchequer_value: object
    base_value: object
    policy: str
    winner: str
    decided_at: float


def _cut(value: object) -> str:
    """A value as stored in a 1,000-character column (JSON, cut rather than refused)."""
    return json.dumps(value)[:1000]


def _loads(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text  # cut to the column: shown as stored


class LinkStore:
    """The sync's own tables: links with their snapshots and leases, conflicts awaiting a person,
    and decisions made. Creates its tables where missing."""

    def __init__(self, *, database: StateDatabase) -> None:
        self.database = database
        self.links_sql = CUSTOMER_TABLES[0].sql_name(database)
        self.conflicts_sql = CUSTOMER_TABLES[1].sql_name(database)
        self.decisions_sql = CUSTOMER_TABLES[2].sql_name(database)
        create_state_tables(database, CUSTOMER_TABLES)
        # A customer's lease is on its link row; a customer never synced gets a row holding only
        # the lease (version 0: no link yet).
        self.lease = Lease(database=database, table=CUSTOMER_TABLES[0], holder_column="claimed_by",
                           expires_column="claimed_until")

    def _link(self, where: str, value: object) -> Link | None:
        # An account linked to a customer deleted in the shop and to one who registered again: the live one.
        with self.database.transaction(write=False) as cursor:
            row = cursor.execute(f'SELECT "woo_id", "account_code", "state", "snapshot", "version", "synced_at" '
                                 f'FROM {self.links_sql} WHERE "{where}" = ? AND "version" > 0 '
                                 f'ORDER BY CASE WHEN "state" = ? THEN 0 ELSE 1 END, "woo_id" DESC',
                                 (value, LINKED)).fetchone()
        if row is None:
            return None
        return Link(woo_id=int(row[0]), account_code=row[1], state=row[2], snapshot=json.loads(row[3]) if row[3]
                    else None, version=int(row[4]), synced_at=float(row[5]))

    def get(self, woo_id: int) -> Link | None:
        """The link of shop customer `woo_id`, or None."""
        return self._link("woo_id", int(woo_id))

    def by_account(self, code: str) -> Link | None:
        """The link of account `code`, or None."""
        return self._link("account_code", code)

    def claim(self, woo_id: int, *, holder: str, now: float, seconds: float) -> bool:
        """Takes the customer's lease for `seconds`; False while another holder's lease runs."""
        return self.lease.claim((int(woo_id),), holder=holder, now=now, seconds=seconds)

    def renew(self, woo_id: int, *, holder: str, now: float, seconds: float) -> bool:
        """Extends `holder`'s own lease, even one run out that nobody took; False once another holder
        claimed the customer, even if they have released it since (they may have written)."""
        return self.lease.renew((int(woo_id),), holder=holder, now=now, seconds=seconds)

    def release(self, woo_id: int, *, holder: str) -> None:
        self.lease.release((int(woo_id),), holder=holder)

    def save(self, link: Link) -> None:
        """Stores the link if its version is still the one read; LinkChangedError otherwise."""
        with self.database.transaction() as cursor:
            cursor.execute(f'UPDATE {self.links_sql} SET "account_code" = ?, "state" = ?, "snapshot" = ?, '
                           f'"version" = ?, "synced_at" = ? WHERE "woo_id" = ? AND "version" = ?',
                           (link.account_code, link.state, _dump(link.snapshot) if link.snapshot is not None else "",
                            link.version + 1, link.synced_at, link.woo_id, link.version))
            if not updated_rows(cursor):
                raise LinkChangedError(f"shop customer {link.woo_id} was synced by another worker meanwhile")
        link.version += 1

    def record_conflicts(self, woo_id: int, account_code: str,
                         conflicts: Iterable[tuple[str, object, object, object]], *, now: float) -> None:
        """Keeps the conflicts found for a customer, and drops its earlier ones that no longer stand."""
        with self.database.transaction() as cursor:
            cursor.execute(f'DELETE FROM {self.conflicts_sql} WHERE "woo_id" = ?', (int(woo_id),))
            cursor.executemany(
                f'INSERT INTO {self.conflicts_sql} ("woo_id", "field", "account_code", "woo_value", '
                f'"exchequer_value", "base_value", "noticed_at") VALUES (?, ?, ?, ?, ?, ?, ?)',
                [(int(woo_id), field, account_code, json.dumps(woo_value), json.dumps(exchequer_value),
                  json.dumps(base_value), now) for field, woo_value, exchequer_value, base_value in conflicts])

    def conflicts(self, woo_id: int | None = None) -> list[Conflict]:
        """The conflicts waiting, of one customer or of all."""
        where, params = ('WHERE "woo_id" = ?', (int(woo_id),)) if woo_id is not None else ("", ())
        with self.database.transaction(write=False) as cursor:
            rows = cursor.execute(f'SELECT "woo_id", "field", "account_code", "woo_value", "exchequer_value", '
                                  f'"base_value", "noticed_at" FROM {self.conflicts_sql} {where} '
                                  f'ORDER BY "woo_id", "field"', params).fetchall()
        return [Conflict(woo_id=int(row[0]), field=row[1], account_code=row[2], woo_value=json.loads(row[3]),
                         exchequer_value=json.loads(row[4]), base_value=json.loads(row[5]),
                         noticed_at=float(row[6])) for row in rows]

    def record_decisions(self, woo_id: int, account_code: str,
                         decisions: Iterable[tuple[str, object, object, object, str, str]], *, now: float) -> None:
        """Keeps every decision a policy (or a person) made between two values of a customer."""
        rows = []
        for offset, (field, woo_value, exchequer_value, base_value, policy, winner) in enumerate(decisions):
            # Decisions of one sync share its time; the offset keeps each its own key.
            rows.append((int(woo_id), field, now + offset * 1e-6, account_code, _cut(woo_value),
                         _cut(exchequer_value), _cut(base_value), policy, winner))
        with self.database.transaction() as cursor:
            cursor.executemany(
                f'INSERT INTO {self.decisions_sql} ("woo_id", "field", "decided_at", "account_code", "woo_value", '
                f'"exchequer_value", "base_value", "policy", "winner") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', rows)

    def decisions(self, woo_id: int | None = None) -> list[Decision]:
        """The decisions recorded, of one customer or of all, newest first."""
        where, params = ('WHERE "woo_id" = ?', (int(woo_id),)) if woo_id is not None else ("", ())
        with self.database.transaction(write=False) as cursor:
            rows = cursor.execute(f'SELECT "woo_id", "field", "account_code", "woo_value", "exchequer_value", '
                                  f'"base_value", "policy", "winner", "decided_at" FROM {self.decisions_sql} '
                                  f'{where} ORDER BY "decided_at" DESC, "woo_id", "field"', params).fetchall()
        return [Decision(woo_id=int(row[0]), field=row[1], account_code=row[2], woo_value=_loads(row[3]),
                         exchequer_value=_loads(row[4]), base_value=_loads(row[5]), policy=row[6], winner=row[7],
                         decided_at=float(row[8])) for row in rows]

    def waiting(self) -> int:
        """How many conflicts wait for a person."""
        with self.database.transaction(write=False) as cursor:
            return int(cursor.execute(f"SELECT COUNT(*) FROM {self.conflicts_sql}").fetchone()[0])
