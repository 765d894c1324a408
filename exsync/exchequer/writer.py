"""Writes into Exchequer behind one narrow interface, so a site's Toolkit bridge can replace the SQL one.

`SqlWriteBackend` writes the Exchequer-shaped tables and applies Exchequer's effects itself, each
write in one transaction. Every write is idempotent by its external key (the integration's own
`external_keys` table, unique on kind + key, in the same database): the key is claimed first, so a
second writer of the same key waits on the unique index, then finds the key taken, rolls back and
returns the winner's reference; nothing it did is kept.
"""

import time
import typing

from exsync.exchequer.accounts import AccountCodePattern, generate_account_code
from exsync.exchequer.errors import (
    DuplicateKeyError,
    InvalidDocumentError,
    RetryableError,
)
from exsync.exchequer.ledger import (
    ACCOUNT_FIELDS,
    account_columns,
    check_fits,
    format_reference,
    insert_document,
    move_stock,
    next_number,
    require_account,
    stock_types,
    update_account_row,
)
from exsync.exchequer.mapping import FOLIO_COUNTER
from exsync.exchequer.models import WriteResult
from exsync.metrics import Metrics

__all__ = [
    "DEFAULT_LOCATION",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_VAT_CODES",
    "KIND_ACCOUNT",
    "KIND_SALES_DOCUMENT",
    "SqlWriteBackend",
    "WriteBackend",
]

DEFAULT_VAT_CODES = {"S": 20.0, "Z": 0.0, "E": 0.0, "5": 5.0}
DEFAULT_LOCATION = "MAI"
DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_RETRY_PAUSE_SECONDS = 0.02
KIND_SALES_DOCUMENT = "sales_document"
KIND_ACCOUNT = "account"
SALES_DOCUMENT_TYPES = ("SOR", "SQU")


class WriteBackend(typing.Protocol):
    """What the integration asks of Exchequer; the SQL backend and a Toolkit bridge both provide it."""

    def create_account(self, *, external_key, details, code=None) -> WriteResult:
        """Creates a customer account (code generated unless given); the result's reference is its code."""

    def update_account(self, code, changes) -> str:
        """Changes fields of an account (AccountDetails field names); returns its code."""

    def link_account(self, *, external_key, code) -> str:
        """Points an external key at an existing account; returns the code the key points at."""

    def keys_of(self, kind, reference, *, prefix="") -> list:
        """The external keys of `kind` written as `reference`."""

    def create_sales_document(self, document) -> WriteResult:
        """Creates an SOR or SQU with its lines; the result's reference is e.g. SOR000123."""


class _AlreadyWritten(Exception):
    """The external key was claimed by another write (internal control flow)."""


class _CodeTaken(Exception):
    """A generated account code lost a race to another writer (internal; retried)."""


class SqlWriteBackend:
    """Writes Exchequer-shaped tables directly (demo company, tests, staging databases)."""

    def __init__(self, *, database, vat_codes=None, default_location=DEFAULT_LOCATION, account_codes=None,
                 metrics=None, max_attempts=DEFAULT_MAX_ATTEMPTS, retry_pause_seconds=DEFAULT_RETRY_PAUSE_SECONDS):
        self.database = database
        self.vat_codes = dict(DEFAULT_VAT_CODES if vat_codes is None else vat_codes)
        self.default_location = default_location
        self.account_codes = account_codes or AccountCodePattern()
        self.metrics = metrics or Metrics()
        self.max_attempts = max_attempts
        self.retry_pause_seconds = retry_pause_seconds

    # --- the integration's own key table

    def existing_reference(self, kind, external_key):
        """What a key was written as, or None."""
        with self.database.transaction(write=False) as cursor:
            return self._claimed(cursor, kind, external_key)

    def _claimed(self, cursor, kind, external_key):
        return cursor.scalar("SELECT {external_keys.reference} FROM {external_keys} "
                             "WHERE {external_keys.kind} = ? AND {external_keys.external_key} = ?",
                             (kind, external_key))

    def _claim(self, cursor, kind, external_key):
        try:
            cursor.run("INSERT INTO {external_keys} ({external_keys.kind}, {external_keys.external_key}, "
                       "{external_keys.reference}) VALUES (?, ?, '')", (kind, external_key))
        except DuplicateKeyError as error:
            raise _AlreadyWritten() from error

    def _record(self, cursor, kind, external_key, reference):
        cursor.run("UPDATE {external_keys} SET {external_keys.reference} = ? "
                   "WHERE {external_keys.kind} = ? AND {external_keys.external_key} = ?",
                   (reference, kind, external_key))

    def _write_once(self, operation, kind, external_key, body):
        """Runs `body(cursor)` in a transaction that first claims the key; retries deadlocks and
        (for generated account codes) duplicate codes; returns the WriteResult."""
        check_fits(self.database.names, "external_keys", "external_key", external_key)
        started = time.monotonic()
        existing = self.existing_reference(kind, external_key)
        if existing:
            self._count(operation, "existing", started)
            return WriteResult(reference=existing, created=False)
        attempt = 0
        while True:
            attempt += 1
            try:
                with self.database.transaction() as cursor:
                    self._claim(cursor, kind, external_key)
                    reference = body(cursor)
                    self._record(cursor, kind, external_key, reference)
            except _AlreadyWritten:
                reference = self.existing_reference(kind, external_key)
                self._count(operation, "existing", started)
                return WriteResult(reference=reference, created=False)
            except (RetryableError, _CodeTaken):
                if attempt >= self.max_attempts:
                    self._count(operation, "failed", started)
                    raise
                self.metrics.inc("exchequer_write_retries", operation=operation)
                time.sleep(self.retry_pause_seconds * attempt)
                continue
            except Exception:
                self._count(operation, "failed", started)
                raise
            self._count(operation, "created", started)
            return WriteResult(reference=reference, created=True)

    def _count(self, operation, outcome, started):
        self.metrics.inc("exchequer_writes", operation=operation, outcome=outcome)
        self.metrics.observe("exchequer_write_duration_seconds", time.monotonic() - started, operation=operation)

    # --- accounts

    def create_account(self, *, external_key, details, code=None):
        fields = {field: getattr(details, field) for field in ACCOUNT_FIELDS}
        if not (details.company.strip() or details.contact.strip()):
            raise InvalidDocumentError("an account needs a company or a contact name")

        def body(cursor):
            names = cursor.names
            pairs = account_columns(names, fields)
            if code is not None:
                account_code = check_fits(names, "accounts", "code", code.upper())
            else:
                stem = self.account_codes.stem(company=details.company, contact=details.contact)
                taken = [row[0] for row in cursor.run(
                    "SELECT {accounts.code} FROM {accounts} WHERE {accounts.code} LIKE ?", (stem + "%",)).fetchall()]
                account_code = generate_account_code(company=details.company, contact=details.contact,
                                                      taken=taken, pattern=self.account_codes)
            columns = ", ".join(f"{{accounts.{column}}}" for column, _ in pairs)
            marks = ", ".join("?" for _ in pairs)
            try:
                cursor.run(f"INSERT INTO {{accounts}} ({{accounts.code}}, {{accounts.cust_supp}}, {columns}) "
                           f"VALUES (?, 'C', {marks})", (account_code, *(value for _, value in pairs)))
            except DuplicateKeyError as error:
                if code is not None:
                    raise InvalidDocumentError(f"account code {account_code} is taken") from error
                raise _CodeTaken() from error
            return account_code

        return self._write_once("create_account", KIND_ACCOUNT, external_key, body)

    def link_account(self, *, external_key, code):
        """Points `external_key` at an existing account (a shop customer matched to it); returns the
        code the key points at, which is another one when the key was linked before."""
        def body(cursor):
            return require_account(cursor, code)

        return self._write_once("link_account", KIND_ACCOUNT, external_key, body).reference

    def keys_of(self, kind, reference, *, prefix=""):
        """The external keys of `kind` written as `reference` (e.g. the shop customers linked to an account)."""
        with self.database.transaction(write=False) as cursor:
            rows = cursor.run("SELECT {external_keys.external_key} FROM {external_keys} "
                              "WHERE {external_keys.kind} = ? AND {external_keys.reference} = ? "
                              "AND {external_keys.external_key} LIKE ? ORDER BY {external_keys.external_key}",
                              (kind, reference, prefix + "%")).fetchall()
        return [row[0] for row in rows]

    def update_account(self, code, changes):
        started = time.monotonic()
        try:
            with self.database.transaction() as cursor:
                result = update_account_row(cursor, code, dict(changes))
        except Exception:
            self._count("update_account", "failed", started)
            raise
        self._count("update_account", "updated", started)
        return result

    # --- sales documents

    def create_sales_document(self, document):
        if document.doc_type not in SALES_DOCUMENT_TYPES:
            raise InvalidDocumentError(f"document type {document.doc_type!r} is not one of {SALES_DOCUMENT_TYPES}")
        if not document.lines:
            raise InvalidDocumentError("a sales document needs at least one line")
        lines = []
        for number, line in enumerate(document.lines, start=1):
            if line.vat_code not in self.vat_codes:
                raise InvalidDocumentError(f"line {number}: VAT code {line.vat_code!r} is not configured")
            if not line.qty > 0:
                raise InvalidDocumentError(f"line {number}: quantity {line.qty!r} must be more than 0")
            location = line.location or (self.default_location if line.stock_code else "")
            lines.append({"stock_code": line.stock_code, "description": line.description, "qty": float(line.qty),
                          "net_value": float(line.unit_net_price), "vat_code": line.vat_code, "location": location})

        def body(cursor):
            account_code = require_account(cursor, document.account_code)
            stock_types(cursor, [line["stock_code"] for line in lines if line["stock_code"]])
            reference = format_reference(document.doc_type, next_number(cursor, document.doc_type))
            folio = next_number(cursor, FOLIO_COUNTER)
            insert_document(cursor, doc_type=document.doc_type, our_ref=reference, folio=folio,
                            account_code=account_code, date=document.date, your_ref=document.your_ref,
                            long_your_ref=document.long_your_ref, user_fields=document.user_fields,
                            lines=lines, vat_rates=self.vat_codes)
            if document.doc_type == "SOR":
                allocations = {}
                for line in lines:
                    if line["stock_code"]:
                        key = (line["stock_code"], line["location"])
                        allocations[key] = (0.0, allocations.get(key, (0.0, 0.0, 0.0))[1] + line["qty"], 0.0)
                move_stock(cursor, allocations)
            return reference

        return self._write_once("create_sales_document", KIND_SALES_DOCUMENT, document.external_key, body)
