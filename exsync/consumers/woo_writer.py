"""The woo-writer consumer: Exchequer's product, price and stock changes into the shop, in batches.

The shop's API is the bottleneck (tens of ms an item), so the writer never writes per message:
- `handle` stores each event's items durably as one pending row per SKU, keeping the newest
  capture sequence (an older sequence never overwrites a newer one, pending or already written),
  commits, and returns, so the worker acks only what is stored;
- `flush` (once 100 SKUs are pending, and whenever the queue goes idle) coalesces per SKU,
  resolves SKU -> product id through a cache (the shop's products paged once, `?sku=` on a miss),
  compares with the last value written per SKU and sends only real changes, creating missing
  simple products (stock managed) and categories (by name), in `/products/batch` requests of up
  to 100 items. An item the shop refuses stays pending with its attempt count and error,
  retried after growing pauses (`item_retry_seconds`, doubled each time); after
  `max_item_attempts` it is marked failed (kept, visible in the pending table) and not retried.

Band A is the regular price; band B is Wholesale Suite's wholesale price meta, with the
percentage-discount meta cleared (it would override the price). Stock is sent as an integer
with the stock status derived from it.
"""

import dataclasses
import html
import json
import logging
import time

from exsync.bus import PermanentError
from exsync.exchequer.mapping import Column
from exsync.exchequer.state import StateTable, create_state_tables, text_column
from exsync.metrics import Metrics
from exsync.woo import WooApiError, WooError
from exsync.woo.client import MAX_BATCH_ITEMS

__all__ = [
    "DEFAULT_FLUSH_ITEMS",
    "DEFAULT_MAX_ITEM_ATTEMPTS",
    "WRITER_TABLES",
    "FlushReport",
    "WooWriter",
    "build",
]

log = logging.getLogger(__name__)

DEFAULT_FLUSH_ITEMS = 100
DEFAULT_MAX_ITEM_ATTEMPTS = 5
DEFAULT_ITEM_RETRY_SECONDS = 30.0
DEFAULT_PAGE_SKUS = 1000
# Bound on SQL parameters per IN (...) list (SQLite's oldest limit is 999).
_IN_CHUNK = 500
PRODUCT_EVENT = "exchequer.product.changed"
STOCK_EVENT = "exchequer.stock.changed"
WHOLESALE_PRICE_META = "wholesale_customer_wholesale_price"
WHOLESALE_FLAG_META = "wholesale_customer_have_wholesale_price"
WHOLESALE_DISCOUNT_META = "wholesale_customer_wholesale_percentage_discount"
PRODUCT_FIELDS = ("name", "regular_price", "wholesale_price", "category")
_SKU = Column("sku", "str:40")

WRITER_TABLES = (
    StateTable(name="woo_pending", key=("sku",), columns={
        "sku": _SKU,
        "product_sequence": Column("product_sequence", "int"),
        "product": text_column("product"),
        "stock_sequence": Column("stock_sequence", "int"),
        "quantity": Column("quantity", "int"),
        "attempts": Column("attempts", "int"),
        "failed": Column("failed", "int"),
        "error": Column("error", "str:1000"),
        "retry_at": Column("retry_at", "float"),
    }),
    StateTable(name="woo_products", key=("sku",), columns={
        "sku": _SKU,
        "product_id": Column("product_id", "int"),
        "product_sequence": Column("product_sequence", "int"),
        "stock_sequence": Column("stock_sequence", "int"),
        "written": text_column("written"),
    }),
    StateTable(name="woo_categories", key=("name",), columns={
        "name": Column("name", "str:200"),
        "category_id": Column("category_id", "int"),
    }),
)


def _chunks(values, size):
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _money(value):
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return ""


def _meta(product, key):
    for entry in product.get("meta_data") or ():
        if entry.get("key") == key:
            return entry.get("value")
    return None


def shop_values(product):
    """What a shop product shows of the fields the writer manages, as the writer compares them."""
    categories = product.get("categories") or []
    wholesale = _meta(product, WHOLESALE_PRICE_META)
    if _meta(product, WHOLESALE_DISCOUNT_META) not in (None, ""):
        wholesale = None  # a leftover discount overrides the price: it must be written again
    return {
        "name": html.unescape(product.get("name") or ""),
        "regular_price": _money(product.get("regular_price")),
        "wholesale_price": _money(wholesale) if wholesale not in (None, "") else "",
        "category": html.unescape(categories[0]["name"]) if categories else "",
        "quantity": product.get("stock_quantity") if product.get("manage_stock") else None,
    }


def _stock_status(quantity):
    return "instock" if quantity > 0 else "outofstock"


@dataclasses.dataclass(kw_only=True)
class FlushReport:
    """What one flush settled."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    retry_later: int = 0
    requests: int = 0

    def add(self, other):
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


@dataclasses.dataclass(kw_only=True)
class _Pending:
    sku: str
    product_sequence: int
    product: dict | None
    stock_sequence: int
    quantity: int | None
    attempts: int


class WooWriter:
    """Stores changes durably and writes them to the shop in batches; one per shop (single consumer)."""

    def __init__(self, *, database, client, metrics=None, flush_items=DEFAULT_FLUSH_ITEMS,
                 max_item_attempts=DEFAULT_MAX_ITEM_ATTEMPTS, item_retry_seconds=DEFAULT_ITEM_RETRY_SECONDS,
                 page_skus=DEFAULT_PAGE_SKUS):
        self.database = database
        self.client = client
        self.metrics = metrics or Metrics()
        self.flush_items = flush_items
        self.max_item_attempts = max_item_attempts
        self.item_retry_seconds = item_retry_seconds
        self.page_skus = page_skus
        self._pending_sql, self._products_sql, self._categories_sql = (
            table.sql_name(database) for table in WRITER_TABLES)
        self._categories = None
        create_state_tables(database, WRITER_TABLES)

    # -- storing what arrives ---------------------------------------------------------------------

    def handle(self, message):
        """The consumer's handler: stores the event's items (committed), then flushes when enough wait."""
        event = message.event
        items = (event.get("data") or {}).get("items") if isinstance(event.get("data"), dict) else None
        if event.get("type") not in (PRODUCT_EVENT, STOCK_EVENT) or not isinstance(items, list):
            raise PermanentError(f"not a product or stock change event: {event.get('type')!r}")
        try:
            if event["type"] == PRODUCT_EVENT:
                self.accept(products=items)
            else:
                self.accept(stock=items)
        except (KeyError, TypeError, ValueError) as error:
            raise PermanentError(f"malformed {event['type']} item: {error!r}") from error
        if self.pending_count() >= self.flush_items:
            self._flush_quietly()

    def on_idle(self):
        if self.pending_count():
            self._flush_quietly()

    def _flush_quietly(self):
        # The changes are stored; a shop outage must not fail (and retry) the messages that carried them.
        try:
            self.flush()
        except WooError as error:
            log.warning("woo-writer flush stopped (%s); pending changes stay stored", error)

    def _select_in(self, cursor, sql_prefix, skus):
        rows = []
        for chunk in _chunks(list(skus), _IN_CHUNK):
            marks = ", ".join("?" for _ in chunk)
            rows.extend(cursor.execute(f"{sql_prefix} IN ({marks})", tuple(chunk)).fetchall())
        return rows

    def accept(self, *, products=(), stock=()):
        """Stores changes (event items); returns (stored, stale). One transaction."""
        incoming = {}
        for item in products:
            incoming.setdefault(str(item["sku"]), [None, None])[0] = item
        for item in stock:
            incoming.setdefault(str(item["sku"]), [None, None])[1] = item
        stored = stale = 0
        with self.database.transaction() as cursor:
            pending = {row[0]: row for row in self._select_in(
                cursor, f'SELECT "sku", "product_sequence", "product", "stock_sequence", "quantity", "failed" '
                        f'FROM {self._pending_sql} WHERE "sku"', incoming)}
            applied = {row[0]: (int(row[1]), int(row[2])) for row in self._select_in(
                cursor, f'SELECT "sku", "product_sequence", "stock_sequence" FROM {self._products_sql} '
                        'WHERE "sku"', incoming)}
            inserts, updates = [], []
            for sku, (product_item, stock_item) in incoming.items():
                row = pending.get(sku)
                product_seq, product_json = (int(row[1]), row[2]) if row else (0, "")
                stock_seq, quantity = (int(row[3]), int(row[4])) if row else (0, 0)
                applied_product, applied_stock = applied.get(sku, (0, 0))
                changed = False
                if product_item is not None:
                    sequence = int(product_item["sequence"])
                    if sequence > max(product_seq, applied_product):
                        product_seq, changed = sequence, True
                        product_json = json.dumps({
                            "name": str(product_item["description"]),
                            "regular_price": _money(product_item["regular_price"]),
                            "wholesale_price": _money(product_item["wholesale_price"]),
                            "category": str(product_item.get("category") or "")}, sort_keys=True)
                    else:
                        stale += 1
                if stock_item is not None:
                    sequence = int(stock_item["sequence"])
                    if sequence > max(stock_seq, applied_stock):
                        stock_seq, quantity, changed = sequence, int(stock_item["quantity"]), True
                    else:
                        stale += 1
                if not changed:
                    continue
                stored += 1
                if row is None:
                    inserts.append((sku, product_seq, product_json, stock_seq, quantity))
                else:
                    # A new change gives a failed SKU a fresh start.
                    updates.append((product_seq, product_json, stock_seq, quantity, sku))
            cursor.executemany(f'INSERT INTO {self._pending_sql} ("sku", "product_sequence", "product", '
                               '"stock_sequence", "quantity", "attempts", "failed", "error", "retry_at") '
                               "VALUES (?, ?, ?, ?, ?, 0, 0, '', 0)", inserts)
            cursor.executemany(f'UPDATE {self._pending_sql} SET "product_sequence" = ?, "product" = ?, '
                               '"stock_sequence" = ?, "quantity" = ?, "attempts" = 0, "failed" = 0, "error" = \'\', '
                               '"retry_at" = 0 WHERE "sku" = ?', updates)
        if stale:
            self.metrics.inc("woo_writer_changes", stale, outcome="stale")
        return stored, stale

    def pending_count(self):
        with self.database.transaction(write=False) as cursor:
            count = int(cursor.execute(f'SELECT COUNT(*) FROM {self._pending_sql} WHERE "failed" = 0').fetchone()[0])
        self.metrics.set("woo_writer_pending", count)
        return count

    def failures(self):
        """(sku, attempts, error) of every SKU marked failed."""
        with self.database.transaction(write=False) as cursor:
            return [tuple(row) for row in cursor.execute(
                f'SELECT "sku", "attempts", "error" FROM {self._pending_sql} WHERE "failed" = 1 ORDER BY "sku"')
                .fetchall()]

    # -- writing to the shop --------------------------------------------------------------------

    def flush(self, *, progress=None):
        """Writes every pending change; `progress(done, total)` is called after each request."""
        report = FlushReport()
        total = self.pending_count()
        after = ""
        # Right after the cache was filled from the shop, a SKU missing from it is missing from the shop.
        look_up_missing = not self._prime_products()
        while True:
            page = self._pending_page(after)
            if not page:
                break
            after = page[-1].sku
            page_report = self._write_page(page, progress=progress, total=total, done_before=report,
                                           look_up_missing=look_up_missing)
            report.add(page_report)
            if page_report.retry_later:
                break  # the shop is refusing for now: the rest waits for the next flush
        self.pending_count()
        return report

    def _pending_page(self, after):
        with self.database.transaction(write=False) as cursor:
            sql = self.database.dialect.limit(
                f'SELECT "sku", "product_sequence", "product", "stock_sequence", "quantity", "attempts" '
                f'FROM {self._pending_sql} WHERE "failed" = 0 AND "retry_at" <= ? AND "sku" > ? ORDER BY "sku"',
                self.page_skus)
            rows = cursor.execute(sql, (time.time(), after)).fetchall()
        return [_Pending(sku=row[0], product_sequence=int(row[1]), product=json.loads(row[2]) if row[2] else None,
                         stock_sequence=int(row[3]), quantity=int(row[4]) if int(row[3]) else None,
                         attempts=int(row[5])) for row in rows]

    def _prime_products(self):
        """Fills the product cache from the shop while it is empty (the first flush ever); True if it did."""
        with self.database.transaction(write=False) as cursor:
            if cursor.execute(f"SELECT COUNT(*) FROM {self._products_sql}").fetchone()[0]:
                return False
        rows = [(product["sku"], int(product["id"]), json.dumps(shop_values(product), sort_keys=True))
                for product in self.client.iter_products(params={"status": "any"}) if product.get("sku")]
        self._store_known(rows)
        return True

    def _store_known(self, rows):
        """Caches (sku, product id, values) of products found in the shop (new SKUs' sequences start at 0)."""
        with self.database.transaction() as cursor:
            existing = {row[0] for row in self._select_in(
                cursor, f'SELECT "sku" FROM {self._products_sql} WHERE "sku"', [row[0] for row in rows])}
            cursor.executemany(f'INSERT INTO {self._products_sql} ("sku", "product_id", "product_sequence", '
                               '"stock_sequence", "written") VALUES (?, ?, 0, 0, ?)',
                               [row for row in rows if row[0] not in existing])
            cursor.executemany(f'UPDATE {self._products_sql} SET "product_id" = ?, "written" = ? '
                               'WHERE "sku" = ? AND "product_id" = 0',
                               [(product_id, written, sku) for sku, product_id, written in rows if sku in existing])

    def _known(self, skus):
        """sku -> (product id, last values written) for SKUs cached with a product id."""
        with self.database.transaction(write=False) as cursor:
            return {row[0]: (int(row[1]), json.loads(row[2]) if row[2] else {}) for row in self._select_in(
                cursor, f'SELECT "sku", "product_id", "written" FROM {self._products_sql} '
                        'WHERE "product_id" <> 0 AND "sku"', skus)}

    def _category_id(self, name):
        if self._categories is None:
            with self.database.transaction(write=False) as cursor:
                self._categories = {row[0]: int(row[1]) for row in cursor.execute(
                    f'SELECT "name", "category_id" FROM {self._categories_sql}').fetchall()}
        if name not in self._categories:
            # WordPress hands names back HTML-escaped ("Nuts &amp; Bolts").
            found = {html.unescape(category["name"]): int(category["id"])
                     for category in self.client.iter_categories() if category.get("parent", 0) == 0}
            category_id = found.get(name)
            if category_id is None:
                try:
                    category_id = int(self.client.create_category(name=name)["id"])
                except WooApiError as error:
                    # The name differs but the slug is taken (case, punctuation): that term is the one.
                    existing = (error.data or {}).get("resource_id") if isinstance(error.data, dict) else None
                    if error.code != "term_exists" or not existing:
                        raise
                    category_id = int(existing)
            with self.database.transaction() as cursor:
                cursor.execute(f'INSERT INTO {self._categories_sql} ("name", "category_id") VALUES (?, ?)',
                               (name, category_id))
            self._categories[name] = category_id
        return self._categories[name]

    def _desired(self, pending, written):
        desired = dict(written)
        if pending.product is not None:
            desired.update({field: pending.product[field] for field in PRODUCT_FIELDS})
        if pending.quantity is not None:
            desired["quantity"] = pending.quantity
        return desired

    def _payload(self, desired, written, *, create, sku):
        """The fields to send: everything for a new product, only what differs for an existing one."""
        changed = {field for field in (*PRODUCT_FIELDS, "quantity")
                   if desired.get(field) is not None and desired.get(field) != written.get(field)}
        payload = {}
        if create:
            payload.update({"sku": sku, "type": "simple", "name": desired.get("name") or sku,
                            "manage_stock": True})
            changed.discard("name")
        if "name" in changed and desired["name"]:
            payload["name"] = desired["name"]
        if "regular_price" in changed:
            payload["regular_price"] = desired["regular_price"]
        if "category" in changed and desired["category"]:
            payload["categories"] = [{"id": self._category_id(desired["category"])}]
        if "wholesale_price" in changed:
            price = desired["wholesale_price"]
            has_price = price not in ("", "0.00")
            payload["meta_data"] = [
                {"key": WHOLESALE_PRICE_META, "value": price if has_price else None},
                {"key": WHOLESALE_FLAG_META, "value": "yes" if has_price else "no"},
                {"key": WHOLESALE_DISCOUNT_META, "value": None},
            ]
        if "quantity" in changed:
            quantity = int(desired["quantity"])
            payload.update({"manage_stock": True, "stock_quantity": quantity, "stock_status": _stock_status(quantity)})
        return payload

    def _write_page(self, page, *, progress, total, done_before, look_up_missing):
        report = FlushReport()
        known = self._known([p.sku for p in page])
        missing = [p.sku for p in page if p.sku not in known]
        if missing and look_up_missing:
            found = self.client.products_by_sku(missing)
            if found:
                self._store_known([(sku, int(product["id"]), json.dumps(shop_values(product), sort_keys=True))
                                   for sku, product in found.items()])
                known.update(self._known(list(found)))
        operations, unchanged = [], []
        for pending in page:
            product_id, written = known.get(pending.sku, (None, {}))
            desired = self._desired(pending, written)
            payload = self._payload(desired, written, create=product_id is None, sku=pending.sku)
            if not payload:
                unchanged.append((pending, product_id, desired))
                continue
            if product_id is not None:
                payload["id"] = product_id
            operations.append((pending, product_id, desired, payload))
        self._settle(ok=[(p, pid, d) for p, pid, d in unchanged], failed=[])
        report.unchanged += len(unchanged)
        self.metrics.inc("woo_writer_changes", len(unchanged), outcome="unchanged")

        def tell():
            if progress is not None:
                progress(sum(r.created + r.updated + r.unchanged + r.failed for r in (done_before, report)), total)

        if unchanged:
            tell()
        for chunk in _chunks(operations, MAX_BATCH_ITEMS):
            creates = [op for op in chunk if op[1] is None]
            updates = [op for op in chunk if op[1] is not None]
            result = self.client.batch_products(create=[op[3] for op in creates], update=[op[3] for op in updates])
            report.requests += 1
            self.metrics.observe("woo_writer_batch_items", len(chunk))
            answers = {("create", index): answer for index, answer in
                       enumerate(a for a in result.items if a.action == "create")}
            answers.update({("update", index): answer for index, answer in
                            enumerate(a for a in result.items if a.action == "update")})
            ok, failed, written = [], [], {"create": 0, "update": 0}
            for action, ops in (("create", creates), ("update", updates)):
                for index, (pending, product_id, desired, _) in enumerate(ops):
                    answer = answers.get((action, index))
                    if answer is not None and answer.ok:
                        ok.append((pending, int(answer.body.get("id") or product_id or 0), desired))
                        written[action] += 1
                    else:
                        error = answer.error if answer is not None else None
                        failed.append((pending, error))
            retry_later = [f for f in failed if f[1] is not None and f[1].retryable]
            permanent = [f for f in failed if f not in retry_later]
            report.retry_later += len(retry_later)
            report.failed += self._settle(ok=ok, failed=permanent)
            report.created += written["create"]
            report.updated += written["update"]
            self.metrics.inc("woo_writer_changes", written["create"], outcome="created")
            self.metrics.inc("woo_writer_changes", written["update"], outcome="updated")
            tell()
            if retry_later:
                break
        return report

    def _settle(self, *, ok, failed):
        """Records written values and clears pending rows; counts attempts of refused items.
        Returns how many SKUs were marked failed for good."""
        gave_up = 0
        with self.database.transaction() as cursor:
            existing = {row[0] for row in self._select_in(
                cursor, f'SELECT "sku" FROM {self._products_sql} WHERE "sku"', [p.sku for p, _, _ in ok])}
            rows = [(product_id, p.product_sequence, p.stock_sequence, json.dumps(desired, sort_keys=True), p.sku)
                    for p, product_id, desired in ok]
            # A change of one kind leaves the other kind's applied sequence as it was (0 means none came).
            cursor.executemany(
                f'UPDATE {self._products_sql} SET "product_id" = ?, '
                '"product_sequence" = CASE WHEN ? > "product_sequence" THEN ? ELSE "product_sequence" END, '
                '"stock_sequence" = CASE WHEN ? > "stock_sequence" THEN ? ELSE "stock_sequence" END, '
                '"written" = ? WHERE "sku" = ?',
                [(product_id, product_seq, product_seq, stock_seq, stock_seq, written, sku)
                 for product_id, product_seq, stock_seq, written, sku in rows if sku in existing])
            cursor.executemany(f'INSERT INTO {self._products_sql} ("product_id", "product_sequence", '
                               '"stock_sequence", "written", "sku") VALUES (?, ?, ?, ?, ?)',
                               [row for row in rows if row[4] not in existing])
            # Only the version written is cleared: a newer change stored meanwhile stays pending.
            cursor.executemany(f'DELETE FROM {self._pending_sql} WHERE "sku" = ? AND "product_sequence" = ? '
                               'AND "stock_sequence" = ?', [(p.sku, p.product_sequence, p.stock_sequence)
                                                            for p, _, _ in ok])
            # The product was deleted in the shop: forget its id, so the next attempt finds or creates it.
            cursor.executemany(f'UPDATE {self._products_sql} SET "product_id" = 0, "written" = \'\' WHERE "sku" = ?',
                               [(pending.sku,) for pending, error in failed
                                if getattr(error, "code", None) == "woocommerce_rest_product_invalid_id"])
            updates = []
            for pending, error in failed:
                attempts = pending.attempts + 1
                give_up = attempts >= self.max_item_attempts
                gave_up += give_up
                message = f"{type(error).__name__}: {error}" if error is not None else "no answer from the shop"
                # Growing pauses, so a refused item is not hammered every time the queue idles.
                retry_at = time.time() + self.item_retry_seconds * 2 ** (attempts - 1)
                if give_up:
                    log.error("woo-writer: SKU %s failed for good after %d attempt(s): %s", pending.sku, attempts,
                              message, extra={"sku": pending.sku, "attempt": attempts, "outcome": "failed"})
                updates.append((attempts, int(give_up), message[:1000], retry_at, pending.sku))
            cursor.executemany(f'UPDATE {self._pending_sql} SET "attempts" = ?, "failed" = ?, "error" = ?, '
                               '"retry_at" = ? WHERE "sku" = ?', updates)
        if gave_up:
            self.metrics.inc("woo_writer_changes", gave_up, outcome="failed")
            log.error("woo-writer: %d SKU(s) failed for good; see the woo_pending table", gave_up)
        return gave_up

    def close(self):
        self.client.close()
        self.database.close()


def build(settings, *, metrics):
    """The woo-writer consumer for `exsync consume woo-writer` (queue woo.write)."""
    from exsync.exchequer.db import connect
    from exsync.exchequer.options import mapping_for
    from exsync.woo import WooClient

    options = settings.config.get("products", {})
    database = connect(settings.state_dsn, mapping=mapping_for(settings.config))
    return WooWriter(database=database, client=WooClient.from_settings(settings, metrics=metrics), metrics=metrics,
                     flush_items=options.get("flush_items", DEFAULT_FLUSH_ITEMS),
                     max_item_attempts=options.get("max_item_attempts", DEFAULT_MAX_ITEM_ATTEMPTS),
                     item_retry_seconds=options.get("item_retry_seconds", DEFAULT_ITEM_RETRY_SECONDS))
