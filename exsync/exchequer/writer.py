"""Writes into Exchequer through one interface, `Toolkit`, the way Exchequer allows: its Toolkit.

Two implementations: the Exchequer agent (exsync/exchequer/agent.py), which sends each write as a
command to the agent beside the licensed COM Toolkit on the Exchequer server, and `ToolkitEmulator`
here, for the demo company (the replica) and the tests: on save it does to the tables what the
vendor's Toolkit does (ledger.py, each rule citing the vendor routine), so that Exchequer's own
recalculation would agree with it. The emulator refuses any company that is not an exsync demo
company: direct SQL writes to a real company cannot be made safe (../shared/exchequer-sql-edition.md §5.2).

Every write is idempotent by its external key (the integration's own `external_keys` table, unique
on kind + key, in the same database): the key is claimed in the writing transaction, so a second
writer of the same key waits on the unique index, then finds the key taken, rolls back and returns
the winner's reference.

A sales document's numbers are taken as Exchequer takes them: `GetNextCount` locks the counter
record, writes it and unlocks it at once (ENTRPRSE/R&D/Sysu1.pas L240-262), not at the end of the
document's save. Where the database locks rows, the emulator takes them on a second connection,
committed at once, after the document is read and checked; held to the document's commit, the counter
made every order wait for the one before it (bench/bench_orders.py). The rows many orders share
(stock figures, the account's order balance) are written last, so their locks are held only from
there to the commit. A save that fails after its numbers were taken leaves a gap in them, as in
Exchequer; a refused document, or one already written, takes none.
"""

import dataclasses
import time
import typing
from collections.abc import Callable, Mapping
from typing import Any

import tenacity

from exsync.exchequer.accounts import AccountCodePattern, generate_account_code
from exsync.exchequer.db import Cursor, Database
from exsync.exchequer.errors import (
    DuplicateKeyError,
    InvalidDocumentError,
    MappingError,
    RetryableError,
    ToolkitError,
    UnknownAccountError,
)
from exsync.exchequer.keys import KeyStore
from exsync.exchequer.ledger import (
    ACCOUNT_FIELDS,
    HOLD_CREDIT,
    CompanySettings,
    account_columns,
    add_audit_note,
    check_document,
    check_fits,
    committed_balance,
    company_settings,
    insert_document,
    move_stock,
    post_order_balance,
    require_account,
    stock_records,
    take_folio,
    take_reference,
    trans_date,
    update_account_row,
    vat_rates,
)
from exsync.exchequer.mapping import ACCOUNT_CODE_LENGTH, FOLIO_COUNTER
from exsync.exchequer.models import AccountDetails, SalesDocument, WriteResult
from exsync.exchequer.schema import require_demo_company
from exsync.metrics import Metrics
from exsync.schemas.config import DEFAULT_LOCATION, DEFAULT_VAT_CODES

__all__ = [
    "ALLOCATED_STOCK_TYPES",
    "DEFAULT_LOCATION",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_SETTINGS_TTL_SECONDS",
    "DEFAULT_VAT_CODES",
    "KIND_ACCOUNT",
    "KIND_SALES_DOCUMENT",
    "SALES_DOCUMENT_TYPES",
    "SqlWriteBackend",
    "Toolkit",
    "ToolkitEmulator",
    "WriteBackend",
]

# The configuration's default VAT codes (exchequer.vat_codes): the emulator checks them against the
# company's evw_VATRate; the rates it writes always come from the company.
DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_RETRY_PAUSE_SECONDS = 0.02
# How long the emulator keeps the company's system settings and VAT rates before reading them again.
# Exchequer reads its system setup (`Syss`, `SyssVAT`) into memory when it starts and keeps it; read
# on every save they were three queries (two of them views) of each order's import.
DEFAULT_SETTINGS_TTL_SECONDS = 30.0
KIND_SALES_DOCUMENT = "sales_document"
KIND_ACCOUNT = "account"
SALES_DOCUMENT_TYPES = ("SOR", "SQU")
# Stock types whose lines allocate (`Stock_Deduct` skips description-only and group lines).
ALLOCATED_STOCK_TYPES = ("P", "M", "X")


class Toolkit(typing.Protocol):
    """What the integration asks of Exchequer's Toolkit; the emulator and the agent client provide it."""

    def create_account(self, *, external_key: str, details: AccountDetails, code: str | None = None) -> WriteResult:
        """Creates a customer account (code generated unless given); the result's reference is its code."""

    def update_account(self, code: str, changes: dict[str, typing.Any]) -> str:
        """Changes fields of an account (AccountDetails field names); returns its code."""

    def link_account(self, *, external_key: str, code: str) -> str:
        """Points an external key at an existing account; returns the code the key points at."""

    def existing_reference(self, kind: str, external_key: str) -> str | None:
        """The reference an external key of `kind` was written as, or None."""

    def keys_of(self, kind: str, reference: str, *, prefix: str = "") -> list[str]:
        """The external keys of `kind` written as `reference`."""

    def create_sales_document(self, document: SalesDocument) -> WriteResult:
        """Creates an SOR or SQU with its lines; the result's reference is e.g. SOR000123."""


# The consumers' name for the interface, kept so their code reads as before.
WriteBackend = Toolkit


class _AlreadyWritten(Exception):
    """The external key was claimed by another write (internal control flow)."""


class _CodeTaken(Exception):
    """A generated account code lost a race to another writer (internal; retried)."""


class ToolkitEmulator:
    """Does on save what Exchequer's Toolkit does, in the demo company's tables (one transaction each).

    `vat_codes` (the configuration's exchequer.vat_codes), when given, must agree with the company's
    evw_VATRate: a disagreement is a MappingError at the first write, not a silently different VAT.
    """

    def __init__(self, *, database: Database, vat_codes: Mapping[str, float] | None = None,
                 default_location: str = DEFAULT_LOCATION, account_codes: AccountCodePattern | None = None,
                 metrics: Metrics | None = None, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 retry_pause_seconds: float = DEFAULT_RETRY_PAUSE_SECONDS,
                 settings_ttl_seconds: float = DEFAULT_SETTINGS_TTL_SECONDS) -> None:
        self.database = database
        self.settings_ttl_seconds = settings_ttl_seconds
        self._company: tuple[float, CompanySettings, dict[str, float]] | None = None
        self.expected_vat_codes = None if vat_codes is None else dict(vat_codes)
        self.default_location = default_location
        self.account_codes = account_codes or AccountCodePattern()
        self.metrics = metrics or Metrics()
        self.max_attempts = max_attempts
        self.retry_pause_seconds = retry_pause_seconds
        self._checked = False

    def _settings(self, cursor: Cursor) -> tuple[CompanySettings, dict[str, float]]:
        """The company's system settings and VAT rates, read again once `settings_ttl_seconds` old."""
        now = time.monotonic()
        if self._company is None or now - self._company[0] >= self.settings_ttl_seconds:
            self._company = (now, company_settings(cursor), vat_rates(cursor))
        return self._company[1], self._company[2]

    def _check_company(self) -> None:
        """Once per emulator: the company must be a demo company, its VAT rates what the config says."""
        if self._checked:
            return
        require_demo_company(self.database, "a direct SQL write")
        if self.expected_vat_codes is not None:
            with self.database.transaction(write=False) as cursor:
                rates = vat_rates(cursor)
            wrong = {code: rate for code, rate in self.expected_vat_codes.items()
                     if code not in rates or abs(rates[code] - float(rate)) > 1e-9}
            if wrong:
                raise MappingError(
                    "exchequer.vat_codes disagrees with the company's VAT rates (evw_VATRate): "
                    + ", ".join(f"{code} configured {rate} %, company "
                                + (f"{rates[code]} %" if code in rates else "has no such code")
                                for code, rate in sorted(wrong.items())))
        self._checked = True

    # --- the integration's own key table

    def existing_reference(self, kind: str, external_key: str) -> str | None:
        """What a key was written as, or None."""
        with self.database.transaction(write=False) as cursor:
            return self._claimed(cursor, kind, external_key)

    def _claimed(self, cursor: Cursor, kind: str, external_key: str) -> str | None:
        return cursor.scalar("SELECT {external_keys.reference} FROM {external_keys} "
                             "WHERE {external_keys.kind} = ? AND {external_keys.external_key} = ?",
                             (kind, external_key))

    def _claim(self, cursor: Cursor, kind: str, external_key: str) -> None:
        try:
            cursor.run("INSERT INTO {external_keys} ({external_keys.kind}, {external_keys.external_key}, "
                       "{external_keys.reference}) VALUES (?, ?, '')", (kind, external_key))
        except DuplicateKeyError as error:
            raise _AlreadyWritten() from error

    def _record(self, cursor: Cursor, kind: str, external_key: str, reference: str) -> None:
        cursor.run("UPDATE {external_keys} SET {external_keys.reference} = ? "
                   "WHERE {external_keys.kind} = ? AND {external_keys.external_key} = ?",
                   (reference, kind, external_key))

    def _write_once(self, operation: str, kind: str, external_key: str, attempt: Callable[[], str]) -> WriteResult:
        """Runs `attempt()`, which claims the key in the transaction that writes (and raises
        _AlreadyWritten when it is taken); retries deadlocks and (for generated account codes)
        duplicate codes; returns the WriteResult."""
        check_fits(self.database.names, "external_keys", "external_key", external_key)
        self._check_company()
        started = time.monotonic()
        # No read of the key first: the claim below finds a key already written (and waits for one
        # being written), so a first write costs one transaction, not two.
        # A deadlock or a lost race for a generated code passes when tried again a little later
        # (the pause grows with each attempt); anything else fails the write at once.
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            retry=tenacity.retry_if_exception_type((RetryableError, _CodeTaken)),
            wait=tenacity.wait_incrementing(start=self.retry_pause_seconds, increment=self.retry_pause_seconds),
            before_sleep=lambda _: self.metrics.inc("exchequer_write_retries", operation=operation),
            reraise=True,
        )
        try:
            reference = retrying(attempt)
        except _AlreadyWritten:
            winner = self.existing_reference(kind, external_key)
            if winner is None:
                # The claim lost to a committed row of the same key, which is gone again: someone deleted it.
                self._count(operation, "failed", started)
                raise ToolkitError(f"the {kind} key {external_key!r} was taken, then removed, "
                                   "while it was written") from None
            self._count(operation, "existing", started)
            return WriteResult(reference=winner, created=False)
        except Exception:
            self._count(operation, "failed", started)
            raise
        self._count(operation, "created", started)
        return WriteResult(reference=reference, created=True)

    def _write_claimed(self, kind: str, external_key: str, body: Callable[[Cursor], str], *,
                       records: bool = True) -> str:
        """One attempt: claims the key, runs `body(cursor)` and records what it wrote (unless `body`
        records it itself: `records=False`), in one transaction."""
        with self.database.transaction() as cursor:
            self._claim(cursor, kind, external_key)
            reference = body(cursor)
            if records:
                self._record(cursor, kind, external_key, reference)
        return reference

    def _count(self, operation: str, outcome: str, started: float) -> None:
        self.metrics.inc("exchequer_writes", operation=operation, outcome=outcome)
        self.metrics.observe("exchequer_write_duration_seconds", time.monotonic() - started, operation=operation)

    # --- accounts

    def create_account(self, *, external_key: str, details: AccountDetails, code: str | None = None) -> WriteResult:
        fields = {field: getattr(details, field) for field in ACCOUNT_FIELDS}
        if not (details.company.strip() or details.contact.strip()):
            raise InvalidDocumentError("an account needs a company or a contact name")

        def body(cursor: Cursor) -> str:
            names = cursor.names
            pairs = account_columns(names, fields)
            if code is not None:
                account_code = code.upper()
                if len(account_code) > ACCOUNT_CODE_LENGTH:
                    raise InvalidDocumentError(f"account code {account_code!r} is longer than Exchequer's "
                                               f"{ACCOUNT_CODE_LENGTH} characters (AccLen)")
            else:
                stem = self.account_codes.stem(company=details.company, contact=details.contact)
                taken = [row[0] for row in cursor.run(
                    "SELECT {accounts.code} FROM {accounts} WHERE {accounts.code} LIKE ?", (stem + "%",)).fetchall()]
                account_code = generate_account_code(company=details.company, contact=details.contact,
                                                      taken=taken, pattern=self.account_codes)
            # EX_STOREACCOUNT (ENTRPRSE/DLLTK/DLL01U.pas L498-710, L1132-1200): acSubType := acCustSupp
            # (L694), acLastUsed := Today (L625), acTimeStamp := TimeNowStr (L702); a new customer
            # gets the standard VAT code and is active; then an audit note (L1184).
            day, now = time.strftime("%Y%m%d"), time.strftime("%H%M%S")
            pairs = [*pairs, ("sub_type", "C"), ("vat_code", "S"), ("account_status", 0), ("last_used", day),
                     ("time_stamp", now), ("last_operator", "exsync")]
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

        return self._write_once("create_account", KIND_ACCOUNT, external_key,
                                lambda: self._write_claimed(KIND_ACCOUNT, external_key, body))

    def link_account(self, *, external_key: str, code: str) -> str:
        """Points `external_key` at an existing account (a shop customer matched to it); returns the
        code the key points at, which is another one when the key was linked before."""
        def body(cursor: Cursor) -> str:
            return require_account(cursor, code)

        return self._write_once("link_account", KIND_ACCOUNT, external_key,
                                lambda: self._write_claimed(KIND_ACCOUNT, external_key, body)).reference

    def keys_of(self, kind: str, reference: str, *, prefix: str = "") -> list[str]:
        """The external keys of `kind` written as `reference` (e.g. the shop customers linked to an account)."""
        return KeyStore(state=self.database, company=self.database).keys_of(kind, reference, prefix=prefix)

    def update_account(self, code: str, changes: Mapping[str, Any]) -> str:
        self._check_company()
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

    def create_sales_document(self, document: SalesDocument) -> WriteResult:
        if document.doc_type not in SALES_DOCUMENT_TYPES:
            raise InvalidDocumentError(f"document type {document.doc_type!r} is not one of {SALES_DOCUMENT_TYPES}")
        if not document.lines:
            raise InvalidDocumentError("a sales document needs at least one line")
        for number, line in enumerate(document.lines, start=1):
            if not line.qty > 0:
                raise InvalidDocumentError(f"line {number}: quantity {line.qty!r} must be more than 0")
        date = trans_date(document.date)

        def body(cursor: Cursor) -> str:
            prepared = self._prepare_document(cursor, document, date)
            reference, folio = self._take_numbers(cursor, document.doc_type)
            self._record(cursor, KIND_SALES_DOCUMENT, document.external_key, reference)
            self._store_document(cursor, document, prepared, date=date, reference=reference, folio=folio)
            return reference

        return self._write_once("create_sales_document", KIND_SALES_DOCUMENT, document.external_key,
                                lambda: self._write_claimed(KIND_SALES_DOCUMENT, document.external_key, body,
                                                            records=False))

    def _take_numbers(self, cursor: Cursor, doc_type: str) -> tuple[str, int]:
        """SetNextDocNos (Set_ExDoc, DLLTH_UP.PAS L6285): the reference from the type's row, the folio
        from AFL; on a second connection, committed at once, where the database locks rows. SQLite
        writes one transaction at a time anyway: there they are taken in the document's."""
        if not self.database.dialect.locks_rows:
            return take_reference(cursor, doc_type), take_folio(cursor, FOLIO_COUNTER)
        with self.database.side_transaction() as numbers:
            return take_reference(numbers, doc_type), take_folio(numbers, FOLIO_COUNTER)

    def _explode_kit(self, cursor: Cursor, code: str, qty: float,
                     depth: int = 0) -> tuple[float, list[tuple[str, float, float]]]:
        """A kit sold with DeductBOMComponents on: its line allocates what the kit's own free stock
        covers, and the shortfall is exploded into its components (`Qty := QtyShort x QtyUsed`,
        recursively; `Gen_StockDeduct`, ENTRPRSE/DLLTK/DLLTH_UP.PAS L3216-3320, called from
        `Store_EId` L4007; BTS1.pas L1700-1720). Returns (the kit line's own allocation,
        [(component, quantity, allocation), ...]); the components are written as lines linked to the kit line
        (tlBOMKitLink) so that what they allocate is on DETAILS, where the recalculation finds it."""
        if depth > 20:
            raise InvalidDocumentError(f"bill of materials {code} nests more than 20 deep (a cycle?)")
        row = cursor.run("SELECT {stock.qty_in_stock}, {stock.qty_allocated}, {stock.folio} FROM {stock} "
                         "WHERE {stock.code} = ?", (code,)).fetchone()
        if row is None:
            raise InvalidDocumentError(f"no stock item {code!r} (a bill of materials names it)")
        own = min(qty, max(0.0, float(row[0]) - float(row[1])))
        shortfall = qty - own
        exploded: list[tuple[str, float, float]] = []
        if shortfall > 0:
            for component, qty_used, stock_type in cursor.run(
                    "SELECT b.{bom_view.component_code}, b.{bom_view.qty_used}, c.{stock.type} FROM {bom_view} b "
                    "JOIN {stock} c ON c.{stock.code} = b.{bom_view.component_code} "
                    "WHERE b.{bom_view.parent_folio} = ? ORDER BY b.{bom_view.position_id}", (row[2],)).fetchall():
                if stock_type not in ALLOCATED_STOCK_TYPES:
                    continue
                needed = shortfall * float(qty_used)
                if stock_type == "M":
                    inner_own, inner = self._explode_kit(cursor, component, needed, depth + 1)
                    exploded.append((component, needed, inner_own))
                    exploded.extend(inner)
                else:
                    exploded.append((component, needed, needed))
        return own, exploded

    def _prepare_document(self, cursor: Cursor, document: SalesDocument, date: str) -> "_PreparedDocument":
        """`ITransaction.Save` -> `EX_STORETRANS` -> `ValidTrans` (ENTRPRSE/COMTK/OTRANS.PAS L2180-2330,
        ENTRPRSE/DLLTK/DLLTH_UP.PAS L7405-7720) for a new SOR or SQU: everything read and checked
        before anything is written."""
        settings, rates = self._settings(cursor)
        account = cursor.run("SELECT {accounts.code}, {accounts.account_status}, {accounts.credit_limit}, "
                             "{accounts.location} FROM {accounts} WHERE {accounts.code} = ?",
                             (document.account_code.upper(),)).fetchone()
        if account is None:
            raise UnknownAccountError(f"no account {document.account_code!r}")
        account_code, status, credit_limit, account_location = account
        # ValidateHeader: the account must be active (acAccStatus 0).
        if status:
            raise ToolkitError(f"account {account_code} is not active (acAccStatus {status})", code=30002)
        records = stock_records(cursor, [line.stock_code for line in document.lines if line.stock_code])
        allocates = document.doc_type == "SOR" or (document.doc_type == "SQU" and settings.quotes_allocate)
        lines: list[dict[str, Any]] = []
        allocations: dict[tuple[str, str], tuple[float, float, float]] = {}
        for number, line in enumerate(document.lines, start=1):
            if line.vat_code not in rates:
                raise InvalidDocumentError(f"line {number}: VAT code {line.vat_code!r} is not one of the company's "
                                           f"(evw_VATRate: {', '.join(sorted(rates))})")
            # tlLocation only when multi-location is on (Validate_Lines, DLLTH_UP.PAS around L2800).
            location = ""
            if line.stock_code and settings.use_multi_locations:
                location = line.location or (account_location or "").strip() or self.default_location
            deduct = 0.0
            components: list[tuple[str, float, float]] = []
            if line.stock_code and allocates and records[line.stock_code][0] in ALLOCATED_STOCK_TYPES:
                # DeductQty = (Qty - (QtyWOff + QtyDel)) x QtyMul, stored in tlStockDeductQty; it raises
                # stQtyAllocated and LsQtyAlloc (`Stock_Deduct`, ENTRPRSE/DLLTK/BTS1.pas L1720-1740;
                # SQU only under QUAllocFlg, L1739).
                deduct = float(line.qty)
                if records[line.stock_code][0] == "M" and settings.deduct_bom_components:
                    deduct, components = self._explode_kit(cursor, line.stock_code, float(line.qty))
                _allocate(allocations, line.stock_code, location, deduct)
            lines.append({"stock_code": line.stock_code, "description": line.description, "qty": float(line.qty),
                          "net_value": float(line.unit_net_price), "vat_code": line.vat_code, "location": location,
                          "stock_deduct_qty": deduct})
            kit_line = len(lines)
            for component, qty, component_deduct in components:
                _allocate(allocations, component, location, component_deduct)
                lines.append({"stock_code": component, "description": f"{line.stock_code} component", "qty": qty,
                              "net_value": 0.0, "vat_code": line.vat_code, "location": location,
                              "stock_deduct_qty": component_deduct, "bom_kit_link": kit_line})
        order_value = sum(round(line["qty"] * line["net_value"], 2) for line in lines)
        hold = 0
        if document.doc_type == "SOR" and settings.credit_check and credit_limit and credit_limit > 0:
            # The credit check (DLLTH_UP.PAS L7006-7016): over the limit, the order is saved on credit
            # hold (flag 6); the site's "stop bad debtors" option, which rejects it, is not modeled.
            if committed_balance(cursor, account_code) + order_value > float(credit_limit):
                hold = HOLD_CREDIT
        check_document(cursor.names, lines=lines, vat_rates=rates, your_ref=document.your_ref,
                       long_your_ref=document.long_your_ref, user_fields=document.user_fields)
        return _PreparedDocument(settings=settings, rates=rates, account_code=account_code, lines=lines,
                                 allocations=allocations, hold=hold)

    def _store_document(self, cursor: Cursor, document: SalesDocument, prepared: "_PreparedDocument", *,
                        date: str, reference: str, folio: int) -> None:
        """Writes a prepared document under its numbers: its own rows first, then the rows other
        orders share (stock figures, the account's order balance), whose locks are held to the commit."""
        _, _, order_os = insert_document(
            cursor, doc_type=document.doc_type, our_ref=reference, folio=folio, account_code=prepared.account_code,
            date=date, your_ref=document.your_ref, long_your_ref=document.long_your_ref,
            user_fields=document.user_fields, lines=prepared.lines, vat_rates=prepared.rates, hold_flag=prepared.hold)
        add_audit_note(cursor, folio=folio, text=f"{reference} created by exsync for {document.external_key}"[:100])
        move_stock(cursor, prepared.allocations, use_multi_locations=prepared.settings.use_multi_locations)
        if document.doc_type == "SOR":
            post_order_balance(cursor, account_code=prepared.account_code, year=int(date[:4]) - 1900,
                               period=int(date[4:6]), amount=order_os)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _PreparedDocument:
    """A sales document read and checked, waiting for its numbers."""

    settings: CompanySettings
    rates: dict[str, float]
    account_code: str
    lines: list[dict[str, Any]]
    allocations: dict[tuple[str, str], tuple[float, float, float]]
    hold: int


def _allocate(allocations: dict[tuple[str, str], tuple[float, float, float]], code: str, location: str,
              qty: float) -> None:
    previous = allocations.get((code, location), (0.0, 0.0, 0.0))
    allocations[(code, location)] = (0.0, previous[1] + qty, 0.0)


# The name the consumers and older code use for the emulator.
SqlWriteBackend = ToolkitEmulator
