"""The woo-writer's own tables and every statement on them: `WriterStore`.

Pending changes (one row per SKU, the newest capture sequence of each kind), the products the
writer knows in the shop (id and the last values written), categories by name, SKUs marked for a
stock check, the stock side each shop order was last seen on, and the last stock audit. Each
method is one transaction; a unique-key race (another process stored the same row first) runs the
transaction again against what is now there. Rows come back as small frozen dataclasses.
"""

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

from exsync.state.errors import DuplicateRowError
from exsync.state.tables import StateColumn, StateDatabase, StateTable, create_state_tables, text_column

__all__ = [
    "WRITER_TABLES",
    "Failure",
    "IncomingChange",
    "KnownProduct",
    "PendingChange",
    "Refusal",
    "Settled",
    "WriterStore",
]

log = logging.getLogger(__name__)

# Bound on SQL parameters per IN (...) list (SQLite's oldest limit is 999).
_IN_CHUNK = 500
_DUPLICATE_ATTEMPTS = 3
_SKU = StateColumn("sku", "str:40")
_T = TypeVar("_T")

WRITER_TABLES = (
    StateTable(name="woo_pending", key=("sku",), columns={
        "sku": _SKU,
        "product_sequence": StateColumn("product_sequence", "int"),
        "product": text_column("product"),
        "stock_sequence": StateColumn("stock_sequence", "int"),
        "quantity": StateColumn("quantity", "int"),
        "attempts": StateColumn("attempts", "int"),
        "failed": StateColumn("failed", "int"),
        "error": StateColumn("error", "str:1000"),
        "retry_at": StateColumn("retry_at", "float"),
    }),
    StateTable(name="woo_products", key=("sku",), columns={
        "sku": _SKU,
        "product_id": StateColumn("product_id", "int"),
        "product_sequence": StateColumn("product_sequence", "int"),
        "stock_sequence": StateColumn("stock_sequence", "int"),
        "written": text_column("written"),
    }),
    StateTable(name="woo_categories", key=("name",), columns={
        "name": StateColumn("name", "str:200"),
        "category_id": StateColumn("category_id", "int"),
    }),
    # SKUs whose shop stock is to be read and corrected from `due_at` on (marked by order events)
    StateTable(name="woo_stock_checks", key=("sku",), columns={
        "sku": _SKU,
        "due_at": StateColumn("due_at", "float"),
        "reason": StateColumn("reason", "str:40"),
    }),
    # the side of the stock line each shop order was last seen on (1: the shop holds its stock)
    StateTable(name="woo_order_stock", key=("order_id",), columns={
        "order_id": StateColumn("order_id", "int"),
        "held": StateColumn("held", "int"),
    }),
    # the last stock audit that finished, so a restart keeps the schedule
    StateTable(name="woo_stock_audit", key=("name",), columns={
        "name": StateColumn("name", "str:40"),
        "finished_at": StateColumn("finished_at", "float"),
        "checked": StateColumn("checked", "int"),
        "drifted": StateColumn("drifted", "int"),
        "corrected": StateColumn("corrected", "int"),
    }),
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PendingChange:
    """One SKU's change waiting for the shop: the newest product values and/or stock figure."""

    sku: str
    product_sequence: int
    product: dict | None
    stock_sequence: int
    quantity: int | None
    attempts: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class IncomingChange:
    """What an event brings for one SKU: product values (JSON-ready) and/or a stock figure, each
    with its capture sequence (None: that kind did not come)."""

    sku: str
    product_sequence: int | None = None
    product: dict | None = None
    stock_sequence: int | None = None
    quantity: int | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class KnownProduct:
    """A product the writer knows in the shop: its id and the values last written (or found)."""

    sku: str
    product_id: int
    written: dict


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settled:
    """A change the shop confirmed: the pending version written, the product's id, its values now."""

    pending: PendingChange
    product_id: int
    values: dict


@dataclasses.dataclass(frozen=True, kw_only=True)
class Refusal:
    """A change the shop refused: the next attempt's count, whether it is given up, the error, when to retry,
    and whether the shop's product id is to be forgotten (the product was deleted there)."""

    sku: str
    attempts: int
    give_up: bool
    error: str
    retry_at: float
    forget_product: bool = False


class Failure(NamedTuple):
    """A SKU marked failed for good (a tuple, as `WooWriter.failures()` has always given)."""

    sku: str
    attempts: int
    error: str


def again_on_duplicate(work: Callable[[], _T]) -> _T:
    """Runs `work()` (one transaction), again if another process inserted the same key meanwhile:
    the next run reads the row that is now there and goes the update way."""
    for attempt in range(1, _DUPLICATE_ATTEMPTS + 1):
        try:
            return work()
        except DuplicateRowError:
            if attempt == _DUPLICATE_ATTEMPTS:
                raise
            log.info("woo-writer: another process stored the same row first; reading it again")
    raise AssertionError("unreachable")


def _chunks(values: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _dumps(values: dict) -> str:
    return json.dumps(values, sort_keys=True)


class WriterStore:
    """The woo-writer's tables in the state database (`database`: an exsync database connection)."""

    def __init__(self, *, database: StateDatabase) -> None:
        self.database = database
        (self._pending, self._products, self._categories, self._checks, self._orders,
         self._audit) = (table.sql_name(database) for table in WRITER_TABLES)

    def ensure(self) -> "WriterStore":
        """Creates the tables where missing; returns the store."""
        create_state_tables(self.database, WRITER_TABLES)
        return self

    def _select_in(self, cursor: Any, sql_prefix: str, skus: Iterable[str]) -> list:
        rows = []
        for chunk in _chunks(list(skus), _IN_CHUNK):
            marks = ", ".join("?" for _ in chunk)
            rows.extend(cursor.execute(f"{sql_prefix} IN ({marks})", tuple(chunk)).fetchall())
        return rows

    # -- pending changes ------------------------------------------------------------------------

    def accept(self, changes: Sequence[IncomingChange]) -> tuple[int, int]:
        """Stores each SKU's change where it is newer than what is pending and what was applied;
        returns (SKUs stored, items stale). A new change gives a failed SKU a fresh start."""
        return again_on_duplicate(lambda: self._accept(changes))

    def _accept(self, changes: Sequence[IncomingChange]) -> tuple[int, int]:
        stored = stale = 0
        skus = [change.sku for change in changes]
        with self.database.transaction() as cursor:
            pending = {row[0]: row for row in self._select_in(
                cursor, f'SELECT "sku", "product_sequence", "product", "stock_sequence", "quantity", "failed" '
                        f'FROM {self._pending} WHERE "sku"', skus)}
            applied = {row[0]: (int(row[1]), int(row[2])) for row in self._select_in(
                cursor, f'SELECT "sku", "product_sequence", "stock_sequence" FROM {self._products} '
                        'WHERE "sku"', skus)}
            inserts, updates = [], []
            for change in changes:
                row = pending.get(change.sku)
                product_seq, product_json = (int(row[1]), row[2]) if row else (0, "")
                stock_seq, quantity = (int(row[3]), int(row[4])) if row else (0, 0)
                applied_product, applied_stock = applied.get(change.sku, (0, 0))
                changed = False
                if change.product_sequence is not None:
                    if change.product_sequence > max(product_seq, applied_product):
                        product_seq, product_json, changed = change.product_sequence, _dumps(change.product or {}), True
                    else:
                        stale += 1
                if change.stock_sequence is not None:
                    if change.stock_sequence > max(stock_seq, applied_stock):
                        stock_seq, quantity, changed = change.stock_sequence, int(change.quantity or 0), True
                    else:
                        stale += 1
                if not changed:
                    continue
                stored += 1
                if row is None:
                    inserts.append((change.sku, product_seq, product_json, stock_seq, quantity))
                else:
                    updates.append((product_seq, product_json, stock_seq, quantity, change.sku))
            cursor.executemany(f'INSERT INTO {self._pending} ("sku", "product_sequence", "product", '
                               '"stock_sequence", "quantity", "attempts", "failed", "error", "retry_at") '
                               "VALUES (?, ?, ?, ?, ?, 0, 0, '', 0)", inserts)
            cursor.executemany(f'UPDATE {self._pending} SET "product_sequence" = ?, "product" = ?, '
                               '"stock_sequence" = ?, "quantity" = ?, "attempts" = 0, "failed" = 0, "error" = \'\', '
                               '"retry_at" = 0 WHERE "sku" = ?', updates)
        return stored, stale

    def pending_count(self) -> int:
        """How many SKUs wait for the shop (failed ones aside)."""
        with self.database.transaction(write=False) as cursor:
            return int(cursor.execute(f'SELECT COUNT(*) FROM {self._pending} WHERE "failed" = 0').fetchone()[0])

    def failures(self) -> list[Failure]:
        """Every SKU marked failed, by SKU."""
        with self.database.transaction(write=False) as cursor:
            return [Failure(row[0], int(row[1]), row[2]) for row in cursor.execute(
                f'SELECT "sku", "attempts", "error" FROM {self._pending} WHERE "failed" = 1 ORDER BY "sku"')
                .fetchall()]

    def pending_page(self, *, after: str, limit: int, now: float | None = None) -> list[PendingChange]:
        """Up to `limit` pending changes due by `now`, SKUs after `after` ascending."""
        with self.database.transaction(write=False) as cursor:
            sql = self.database.dialect.limit(
                f'SELECT "sku", "product_sequence", "product", "stock_sequence", "quantity", "attempts" '
                f'FROM {self._pending} WHERE "failed" = 0 AND "retry_at" <= ? AND "sku" > ? ORDER BY "sku"', limit)
            rows = cursor.execute(sql, (time.time() if now is None else now, after)).fetchall()
        return [PendingChange(sku=row[0], product_sequence=int(row[1]),
                              product=json.loads(row[2]) if row[2] else None, stock_sequence=int(row[3]),
                              quantity=int(row[4]) if int(row[3]) else None, attempts=int(row[5])) for row in rows]

    def settle(self, *, settled: Sequence[Settled], refused: Sequence[Refusal]) -> None:
        """Records written values and clears the pending versions written; records refusals."""
        again_on_duplicate(lambda: self._settle(settled, refused))

    def _settle(self, settled: Sequence[Settled], refused: Sequence[Refusal]) -> None:
        with self.database.transaction() as cursor:
            existing = {row[0] for row in self._select_in(
                cursor, f'SELECT "sku" FROM {self._products} WHERE "sku"', [s.pending.sku for s in settled])}
            rows = [(s.product_id, s.pending.product_sequence, s.pending.stock_sequence, _dumps(s.values),
                     s.pending.sku) for s in settled]
            # A change of one kind leaves the other kind's applied sequence as it was (0 means none came).
            cursor.executemany(
                f'UPDATE {self._products} SET "product_id" = ?, '
                '"product_sequence" = CASE WHEN ? > "product_sequence" THEN ? ELSE "product_sequence" END, '
                '"stock_sequence" = CASE WHEN ? > "stock_sequence" THEN ? ELSE "stock_sequence" END, '
                '"written" = ? WHERE "sku" = ?',
                [(product_id, product_seq, product_seq, stock_seq, stock_seq, written, sku)
                 for product_id, product_seq, stock_seq, written, sku in rows if sku in existing])
            cursor.executemany(f'INSERT INTO {self._products} ("product_id", "product_sequence", '
                               '"stock_sequence", "written", "sku") VALUES (?, ?, ?, ?, ?)',
                               [row for row in rows if row[4] not in existing])
            # Only the version written is cleared: a newer change stored meanwhile stays pending.
            cursor.executemany(f'DELETE FROM {self._pending} WHERE "sku" = ? AND "product_sequence" = ? '
                               'AND "stock_sequence" = ?', [(s.pending.sku, s.pending.product_sequence,
                                                             s.pending.stock_sequence) for s in settled])
            # The product was deleted in the shop: forget its id, so the next attempt finds or creates it.
            cursor.executemany(f'UPDATE {self._products} SET "product_id" = 0, "written" = \'\' WHERE "sku" = ?',
                               [(r.sku,) for r in refused if r.forget_product])
            cursor.executemany(f'UPDATE {self._pending} SET "attempts" = ?, "failed" = ?, "error" = ?, '
                               '"retry_at" = ? WHERE "sku" = ?',
                               [(r.attempts, int(r.give_up), r.error[:1000], r.retry_at, r.sku) for r in refused])

    # -- products known in the shop ---------------------------------------------------------------

    def has_products(self) -> bool:
        """Whether any product is cached (false only before the first flush ever)."""
        with self.database.transaction(write=False) as cursor:
            return bool(cursor.execute(f"SELECT COUNT(*) FROM {self._products}").fetchone()[0])

    def store_known(self, products: Sequence[KnownProduct]) -> None:
        """Caches products found in the shop: new SKUs (sequences 0) with their values, and an id for
        SKUs cached without one (values replaced)."""
        again_on_duplicate(lambda: self._store_known(products))

    def _store_known(self, products: Sequence[KnownProduct]) -> None:
        with self.database.transaction() as cursor:
            existing = {row[0] for row in self._select_in(
                cursor, f'SELECT "sku" FROM {self._products} WHERE "sku"', [p.sku for p in products])}
            cursor.executemany(f'INSERT INTO {self._products} ("sku", "product_id", "product_sequence", '
                               '"stock_sequence", "written") VALUES (?, ?, 0, 0, ?)',
                               [(p.sku, p.product_id, _dumps(p.written) if p.written else "")
                                for p in products if p.sku not in existing])
            cursor.executemany(f'UPDATE {self._products} SET "product_id" = ?, "written" = ? '
                               'WHERE "sku" = ? AND "product_id" = 0',
                               [(p.product_id, _dumps(p.written) if p.written else "", p.sku)
                                for p in products if p.sku in existing])

    def known(self, skus: Iterable[str]) -> dict[str, KnownProduct]:
        """sku -> KnownProduct for the SKUs cached with a product id."""
        with self.database.transaction(write=False) as cursor:
            return {row[0]: KnownProduct(sku=row[0], product_id=int(row[1]),
                                         written=json.loads(row[2]) if row[2] else {})
                    for row in self._select_in(cursor, f'SELECT "sku", "product_id", "written" FROM {self._products} '
                                                       'WHERE "product_id" <> 0 AND "sku"', skus)}

    def record_written(self, products: Sequence[KnownProduct]) -> None:
        """Records the id and values now in the shop of cached SKUs (a stock correction)."""
        with self.database.transaction() as cursor:
            cursor.executemany(f'UPDATE {self._products} SET "product_id" = ?, "written" = ? WHERE "sku" = ?',
                               [(p.product_id, _dumps(p.written), p.sku) for p in products])

    # -- categories -----------------------------------------------------------------------------

    def categories(self) -> dict[str, int]:
        """name -> the shop's category id, of every category stored."""
        with self.database.transaction(write=False) as cursor:
            return {row[0]: int(row[1]) for row in cursor.execute(
                f'SELECT "name", "category_id" FROM {self._categories}').fetchall()}

    def add_category(self, name: str, category_id: int) -> int:
        """Stores a category; returns the id stored for the name (another process's, if it was first)."""
        try:
            with self.database.transaction() as cursor:
                cursor.execute(f'INSERT INTO {self._categories} ("name", "category_id") VALUES (?, ?)',
                               (name, category_id))
        except DuplicateRowError:
            with self.database.transaction(write=False) as cursor:
                row = cursor.execute(f'SELECT "category_id" FROM {self._categories} WHERE "name" = ?',
                                     (name,)).fetchone()
            return int(row[0]) if row is not None else category_id
        return category_id

    # -- stock checks ---------------------------------------------------------------------------

    def note_order(self, order_id: int, side: Callable[[bool | None], tuple[bool, bool | None]],
                   *, skus: Sequence[str], due_at: float, reason: str) -> bool:
        """Records the stock side of an order, `side(previous) -> (moved, held)` deciding it from the
        side last seen (None: never seen); marks `skus` when it moved. Returns whether it marked."""

        def work() -> bool:
            with self.database.transaction() as cursor:
                row = cursor.execute(f'SELECT "held" FROM {self._orders} WHERE "order_id" = ?',
                                     (order_id,)).fetchone()
                previous = None if row is None else bool(row[0])
                moved, held = side(previous)
                if held is None:
                    return False
                if row is None:
                    cursor.execute(f'INSERT INTO {self._orders} ("order_id", "held") VALUES (?, ?)',
                                   (order_id, int(held)))
                elif previous != held:
                    cursor.execute(f'UPDATE {self._orders} SET "held" = ? WHERE "order_id" = ?',
                                   (int(held), order_id))
                if not moved or not skus:
                    return False
                self._mark(cursor, skus, due_at, reason)
                return True

        return again_on_duplicate(work)

    def mark(self, skus: Sequence[str], *, due_at: float, reason: str) -> None:
        """Marks SKUs for a stock check from `due_at`."""

        def work() -> None:
            with self.database.transaction() as cursor:
                self._mark(cursor, skus, due_at, reason)

        again_on_duplicate(work)

    def _mark(self, cursor: Any, skus: Sequence[str], due_at: float, reason: str) -> None:
        # A later mark pushes the check back: the newest event's settling time counts.
        existing = {row[0] for row in self._select_in(cursor, f'SELECT "sku" FROM {self._checks} WHERE "sku"', skus)}
        cursor.executemany(f'UPDATE {self._checks} SET "due_at" = ?, "reason" = ? WHERE "sku" = ?',
                           [(due_at, reason[:40], sku) for sku in skus if sku in existing])
        cursor.executemany(f'INSERT INTO {self._checks} ("sku", "due_at", "reason") VALUES (?, ?, ?)',
                           [(sku, due_at, reason[:40]) for sku in skus if sku not in existing])

    def marked(self) -> dict[str, float]:
        """sku -> due time of every SKU waiting for a stock check."""
        with self.database.transaction(write=False) as cursor:
            return {row[0]: float(row[1]) for row in cursor.execute(
                f'SELECT "sku", "due_at" FROM {self._checks}').fetchall()}

    def due_marks(self, *, now: float, limit: int) -> dict[str, float]:
        """sku -> due time of up to `limit` marks due by `now`, the oldest first."""
        with self.database.transaction(write=False) as cursor:
            sql = self.database.dialect.limit(
                f'SELECT "sku", "due_at" FROM {self._checks} WHERE "due_at" <= ? ORDER BY "due_at", "sku"', limit)
            return {row[0]: float(row[1]) for row in cursor.execute(sql, (now,)).fetchall()}

    def settle_marks(self, due: dict[str, float], *, failed: Iterable[str], retry_at: float) -> None:
        """Clears the marks read (`due`), except `failed` ones, due again at `retry_at`; a mark set
        again meanwhile stays for its own check."""
        failed = set(failed)
        with self.database.transaction() as cursor:
            cursor.executemany(f'DELETE FROM {self._checks} WHERE "sku" = ? AND "due_at" = ?',
                               [(sku, due_at) for sku, due_at in due.items() if sku not in failed])
            cursor.executemany(f'UPDATE {self._checks} SET "due_at" = ? WHERE "sku" = ? AND "due_at" = ?',
                               [(retry_at, sku, due[sku]) for sku in failed])

    # -- the stock audit ------------------------------------------------------------------------

    def last_audit(self) -> float | None:
        """When the last stock audit finished (epoch seconds), or None."""
        with self.database.transaction(write=False) as cursor:
            row = cursor.execute(f'SELECT "finished_at" FROM {self._audit} WHERE "name" = ?', ("stock",)).fetchone()
        return None if row is None else float(row[0])

    def record_audit(self, *, finished_at: float, checked: int, drifted: int, corrected: int) -> None:
        """Records the stock audit that finished."""

        def work() -> None:
            with self.database.transaction() as cursor:
                values = (finished_at, checked, drifted, corrected, "stock")
                if cursor.execute(f'SELECT 1 FROM {self._audit} WHERE "name" = ?', ("stock",)).fetchone():
                    cursor.execute(f'UPDATE {self._audit} SET "finished_at" = ?, "checked" = ?, "drifted" = ?, '
                                   '"corrected" = ? WHERE "name" = ?', values)
                else:
                    cursor.execute(f'INSERT INTO {self._audit} ("finished_at", "checked", "drifted", '
                                   '"corrected", "name") VALUES (?, ?, ?, ?, ?)', values)

        again_on_duplicate(work)
