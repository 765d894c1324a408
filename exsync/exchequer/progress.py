"""Order-progress capture: delivery notes and invoices raised in Exchequer against imported orders.

Exchequer has no change timestamps, so each run looks for SDNs and SINs whose lines point at a
sales order the integration imported (an `external_keys` row of kind sales_document keyed
`woo-order:<id>`), leaves out those already published (the `order_progress` table, unique on
order and document), and publishes one `exchequer.order.progressed` per order with the new
documents and their user fields, and the order's lines keyed on their tlABSLineNo (delivery and
invoice lines point at it through tlSOPABSLineNo; it stays put when a user inserts or removes lines
in Exchequer, where tlLineNo, the display position, moves). Rows are recorded only after the broker
confirmed the event, so a crash repeats an event (the write-back consumer writes each note once)
rather than losing one.
"""

import time
from typing import Any

from exsync.bus.events import publish_event
from exsync.bus.protocols import EventPublisher
from exsync.bus.topology import EXCHEQUER_EXCHANGE
from exsync.exchequer.db import Database
from exsync.exchequer.mapping import DOC_TYPE_NAMES, DOC_TYPES
from exsync.exchequer.reader import ExchequerReader
from exsync.exchequer.writer import KIND_SALES_DOCUMENT
from exsync.metrics import Metrics

__all__ = ["EVENT_SOURCE", "ORDER_KEY_PREFIX", "PROGRESS_TABLE", "OrderProgressCapture"]

EVENT_SOURCE = "exsync/capture"
ORDER_KEY_PREFIX = "woo-order:"
PROGRESS_TABLE = "order_progress"
ROUTING_KEY = "order.progressed"


class OrderProgressCapture:
    """Publishes the progress of imported sales orders; `run_once()` returns the events published."""

    def __init__(self, *, database: Database, publisher: EventPublisher, metrics: Metrics | None = None,
                 key_prefix: str = ORDER_KEY_PREFIX) -> None:
        self.database = database
        self.publisher = publisher
        self.metrics = metrics or Metrics()
        self.key_prefix = key_prefix
        self.reader = ExchequerReader(database=database)
        self.table = database.names.state_table(PROGRESS_TABLE)
        self._quote = database.dialect.quote
        self._ensure_table()

    def _ensure_table(self) -> None:
        dialect = self.database.dialect
        schema = self.database.mapping.state_schema if dialect.supports_schemas else None
        columns = (f"{self._quote('reference')} VARCHAR(16) {dialect.string_default()}, "
                   f"{self._quote('document')} VARCHAR(16) {dialect.string_default()}, "
                   f"{self._quote('published_at')} {dialect.float_type} NOT NULL DEFAULT 0")
        literal = f"{schema}.{PROGRESS_TABLE}" if schema else self.table.strip('"')
        index = self.table.replace('"', "").replace(".", "_") + "_reference_document_key"
        with self.database.transaction() as cursor:
            create_schema = dialect.create_schema(schema) if schema is not None else None
            if create_schema is not None:
                cursor.execute(create_schema)
            cursor.execute(dialect.create_table(self.table, literal, columns))
            cursor.execute(dialect.create_index(index, schema, self.table,
                                                [self._quote("reference"), self._quote("document")], unique=True))

    def _raised(self) -> dict[tuple[int, str], list[tuple[str, str]]]:
        """{(woo order id, SOR reference): [(document, doc type name), ...]} not yet published."""
        with self.database.transaction(write=False) as cursor:
            rows = cursor.run(
                "SELECT DISTINCT k.{external_keys.external_key}, s.{documents.our_ref}, d.{documents.our_ref}, "
                "d.{documents.doc_type} FROM {external_keys} k "
                "JOIN {documents} s ON s.{documents.our_ref} = k.{external_keys.reference} "
                "JOIN {lines} l ON l.{lines.sop_folio} = s.{documents.folio} "
                "JOIN {documents} d ON d.{documents.folio} = l.{lines.folio} "
                "WHERE k.{external_keys.kind} = ? AND k.{external_keys.external_key} LIKE ? "
                "AND s.{documents.doc_type} = ? AND d.{documents.doc_type} IN (?, ?)",
                (KIND_SALES_DOCUMENT, self.key_prefix + "%", DOC_TYPES["SOR"], DOC_TYPES["SDN"],
                 DOC_TYPES["SIN"])).fetchall()
            published = {(row[0], row[1]) for row in cursor.execute(
                f"SELECT {self._quote('reference')}, {self._quote('document')} FROM {self.table}").fetchall()}
        raised: dict[tuple[int, str], list[tuple[str, str]]] = {}
        for key, order_ref, document, doc_type in rows:
            if (order_ref, document) in published:
                continue
            order_id = key[len(self.key_prefix):].partition(":")[0]
            if not order_id.isdigit():
                continue
            raised.setdefault((int(order_id), order_ref), []).append(
                (document, DOC_TYPE_NAMES.get(doc_type, str(doc_type))))
        return raised

    def _user_fields(self, reference: str) -> dict[str, Any]:
        columns = ", ".join(f"{{documents.user_field_{n}}}" for n in range(1, 13))
        with self.database.transaction(write=False) as cursor:
            row = cursor.run(f"SELECT {columns} FROM {{documents}} WHERE {{documents.our_ref}} = ?",
                             (reference,)).fetchone()
        return {str(n): value for n, value in enumerate(row or (), start=1) if value}

    def run_once(self) -> int:
        published = 0
        for (order_id, order_ref), documents in sorted(self._raised().items()):
            progress = self.reader.order_progress(order_ref)
            documents = sorted(set(documents))
            entries: dict[str, list[dict[str, Any]]] = {"SDN": [], "SIN": []}
            for document, doc_type in documents:
                entries[doc_type].append({"reference": document, "user_fields": self._user_fields(document)})
            publish_event(self.publisher, exchange=EXCHEQUER_EXCHANGE, routing_key=ROUTING_KEY,
                          type="exchequer.order.progressed", source=EVENT_SOURCE, subject=str(order_id), data={
                "woo_order_id": order_id, "reference": order_ref, "deliveries": entries["SDN"],
                "invoices": entries["SIN"], "fully_delivered": progress.fully_delivered,
                "fully_invoiced": progress.fully_invoiced,
                "lines": [{"abs_line_no": line.abs_line_no, "line_no": line.line_no, "sku": line.stock_code,
                           "qty": line.qty, "qty_delivered": line.qty_delivered, "qty_invoiced": line.qty_invoiced}
                          for line in progress.lines]})
            now = time.time()
            with self.database.transaction() as cursor:
                cursor.executemany(
                    f"INSERT INTO {self.table} ({self._quote('reference')}, {self._quote('document')}, "
                    f"{self._quote('published_at')}) VALUES (?, ?, ?)",
                    [(order_ref, document, now) for document, _ in documents])
            for _, doc_type in documents:
                self.metrics.inc("order_progress_published", doc_type=doc_type)
            published += 1
        return published
