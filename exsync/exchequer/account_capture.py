"""Account capture: turns changes to Exchequer's customer accounts into events on the bus.

Exchequer keeps no change timestamps on CUSTSUPP either, so each run reads every customer account
(suppliers never reach the shop), fingerprints the fields the shop side syncs (company, contact,
address, post code, e-mail, phone, price band) and compares the fingerprint with the one recorded
in the `account_capture` state table.

New and changed accounts go out in chunks of up to `event_items` codes, one
`exchequer.account.changed` event (routing key `account.changed`) per chunk, for the same reason
product changes travel many to an event: each publish waits for the broker's confirm. A chunk's
fingerprints, and `changed_at` (when capture first saw that fingerprint), are recorded only after
the broker confirmed it, so a crash or a failed publish repeats a change next run rather than
losing it. Accounts that disappeared leave the table unpublished: the shop side has nothing to
write for an account that no longer exists.

The customers consumer reads the same table: an account whose current fingerprint
(`account_fingerprint`) differs from the recorded one changed after capture last looked, so
`changed_at` does not yet tell when.
"""

import dataclasses
import hashlib
import time
from collections.abc import Iterable

from exsync.bus.events import publish_event
from exsync.bus.protocols import EventPublisher
from exsync.bus.topology import EXCHEQUER_EXCHANGE
from exsync.exchequer.db import Database
from exsync.exchequer.mapping import Column
from exsync.exchequer.models import AccountDetails
from exsync.exchequer.reader import ExchequerReader
from exsync.metrics import Metrics
from exsync.schemas.config import DEFAULT_CUSTOMER_EVENT_ITEMS as DEFAULT_EVENT_ITEMS
from exsync.state import StateTable, create_state_tables

__all__ = [
    "ACCOUNT_CAPTURE_TABLES",
    "ACCOUNT_CHANGED",
    "DEFAULT_EVENT_ITEMS",
    "AccountCapture",
    "RecordedAccount",
    "account_changed_at",
    "account_fingerprint",
    "ensure_account_state",
    "recorded_account",
]

SOURCE = "exsync/exchequer/capture"
ACCOUNT_CHANGED = ("exchequer.account.changed", "account.changed")

ACCOUNT_CAPTURE_TABLES = (
    StateTable(name="account_capture", key=("company", "code"), columns={
        "company": Column("company", "str:30"),
        "code": Column("code", "str:10"),
        "fingerprint": Column("fingerprint", "str:16"),
        "changed_at": Column("changed_at", "float"),
    }),
)


def _fingerprint(fields: Iterable[str | None]) -> str:
    text = "\x1f".join((field or "").strip() for field in fields)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def account_fingerprint(account: AccountDetails) -> str:
    """A short hash of what the shop side syncs of an account (an Account or AccountDetails)."""
    return _fingerprint((account.company, account.contact, *account.address, account.post_code, account.email,
                         account.phone, account.price_band))


def ensure_account_state(state_database: Database) -> None:
    """Creates the account capture's state table where missing (for readers that may start first)."""
    create_state_tables(state_database, ACCOUNT_CAPTURE_TABLES)


@dataclasses.dataclass(frozen=True, slots=True)
class RecordedAccount:
    """What capture last recorded of an account: its fingerprint and when that was first seen (unix time)."""

    fingerprint: str
    changed_at: float


def recorded_account(state_database: Database, company: str, code: str) -> "RecordedAccount | None":
    """The RecordedAccount of `code` in `company`, or None if capture has not recorded it."""
    table = ACCOUNT_CAPTURE_TABLES[0].sql_name(state_database)
    with state_database.transaction(write=False) as cursor:
        row = cursor.execute(f'SELECT "fingerprint", "changed_at" FROM {table} WHERE "company" = ? AND "code" = ?',
                             (company, code)).fetchone()
    return None if row is None else RecordedAccount(fingerprint=row[0], changed_at=float(row[1]))


def account_changed_at(state_database: Database, company: str, code: str) -> float | None:
    """When capture first saw the account's recorded fingerprint (unix time), or None."""
    recorded = recorded_account(state_database, company, code)
    return None if recorded is None else recorded.changed_at


class AccountCapture:
    """One company's customer-account capture; `run_once()` returns the accounts published."""

    def __init__(self, *, database: Database, state_database: Database, publisher: EventPublisher, company: str,
                 metrics: Metrics | None = None, event_items: int = DEFAULT_EVENT_ITEMS) -> None:
        self.reader = ExchequerReader(database=database)
        self.state_database = state_database
        self.publisher = publisher
        self.company = company
        self.metrics = metrics or Metrics()
        self.event_items = event_items
        self.table = ACCOUNT_CAPTURE_TABLES[0].sql_name(state_database)
        # code -> (hash of the raw fields, their fingerprint) as the last run saw them: a cache of a
        # pure function, so the steady state skips the formatting and blake2b (hash() is per
        # process, so it is never stored).
        self._fingerprints: dict[str, tuple[int, str]] = {}
        ensure_account_state(state_database)

    def recorded(self, code: str) -> RecordedAccount | None:
        """The RecordedAccount of `code`, or None."""
        return recorded_account(self.state_database, self.company, code)

    def _known(self) -> dict[str, str]:
        """code -> fingerprint as last recorded."""
        with self.state_database.transaction(write=False) as cursor:
            cursor.execute(f'SELECT "code", "fingerprint" FROM {self.table} WHERE "company" = ?', (self.company,))
            return dict(cursor.iterate())

    def _scan(self, known: dict[str, str]) -> tuple[list[tuple[str, str, float]], list[str]]:
        """(changed, vanished): [(code, fingerprint, seen_at)] for new or changed customers, and the
        recorded codes no customer has any more. `known` is consumed."""
        changed: list[tuple[str, str, float]] = []
        previous = self._fingerprints
        fingerprints: dict[str, tuple[int, str]] = {}
        # Read to the end before anything is written: the state may share the company's connection,
        # which holds the read transaction while the stream is open.
        for row in self.reader.iter_customer_fields():
            code, raw = row[0], hash(row[1:])
            cached = previous.get(code)
            if cached is None or cached[0] != raw:
                cached = (raw, _fingerprint(row[1:]))
            fingerprints[code] = cached
            if known.pop(code, None) != cached[1]:
                changed.append((code, cached[1], time.time()))
        self._fingerprints = fingerprints
        return changed, sorted(known)

    def _forget(self, codes: Iterable[str]) -> None:
        with self.state_database.transaction() as cursor:
            cursor.executemany(f'DELETE FROM {self.table} WHERE "company" = ? AND "code" = ?',
                               [(self.company, code) for code in codes])

    def _publish(self, chunk: list[tuple[str, str, float]]) -> None:
        event_type, routing_key = ACCOUNT_CHANGED
        publish_event(self.publisher, exchange=EXCHEQUER_EXCHANGE, routing_key=routing_key, type=event_type,
                      source=SOURCE, subject=self.company, data={
                          "company": self.company,
                          "accounts": [{"code": code, "seen_at": seen_at} for code, _, seen_at in chunk]})

    def _record(self, chunk: list[tuple[str, str, float]], known_codes: set[str]) -> None:
        with self.state_database.transaction() as cursor:
            cursor.executemany(
                f'UPDATE {self.table} SET "fingerprint" = ?, "changed_at" = ? WHERE "company" = ? AND "code" = ?',
                [(fingerprint, seen_at, self.company, code) for code, fingerprint, seen_at in chunk
                 if code in known_codes])
            cursor.executemany(
                f'INSERT INTO {self.table} ("company", "code", "fingerprint", "changed_at") VALUES (?, ?, ?, ?)',
                [(self.company, code, fingerprint, seen_at) for code, fingerprint, seen_at in chunk
                 if code not in known_codes])

    def run_once(self) -> int:
        known = self._known()
        known_codes = set(known)
        changed, vanished = self._scan(known)
        if vanished:
            self._forget(vanished)
        published = 0
        for start in range(0, len(changed), self.event_items):
            chunk = changed[start:start + self.event_items]
            self._publish(chunk)
            self._record(chunk, known_codes)
            published += len(chunk)
            self.metrics.inc("capture_account_changes_published", len(chunk))
        return published
