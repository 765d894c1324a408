"""The write-back consumer: tells the shop what became of its orders, each note exactly once.

It consumes `exchequer.order.*`: `imported` (a private note naming the documents, and the
configured status), `progressed` (a note the customer sees per delivery note, with carrier and
tracking, private notes per invoice, and `completed` once everything is delivered), `cancelled`
(the order ended in the shop after payment: cancelled, refunded, failed or trashed) and `refunded`
(private notes: the Exchequer documents stay, they are never deleted).

Exactly once: every note has a key (e.g. `dispatch:SDN000004`) in the notes table, unique per
order. The key is claimed (committed) before the REST call and marked done after it. The crash
window is between the shop accepting the note and the `done` mark: a later delivery finds the
claim left behind and, once it is older than `claim_timeout_seconds` (longer than any request
can take), looks through the order's notes in the shop for the same text before writing it, so
a crash costs neither a note nor a duplicate. A younger claim means another worker is writing
it now: the message is retried later. A write the shop refused with a 4xx answer was not applied,
so its claim is dropped at once; after a 5xx or a lost connection it may have been (WordPress can
fail after saving, sending the customer's e-mail), so the claim stays for the check above.
"""

import logging
import time

from exsync.bus import PermanentError
from exsync.consumers.connections import fresh_after_failure
from exsync.consumers.errors import NoteInFlightError
from exsync.exchequer import connect, mapping_for
from exsync.metrics import Metrics
from exsync.state.orders import NOTE_DONE, NoteStore, ensure_order_tables
from exsync.threads import PerThread
from exsync.woo import WooApiError, WooClient, WooNotFound

__all__ = ["DEFAULT_CLAIM_TIMEOUT_SECONDS", "OrderWritebackConsumer", "build"]

log = logging.getLogger(__name__)

DEFAULT_CLAIM_TIMEOUT_SECONDS = 180.0
COMPLETED = "completed"


def _refs(data):
    return ", ".join(data.get("references") or []) or "its documents"


class OrderWritebackConsumer:
    """Handles `exchequer.order.*` envelopes against one shop; several threads may call `handle`."""

    def __init__(self, *, state_dsn, config, client, metrics=None,
                 claim_timeout_seconds=DEFAULT_CLAIM_TIMEOUT_SECONDS, clock=time.time):
        self.state_dsn = state_dsn
        self.names_mapping = mapping_for(config)
        self.options = config["orders"]
        self.client = client
        self.metrics = metrics or Metrics()
        self.claim_timeout_seconds = claim_timeout_seconds
        self.clock = clock
        self._per_thread = PerThread(
            make=lambda: NoteStore(database=connect(state_dsn, mapping=self.names_mapping)),
            close=lambda notes: notes.database.close())
        ensure_order_tables(self._notes().database)

    def _notes(self):
        return self._per_thread.get()

    def close(self):
        self._per_thread.close()
        self.client.close()

    def handle(self, message):
        with fresh_after_failure(self._per_thread):
            self.handle_event(message.event)

    def handle_event(self, event):
        """Applies one envelope; returns the note keys written by this call."""
        data = event.get("data")
        if not isinstance(data, dict) or "woo_order_id" not in data:
            raise PermanentError("an order write-back event needs data with woo_order_id")
        kind = str(event.get("type") or "").removeprefix("exchequer.order.")
        handler = {"imported": self._imported, "progressed": self._progressed, "cancelled": self._cancelled,
                   "refunded": self._refunded}.get(kind)
        if handler is None:
            log.info("write-back: nothing to do for %s", event.get("type"))
            return []
        try:
            return [key for key in handler(int(data["woo_order_id"]), data) if key]
        except WooNotFound as error:
            raise PermanentError(f"order {data['woo_order_id']} is not in the shop: {error}") from error

    # --- the events

    def _imported(self, order_id, data):
        yield self._note(order_id, "imported", f"Imported into Exchequer as {_refs(data)}.")
        status = self.options["imported_status"]
        if status:
            yield self._status(order_id, status)

    def _progressed(self, order_id, data):
        dispatch = self.options["dispatch"]
        for delivery in data.get("deliveries") or []:
            fields = delivery.get("user_fields") or {}
            carrier = str(fields.get(str(dispatch["carrier_field"])) or "").strip()
            tracking = str(fields.get(str(dispatch["tracking_field"])) or "").strip()
            text = f"Your order has been dispatched (delivery note {delivery['reference']})."
            if carrier:
                text += f" Carrier: {carrier}."
            if tracking:
                text += f" Tracking number: {tracking}."
            yield self._note(order_id, f"dispatch:{delivery['reference']}", text, customer_note=True)
        for invoice in data.get("invoices") or []:
            yield self._note(order_id, f"invoice:{invoice['reference']}",
                             f"Invoiced in Exchequer as {invoice['reference']} (order {data.get('reference', '')}).")
        if self.options["complete_on_dispatch"] and data.get("fully_delivered"):
            yield self._status(order_id, COMPLETED)

    def _cancelled(self, order_id, data):
        # The order was paid, so it is in Exchequer, whether it was imported before or after its end.
        yield self._note(order_id, "cancelled",
                         f"Order {data.get('status') or 'cancelled'} in the shop after it was paid. Exchequer "
                         f"{_refs(data)} left in place for review: Exchequer documents are never deleted.")

    def _refunded(self, order_id, data):
        for refund in data.get("refunds") or []:
            text = f"Refund of {refund.get('amount')} recorded"
            if refund.get("reason"):
                text += f" ({refund['reason']})"
            text += f"; Exchequer {_refs(data)} unchanged."
            if data.get("credit_note") is False:
                text += " No credit note raised: the Exchequer write layer cannot create credit notes (SCR)."
            yield self._note(order_id, f"refund:{refund.get('id')}", text)

    # --- exactly once

    def _claim(self, order_id, key, already_done):
        """True when this caller should do the write; False when it is done already."""
        notes = self._notes()
        held = notes.claim(order_id, key)
        if held is None:
            return True
        state, claimed_at = held
        if state == NOTE_DONE:
            return False
        if self.clock() - claimed_at < self.claim_timeout_seconds:
            raise NoteInFlightError(f"order {order_id}: {key} is being written by another worker")
        if already_done():
            notes.done(order_id, key)
            return False
        notes.reclaim(order_id, key)
        return True

    def _refusable(self, order_id, key, write):
        try:
            return write()
        except WooApiError as error:
            if error.status is not None and 400 <= error.status < 500:
                self._notes().release(order_id, key)
            raise

    def _note(self, order_id, key, text, *, customer_note=False):
        kind = key.partition(":")[0]

        def in_shop():
            return any(note.get("note") == text for note in self.client.list_order_notes(order_id))

        if not self._claim(order_id, key, in_shop):
            self.metrics.inc("order_notes_written", kind=kind, outcome="repeat")
            return None
        note = self._refusable(order_id, key, lambda: self.client.add_order_note(
            order_id, text, customer_note=customer_note))
        self._notes().done(order_id, key, (note or {}).get("id") or 0)
        self.metrics.inc("order_notes_written", kind=kind, outcome="written")
        return key

    def _status(self, order_id, status):
        key = f"status:{status}"

        def in_shop():
            return self.client.get_order(order_id).get("status") == status

        if not self._claim(order_id, key, in_shop):
            self.metrics.inc("order_notes_written", kind="status", outcome="repeat")
            return None
        self._refusable(order_id, key, lambda: self.client.update_order_status(order_id, status))
        self._notes().done(order_id, key)
        self.metrics.inc("order_notes_written", kind="status", outcome="written")
        return key


def build(settings, *, metrics):
    """The consumer `exsync consume orders-writeback` runs."""
    return OrderWritebackConsumer(state_dsn=settings.state_dsn, config=settings.config,
                                  client=WooClient.from_settings(settings, metrics=metrics), metrics=metrics)
