"""The order pipeline's stores: order tracking, notes written to the shop, imported shipping methods.

They live beside the Exchequer company's tables in the integration's state schema (or with its
prefix where there are no schemas), reached through `BoundNames.state_table`. Every method runs one
short transaction of its own on the database it was given; a database serves one thread.
"""

import dataclasses
import json
import time
from collections.abc import Iterable
from typing import Any

from exsync.state.errors import DuplicateRowError
from exsync.state.tables import StateColumn, StateDatabase, StateTable, create_state_tables

__all__ = [
    "IN_PROGRESS",
    "NOTE_CLAIMED",
    "NOTE_DONE",
    "ORDER_STATES",
    "ORDER_TABLES",
    "NoteStore",
    "OrderStore",
    "ShippingMethod",
    "ShippingMethodStore",
    "TrackedOrder",
    "ensure_order_tables",
]

# received: seen, not (yet) for import; imported: became documents; parked: waits for a person or a
# product (reason says which); cancelled / deleted: the shop's side ended it. A row is blank ("in
# progress") between its first sighting and the decision, or when that decision failed half-way.
ORDER_STATES = ("received", "imported", "parked", "cancelled", "deleted")
IN_PROGRESS = "in progress"
NOTE_CLAIMED = "claimed"
NOTE_DONE = "done"

TRACKING = "order_tracking"
NOTES = "order_notes"
SHIPPING = "shipping_methods"


def _table(name: str, columns: list[tuple[str, str]], **keys: Any) -> StateTable:
    return StateTable(name=name, columns={column: StateColumn(column, kind) for column, kind in columns}, **keys)


# Shop ids are 64-bit (bigint): WordPress post ids are BIGINT UNSIGNED. These tables were made
# before state tables had primary keys: a unique key stands in for it.
ORDER_TABLES = (
    _table(TRACKING, [
        ("order_id", "bigint"), ("number", "str:32"), ("status", "str:32"), ("currency", "str:8"),
        ("total", "str:32"), ("date_modified_gmt", "str:32"), ("import_state", "str:16"),
        ("reason", "str:255"), ("refs", "str:100"), ("plan", "str:255"), ("cancel_published", "int"),
        ("refund_ids", "str:255"), ("body", "text"),
        ("first_seen_at", "float"), ("imported_at", "float"), ("updated_at", "float"), ("paid_at", "float")],
        uniques=(("order_id",),), indexes=(("import_state",), ("status",))),
    _table(NOTES, [
        ("order_id", "bigint"), ("note_key", "str:64"), ("state", "str:8"), ("claimed_at", "float"),
        ("note_id", "bigint")],
        uniques=(("order_id", "note_key"),)),
    _table(SHIPPING, [
        ("instance_id", "str:32"), ("zone_id", "int"), ("zone_name", "str:100"), ("method_id", "str:64"),
        ("title", "str:200"), ("enabled", "int"), ("refreshed_at", "float")],
        uniques=(("instance_id",),)),
)


def ensure_order_tables(database: StateDatabase) -> None:
    """Creates the pipeline's tables and indexes where missing, and upgrades older ones (idempotent)."""
    create_state_tables(database, ORDER_TABLES)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrackedOrder:
    """One row of order tracking."""

    order_id: int
    number: str
    status: str
    total: str
    date_modified_gmt: str
    import_state: str
    reason: str
    refs: tuple[str, ...]
    plan: str
    cancel_published: bool
    refund_ids: tuple[str, ...]
    body: dict | None
    imported_at: float
    # when exsync first saw a version proving the order paid (0: never); stale versions count too
    paid_at: float = 0.0


_TRACKING_COLUMNS = ("order_id", "number", "status", "total", "date_modified_gmt", "import_state", "reason", "refs",
                     "plan", "cancel_published", "refund_ids", "body", "imported_at", "paid_at")


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(part for part in (text or "").split(",") if part)


def _tracked(row: Any) -> TrackedOrder:
    values = dict(zip(_TRACKING_COLUMNS, row, strict=True))
    return TrackedOrder(
        order_id=int(values["order_id"]), number=values["number"], status=values["status"], total=values["total"],
        date_modified_gmt=values["date_modified_gmt"], import_state=values["import_state"], reason=values["reason"],
        refs=_split(values["refs"]), plan=values["plan"], cancel_published=bool(values["cancel_published"]),
        refund_ids=_split(values["refund_ids"]),
        body=json.loads(values["body"]) if values["body"] else None, imported_at=float(values["imported_at"] or 0),
        paid_at=float(values["paid_at"] or 0))


class _Store:
    TABLE = ""  # each store names its table

    def __init__(self, *, database: StateDatabase) -> None:
        self.database = database
        self.table = database.names.state_table(self.TABLE)
        self._quote = database.dialect.quote

    def _columns(self, names):
        return ", ".join(self._quote(name) for name in names)


class OrderStore(_Store):
    """Order tracking: every shop order seen, the version held, and what it became in Exchequer."""

    TABLE = TRACKING

    def _select(self, where, lock=False):
        dialect = self.database.dialect
        sql = (f"SELECT {self._columns(_TRACKING_COLUMNS)} FROM {dialect.locked(self.table) if lock else self.table} "
               f"WHERE {where}")
        return dialect.for_update(sql) if lock else sql

    def get(self, order_id: int) -> TrackedOrder | None:
        with self.database.transaction(write=False) as cursor:
            row = cursor.execute(self._select(f"{self._quote('order_id')} = ?"), (int(order_id),)).fetchone()
        return None if row is None else _tracked(row)

    def _ensure_row(self, cursor, order_id):
        dialect = self.database.dialect
        now = time.time()
        key = [self._quote("order_id")]
        cursor.execute(dialect.insert_if_absent(self.table, key + [self._quote("first_seen_at")], key),
                       dialect.insert_if_absent_params((int(order_id), now), (int(order_id),)))
        return _tracked(cursor.execute(self._select(f"{self._quote('order_id')} = ?", lock=True),
                                       (int(order_id),)).fetchone())

    def record_version(self, body: dict, *, paid: bool = False) -> tuple[TrackedOrder, bool]:
        """Holds `body` if it is not older than the version held; returns (row, accepted).

        A `date_modified_gmt` older than the one held loses (accepted False, the body held stays);
        an equal one is a repeat and is accepted, so a retried message finishes what it started.
        `paid` (this version proves the order paid) is recorded whichever version wins: that the
        order was paid is a fact a later state cannot undo. A first sighting costs one statement.
        """
        order_id = int(body["id"])
        modified = str(body.get("date_modified_gmt") or "")
        now = time.time()
        fields = {"number": str(body.get("number") or order_id)[:32], "status": str(body.get("status") or "")[:32],
                  "currency": str(body.get("currency") or "")[:8], "total": str(body.get("total") or "")[:32],
                  "date_modified_gmt": modified, "body": json.dumps(body, separators=(",", ":")), "updated_at": now}
        assignments = ", ".join(f"{self._quote(name)} = ?" for name in fields)
        dialect = self.database.dialect
        key = [self._quote("order_id")]
        paid_at = now if paid else 0.0
        columns = key + [self._quote(name) for name in (*fields, "first_seen_at", "paid_at")]
        with self.database.transaction() as cursor:
            cursor.execute(dialect.insert_if_absent(self.table, columns, key), dialect.insert_if_absent_params(
                (order_id, *fields.values(), now, paid_at), (order_id,)))
            if cursor.rowcount == 1:
                return TrackedOrder(order_id=order_id, number=fields["number"], status=fields["status"],
                                    total=fields["total"], date_modified_gmt=modified, import_state="", reason="",
                                    refs=(), plan="", cancel_published=False, refund_ids=(),
                                    body=body, imported_at=0.0, paid_at=paid_at), True
            # Held already: the version check and the change are one statement, so they cannot interleave.
            cursor.execute(f"UPDATE {self.table} SET {assignments} WHERE {self._quote('order_id')} = ? "
                           f"AND {self._quote('date_modified_gmt')} <= ?", (*fields.values(), order_id, modified))
            accepted = cursor.rowcount == 1
            if paid:
                cursor.execute(f"UPDATE {self.table} SET {self._quote('paid_at')} = ? "
                               f"WHERE {self._quote('order_id')} = ? AND {self._quote('paid_at')} = 0",
                               (now, order_id))
            row = cursor.execute(self._select(f"{self._quote('order_id')} = ?"), (order_id,)).fetchone()
        return _tracked(row), accepted

    def record_deleted(self, order_id: int) -> None:
        """Marks an order deleted in the shop (its Exchequer documents stay: they are never deleted)."""
        with self.database.transaction() as cursor:
            self._ensure_row(cursor, order_id)
            cursor.execute(f"UPDATE {self.table} SET {self._quote('import_state')} = 'deleted', "
                           f"{self._quote('status')} = 'deleted', {self._quote('updated_at')} = ? "
                           f"WHERE {self._quote('order_id')} = ?", (time.time(), int(order_id)))

    def _set(self, order_id, **values):
        assignments = ", ".join(f"{self._quote(name)} = ?" for name in values)
        with self.database.transaction() as cursor:
            cursor.execute(f"UPDATE {self.table} SET {assignments}, {self._quote('updated_at')} = ? "
                           f"WHERE {self._quote('order_id')} = ?", (*values.values(), time.time(), int(order_id)))

    def claim_plan(self, order_id: int, plan: str) -> str:
        """Stores the document plan unless one is stored; returns the plan that holds (first wins),
        so a retry after a crash writes the same documents even if stock has moved since."""
        with self.database.transaction() as cursor:
            cursor.execute(f"UPDATE {self.table} SET {self._quote('plan')} = ? "
                           f"WHERE {self._quote('order_id')} = ? AND {self._quote('plan')} = ''",
                           (plan, int(order_id)))
            return cursor.execute(f"SELECT {self._quote('plan')} FROM {self.table} WHERE {self._quote('order_id')} = ?",
                                  (int(order_id),)).fetchone()[0]

    def mark_imported(self, order_id: int, refs: Iterable[str]) -> None:
        """Records the documents an order became (after `exchequer.order.imported` was published)."""
        self._set(order_id, import_state="imported", reason="", refs=",".join(refs), imported_at=time.time())

    def mark(self, order_id: int, state: str, reason: str = "") -> None:
        """Sets a state before import; an order another worker imported meanwhile stays imported."""
        if state not in ORDER_STATES:
            raise ValueError(f"unknown order state {state!r}")
        with self.database.transaction() as cursor:
            cursor.execute(f"UPDATE {self.table} SET {self._quote('import_state')} = ?, {self._quote('reason')} = ?, "
                           f"{self._quote('updated_at')} = ? WHERE {self._quote('order_id')} = ? "
                           f"AND {self._quote('refs')} = ''", (state, reason[:255], time.time(), int(order_id)))

    def mark_cancel_published(self, order_id: int) -> bool:
        """Records that the order's end after import was announced; True for the first caller only."""
        with self.database.transaction() as cursor:
            cursor.execute(f"UPDATE {self.table} SET {self._quote('cancel_published')} = 1, "
                           f"{self._quote('updated_at')} = ? WHERE {self._quote('order_id')} = ? "
                           f"AND {self._quote('cancel_published')} = 0", (time.time(), int(order_id)))
            return cursor.rowcount == 1

    def add_refund_ids(self, order_id: int, refund_ids: Iterable[object]) -> None:
        row = self.get(order_id)
        ids = list(row.refund_ids) + [str(i) for i in refund_ids if str(i) not in row.refund_ids]
        self._set(order_id, refund_ids=",".join(ids)[:255])

    def parked(self, limit: int = 100) -> list[TrackedOrder]:
        """Parked orders, oldest first."""
        sql = self.database.dialect.limit(
            self._select(f"{self._quote('import_state')} = 'parked'") + f" ORDER BY {self._quote('order_id')}", limit)
        with self.database.transaction(write=False) as cursor:
            return [_tracked(row) for row in cursor.execute(sql).fetchall()]

    def counts(self) -> dict[str, int]:
        """Orders by import state, exactly (a blank state counts as IN_PROGRESS, never as received)."""
        with self.database.transaction(write=False) as cursor:
            rows = cursor.execute(f"SELECT {self._quote('import_state')}, COUNT(*) FROM {self.table} "
                                  f"GROUP BY {self._quote('import_state')}").fetchall()
        counts = {}
        for state, count in rows:
            label = state or IN_PROGRESS
            counts[label] = counts.get(label, 0) + int(count)
        return counts

    # Paid and not imported: every state but imported and deleted (listed for the index on the state).
    _NOT_IMPORTED = ("", "received", "parked", "cancelled")

    def _overdue_where(self):
        states = ", ".join("?" for _ in self._NOT_IMPORTED)
        return (f"{self._quote('import_state')} IN ({states}) AND {self._quote('paid_at')} > 0 "
                f"AND {self._quote('paid_at')} <= ? AND {self._quote('refs')} = ''")

    def overdue(self, *, paid_before: float, limit: int = 100) -> list[TrackedOrder]:
        """Orders seen paid at or before `paid_before` (epoch seconds) and not imported, oldest first."""
        sql = self.database.dialect.limit(
            self._select(self._overdue_where()) + f" ORDER BY {self._quote('paid_at')}, {self._quote('order_id')}",
            limit)
        with self.database.transaction(write=False) as cursor:
            return [_tracked(row) for row in cursor.execute(sql, (*self._NOT_IMPORTED, paid_before)).fetchall()]

    def overdue_count(self, *, paid_before: float) -> int:
        with self.database.transaction(write=False) as cursor:
            return int(cursor.execute(f"SELECT COUNT(*) FROM {self.table} WHERE {self._overdue_where()}",
                                      (*self._NOT_IMPORTED, paid_before)).fetchone()[0])

    def _ended_where(self, statuses):
        marks = ", ".join("?" for _ in statuses)
        return f"{self._quote('status')} IN ({marks}) AND {self._quote('refs')} <> ''"

    def ended_after_import(self, *, statuses: Iterable[str], limit: int = 100) -> list[TrackedOrder]:
        """Imported orders whose shop status is now one of `statuses` (their documents stay), newest first."""
        statuses = tuple(statuses)
        sql = self.database.dialect.limit(
            self._select(self._ended_where(statuses)) + f" ORDER BY {self._quote('updated_at')} DESC, "
                                                        f"{self._quote('order_id')}", limit)
        with self.database.transaction(write=False) as cursor:
            return [_tracked(row) for row in cursor.execute(sql, statuses).fetchall()]

    def ended_after_import_count(self, *, statuses: Iterable[str]) -> int:
        statuses = tuple(statuses)
        with self.database.transaction(write=False) as cursor:
            return int(cursor.execute(f"SELECT COUNT(*) FROM {self.table} WHERE {self._ended_where(statuses)}",
                                      statuses).fetchone()[0])


class NoteStore(_Store):
    """Notes written to the shop, one row per (order, note key), claimed before the REST call."""

    TABLE = NOTES

    def claim(self, order_id: int, note_key: str) -> tuple[str, float] | None:
        """Returns None when this caller now holds the claim, else (state, claimed_at) of the row held."""
        try:
            with self.database.transaction() as cursor:
                columns = self._columns(("order_id", "note_key", "state", "claimed_at"))
                cursor.execute(f"INSERT INTO {self.table} ({columns}) VALUES (?, ?, ?, ?)",
                               (int(order_id), note_key[:64], NOTE_CLAIMED, time.time()))
            return None
        except DuplicateRowError:
            pass
        with self.database.transaction(write=False) as cursor:
            row = cursor.execute(f"SELECT {self._columns(('state', 'claimed_at'))} FROM {self.table} "
                                 f"WHERE {self._quote('order_id')} = ? AND {self._quote('note_key')} = ?",
                                 (int(order_id), note_key[:64])).fetchone()
        return row[0], float(row[1])

    def reclaim(self, order_id: int, note_key: str) -> None:
        with self.database.transaction() as cursor:
            cursor.execute(f"UPDATE {self.table} SET {self._quote('claimed_at')} = ? "
                           f"WHERE {self._quote('order_id')} = ? AND {self._quote('note_key')} = ?",
                           (time.time(), int(order_id), note_key[:64]))

    def release(self, order_id: int, note_key: str) -> None:
        """Drops a claim whose write the shop refused, so the next delivery tries at once."""
        with self.database.transaction() as cursor:
            cursor.execute(f"DELETE FROM {self.table} WHERE {self._quote('order_id')} = ? AND "
                           f"{self._quote('note_key')} = ? AND {self._quote('state')} = ?",
                           (int(order_id), note_key[:64], NOTE_CLAIMED))

    def done(self, order_id: int, note_key: str, note_id: int = 0) -> None:
        with self.database.transaction() as cursor:
            cursor.execute(f"UPDATE {self.table} SET {self._quote('state')} = ?, {self._quote('note_id')} = ? "
                           f"WHERE {self._quote('order_id')} = ? AND {self._quote('note_key')} = ?",
                           (NOTE_DONE, int(note_id or 0), int(order_id), note_key[:64]))

    def keys(self, order_id: int) -> dict[str, str]:
        """{note key: state} for one order."""
        with self.database.transaction(write=False) as cursor:
            rows = cursor.execute(f"SELECT {self._columns(('note_key', 'state'))} FROM {self.table} "
                                  f"WHERE {self._quote('order_id')} = ?", (int(order_id),)).fetchall()
        return {key: state for key, state in rows}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShippingMethod:
    """One shipping method instance of one zone, as imported from the shop."""

    instance_id: str
    zone_id: int
    zone_name: str
    method_id: str
    title: str
    enabled: bool


_SHIPPING_COLUMNS = ("instance_id", "zone_id", "zone_name", "method_id", "title", "enabled")


class ShippingMethodStore(_Store):
    """The shop's shipping method instances, replaced as a whole on every import."""

    TABLE = SHIPPING

    def replace_all(self, methods: Iterable["ShippingMethod"]) -> None:
        now = time.time()
        with self.database.transaction() as cursor:
            cursor.execute(f"DELETE FROM {self.table}")
            cursor.executemany(
                f"INSERT INTO {self.table} ({self._columns(_SHIPPING_COLUMNS + ('refreshed_at',))}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(m.instance_id[:32], int(m.zone_id), m.zone_name[:100], m.method_id[:64], m.title[:200],
                  1 if m.enabled else 0, now) for m in methods])

    def all(self) -> list["ShippingMethod"]:
        with self.database.transaction(write=False) as cursor:
            rows = cursor.execute(f"SELECT {self._columns(_SHIPPING_COLUMNS)} FROM {self.table} "
                                  f"ORDER BY {self._quote('zone_id')}, {self._quote('instance_id')}").fetchall()
        return [ShippingMethod(instance_id=r[0], zone_id=int(r[1]), zone_name=r[2], method_id=r[3], title=r[4],
                               enabled=bool(r[5])) for r in rows]
