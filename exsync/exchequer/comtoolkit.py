"""The COM adapter: Exchequer's own Toolkit (`Enterprise01.Toolkit`) behind exsync's `Toolkit` interface.

Runs only on the Exchequer server, under the agent (`exsync exchequer agent --toolkit com`), with
pywin32 and a licensed Toolkit; it cannot run on exsync's Linux machines and is not exercised by the
tests here (the emulator stands behind the same interface there). Written against the Toolkit's
published type library (adv-hack/Exchequer `ENTRPRSE/COMTK/Enterprise01_TLB.pas`):
IToolkit.Configuration.DataDirectory / OpenToolkit / CloseToolkit / LastErrorString,
ITransaction.Add(dtSOR | dtSQU) / ImportDefaults / thLines.Add / Save(CalculateTotals),
ITransactionLine.ImportDefaults / Save, IAccount.Add / Save / GetEqual / Update, IAddress.Lines
(dispid 0). Everything Exchequer does on save (numbering, allocation, credit check, audit...)
is the Toolkit's own.

Idempotency: before saving, the adapter looks for what an earlier attempt may have saved, by reading
the company over ODBC (reads are safe on a real company): a document of the same type on the same
account with the same long your-ref (`thLongYourRefTrans`, the shop's order number), and an account
whose key user field (`account_key_field`) holds the external key.
"""

from typing import Any

from exsync.exchequer.accounts import AccountCodePattern, generate_account_code
from exsync.exchequer.db import Database
from exsync.exchequer.errors import ConnectError, InvalidDocumentError, ToolkitError, UnknownAccountError
from exsync.exchequer.mapping import ACCOUNT_CODE_LENGTH, DOC_TYPES
from exsync.exchequer.models import AccountDetails, SalesDocument, WriteResult
from exsync.schemas.config import DEFAULT_AGENT_ACCOUNT_KEY_FIELD as DEFAULT_ACCOUNT_KEY_FIELD

__all__ = ["DEFAULT_ACCOUNT_KEY_FIELD", "ComToolkit", "TOOLKIT_PROG_ID"]

TOOLKIT_PROG_ID = "Enterprise01.Toolkit"
# TDocTypes (Enterprise01_TLB.pas L392-393).
_DOC_TYPE_CONSTANTS = {"SQU": 7, "SOR": 8}
_ADDRESS_LINES_DISPID = 0  # IAddressDisp.Lines, the default indexed property
_ACCOUNT_FIELDS = {"company": "acCompany", "contact": "acContact", "email": "acEmailAddr", "phone": "acPhone",
                   "post_code": "acPostCode", "price_band": "acDiscountBand"}


class ComToolkit:
    """Exchequer's COM Toolkit for one company (its data directory); `database` reads the same company."""

    def __init__(self, *, data_directory: str, database: Database, account_key_field: str = DEFAULT_ACCOUNT_KEY_FIELD,
                 account_codes: AccountCodePattern | None = None) -> None:
        try:
            import pythoncom
            import win32com.client
        except ImportError as error:
            raise ConnectError("the COM Toolkit needs pywin32 on the Exchequer server (pip install pywin32)") \
                from error
        self._pythoncom = pythoncom
        self.database = database
        self.account_key_field = account_key_field
        self.account_codes = account_codes or AccountCodePattern()
        self.toolkit = win32com.client.Dispatch(TOOLKIT_PROG_ID)
        self.toolkit.Configuration.DataDirectory = data_directory
        status = self.toolkit.OpenToolkit()
        if status != 0:
            raise ConnectError(f"OpenToolkit on {data_directory!r} failed ({status}): {self.toolkit.LastErrorString}")

    def close(self) -> None:
        self.toolkit.CloseToolkit()

    def _check(self, status: int, what: str) -> None:
        if status != 0:
            raise ToolkitError(f"{what}: Toolkit error {status}: {self.toolkit.LastErrorString}", code=status)

    # --- reads that make the writes idempotent

    def _existing_document(self, document: SalesDocument) -> str | None:
        with self.database.transaction(write=False) as cursor:
            return cursor.scalar("SELECT {documents.our_ref} FROM {documents} WHERE {documents.long_your_ref_text} = ? "
                                 "AND {documents.doc_type} = ? AND {documents.account_code} = ?",
                                 (document.long_your_ref, DOC_TYPES[document.doc_type],
                                  document.account_code.upper()))

    def _existing_account(self, external_key: str) -> str | None:
        column = self.database.dialect.quote(self.account_key_field)
        with self.database.transaction(write=False) as cursor:
            return cursor.scalar(f"SELECT {{accounts.code}} FROM {{accounts}} WHERE {column} = ?", (external_key,))

    # --- Toolkit interface

    def create_sales_document(self, document: SalesDocument) -> WriteResult:
        if not document.long_your_ref:
            raise InvalidDocumentError("the COM path finds earlier saves by long your-ref: the document needs one")
        existing = self._existing_document(document)
        if existing:
            return WriteResult(reference=existing.strip(), created=False)
        transaction = self.toolkit.Transaction.Add(_DOC_TYPE_CONSTANTS[document.doc_type])
        transaction.thAcCode = document.account_code.upper()
        transaction.thTransDate = document.date.strftime("%Y%m%d")
        transaction.ImportDefaults()
        transaction.thYourRef = document.your_ref
        transaction.thLongYourRef = document.long_your_ref
        for number, value in document.user_fields.items():
            setattr(transaction, f"thUserField{int(number)}", value)
        for line in document.lines:
            row = transaction.thLines.Add()
            if line.stock_code:
                row.tlStockCode = line.stock_code
            row.ImportDefaults()
            row.tlDescr = line.description
            row.tlQty = float(line.qty)
            row.tlNetValue = float(line.unit_net_price)
            row.tlVATCode = line.vat_code
            if line.location:
                row.tlLocation = line.location
            row.Save()
        self._check(transaction.Save(True), f"saving {document.doc_type} for {document.external_key}")
        return WriteResult(reference=str(transaction.thOurRef).strip(), created=True)

    def _set_account(self, account: Any, details_fields: dict[str, Any]) -> None:
        for field, value in details_fields.items():
            if field == "address":
                address = account.acAddress
                for index, text in enumerate(tuple(value)[:5], start=1):
                    address._oleobj_.Invoke(_ADDRESS_LINES_DISPID, 0, self._pythoncom.DISPATCH_PROPERTYPUT, 0,
                                            index, text)
            elif field == "user_defs":
                for index, text in enumerate(tuple(value)[:10], start=1):
                    setattr(account, f"acUserDef{index}", text)
            elif field in _ACCOUNT_FIELDS:
                setattr(account, _ACCOUNT_FIELDS[field], value)
            else:
                raise InvalidDocumentError(f"accounts have no field {field!r}")

    def create_account(self, *, external_key: str, details: AccountDetails, code: str | None = None) -> WriteResult:
        existing = self._existing_account(external_key)
        if existing:
            return WriteResult(reference=existing.strip(), created=False)
        if code is None:
            stem = self.account_codes.stem(company=details.company, contact=details.contact)
            with self.database.transaction(write=False) as cursor:
                taken = [row[0] for row in cursor.run("SELECT {accounts.code} FROM {accounts} "
                                                      "WHERE {accounts.code} LIKE ?", (stem + "%",)).fetchall()]
            code = generate_account_code(company=details.company, contact=details.contact, taken=taken,
                                         pattern=self.account_codes)
        if len(code) > ACCOUNT_CODE_LENGTH:
            raise InvalidDocumentError(f"account code {code!r} is longer than {ACCOUNT_CODE_LENGTH} characters")
        account = self.toolkit.Customer.Add()
        account.acCode = code.upper()
        self._set_account(account, {field: getattr(details, field) for field in
                                    ("company", "contact", "address", "post_code", "email", "phone", "price_band")})
        setattr(account, self.account_key_field, external_key)
        self._check(account.Save(), f"saving account {code} for {external_key}")
        return WriteResult(reference=code.upper(), created=True)

    def update_account(self, code: str, changes: dict[str, Any]) -> str:
        customer = self.toolkit.Customer
        if customer.GetEqual(customer.BuildCodeIndex(code.upper())) != 0:
            raise UnknownAccountError(f"no account {code!r}")
        account = customer.Update()
        if account is None:
            raise ToolkitError(f"account {code} is locked by another user: {self.toolkit.LastErrorString}")
        self._set_account(account, dict(changes))
        self._check(account.Save(), f"updating account {code}")
        return code.upper()
