"""Reads from an Exchequer company: stock with per-location figures, BOMs, accounts, documents,
settings and VAT rates, through the SQL edition's real names (mapping.py): Pascal strings through
their readable computed copies, bills of materials through evw_BillOfMaterials, settings through the
company's evw_SystemSettings, VAT rates through evw_VATRate.

Stock is streamed page by page (keyset pagination on the stock code), so memory stays bounded
whatever the driver buffers: psqlODBC, for one, fetches a whole result set unless told not to.
"""

from collections.abc import Iterable, Iterator
from typing import Any

from exsync.exchequer.db import DEFAULT_FETCH_ROWS, Cursor, Database, Row
from exsync.exchequer.errors import (
    UnknownAccountError,
    UnknownDocumentError,
    UnknownStockItemError,
)
from exsync.exchequer.ledger import CompanySettings, company_settings, vat_rates
from exsync.exchequer.mapping import DOC_TYPE_NAMES, DOC_TYPES, NO_PRICE_BANDS
from exsync.exchequer.models import (
    Account,
    BomComponent,
    Document,
    DocumentHeader,
    FreeStockSettings,
    LineProgress,
    LocationStock,
    OrderProgress,
    StockItem,
    StockLevel,
    StoredLine,
)
from exsync.exchequer.rules import ALL_LOCATIONS, StockRules

__all__ = ["DEFAULT_PAGE_ROWS", "ExchequerReader", "price_band"]

DEFAULT_PAGE_ROWS = DEFAULT_FETCH_ROWS

_STOCK_COLUMNS = (
    "{stock.code}, {stock.folio}, {stock.desc_1}, {stock.type}, {stock.parent_code}, "
    "{stock.qty_in_stock}, {stock.qty_allocated}, {stock.qty_picked}, {stock.qty_on_order}, "
    "{stock.band_a_price}, {stock.band_b_price}, {stock.category}, {stock.web_flag}, "
    "{stock.qty_alloc_wor}, {stock.qty_picked_wor}"
)
# What change capture reads of an item, in the order iter_free_stock unpacks it.
_FREE_STOCK_COLUMNS = (
    "{stock.code}, {stock.type}, {stock.qty_in_stock}, {stock.qty_allocated}, {stock.qty_picked}, "
    "{stock.web_flag}, {stock.desc_1}, {stock.band_a_price}, {stock.band_b_price}, {stock.category}, "
    "{stock.qty_alloc_wor}, {stock.qty_picked_wor}"
)
_LOCATION_COLUMNS = (
    "{stock_locations.stock_code}, {stock_locations.location}, {stock_locations.qty_in_stock}, "
    "{stock_locations.qty_allocated}, {stock_locations.qty_picked}, {stock_locations.qty_on_order}, "
    "{stock_locations.qty_alloc_wor}, {stock_locations.qty_picked_wor}"
)
_ACCOUNT_COLUMNS = (
    "{accounts.code}, {accounts.cust_supp}, {accounts.company}, {accounts.contact}, "
    "{accounts.address_1}, {accounts.address_2}, {accounts.address_3}, {accounts.address_4}, "
    "{accounts.address_5}, {accounts.post_code}, {accounts.email}, {accounts.phone}, "
    "{accounts.price_band}, " + ", ".join(f"{{accounts.user_def_{n}}}" for n in range(1, 11))
)
_HEADER_COLUMNS = (
    "{documents.our_ref}, {documents.folio}, {documents.doc_type}, {documents.account_code}, "
    "{documents.run_no}, {documents.trans_date}, {documents.your_ref}, {documents.long_your_ref_text}, "
    "{documents.net_value}, {documents.total_vat}, {documents.total_order_os}, {documents.hold_flag}"
)
_LINE_COLUMNS = (
    "{lines.line_no}, {lines.abs_line_no}, {lines.stock_code_text}, {lines.description}, {lines.qty}, "
    "{lines.qty_delivered}, {lines.qty_picked}, {lines.location}, {lines.net_value}, {lines.vat_code}, "
    "{lines.vat_amount}, {lines.sop_folio}, {lines.sop_abs_line_no}, {lines.stock_deduct_qty}, {lines.doc_type}"
)


_CUSTOMER_FIELD_COLUMNS = (
    "{accounts.code}, {accounts.company}, {accounts.contact}, "
    + ", ".join(f"{{accounts.address_{n}}}" for n in range(1, 6))
    + ", {accounts.post_code}, {accounts.email}, {accounts.phone}, {accounts.price_band}"
)


def price_band(value: str | None) -> str:
    """acDiscountBand as exsync uses it: a band letter, or '' for none (' ' and '%' in Exchequer)."""
    return "" if value is None or value in NO_PRICE_BANDS else value.strip()


def _account(row: Row) -> Account:
    return Account(code=row[0], cust_supp=row[1], company=row[2], contact=row[3], address=tuple(row[4:9]),
                   post_code=row[9], email=row[10], phone=row[11], price_band=price_band(row[12]),
                   user_defs=tuple(row[13:23]))


def _header(row: Row) -> DocumentHeader:
    return DocumentHeader(our_ref=row[0], folio=row[1], doc_type=DOC_TYPE_NAMES.get(row[2], str(row[2])),
                          account_code=row[3], run_no=row[4], trans_date=row[5], your_ref=row[6],
                          long_your_ref=(row[7] or "").rstrip(), net_value=float(row[8]), total_vat=float(row[9]),
                          total_order_os=float(row[10]), hold_flag=int(row[11]))


def _line(row: Row) -> StoredLine:
    return StoredLine(line_no=row[0], abs_line_no=row[1], stock_code=(row[2] or "").rstrip(), description=row[3],
                      qty=float(row[4]), qty_delivered=float(row[5]), qty_picked=float(row[6]), location=row[7],
                      net_value=float(row[8]), vat_code=row[9], vat_amount=float(row[10]), sop_folio=row[11],
                      sop_abs_line_no=row[12], stock_deduct_qty=float(row[13]),
                      doc_type=DOC_TYPE_NAMES.get(row[14], str(row[14])))


def _number(value: float | None) -> float:
    """A StockLocation figure: the table is made by SELECT ... INTO, so its columns may hold NULL."""
    return 0.0 if value is None else float(value)


class ExchequerReader:
    """Read access to one company through a Database.

    A stream (iter_stock_items, iter_free_stock, stock_levels, iter_accounts) holds a read
    transaction until it is exhausted or closed; writes meanwhile go through another Database.
    """

    def __init__(self, *, database: Database, page_rows: int = DEFAULT_PAGE_ROWS) -> None:
        self.database = database
        self.page_rows = page_rows
        self._web_flag_value = database.mapping.web_flag_value

    def free_stock_settings(self) -> FreeStockSettings:
        with self.database.transaction(write=False) as cursor:
            row = cursor.run("SELECT {settings.free_stock_excludes_sales_orders}, "
                             "{settings.orders_allocate_when_picked}, {settings.works_orders_allocate_when_picked} "
                             "FROM {settings}").fetchone()
        if row is None:
            return FreeStockSettings()
        return FreeStockSettings(excludes_sales_orders=bool(row[0]), allocate_when_picked=bool(row[1]),
                                 works_orders_allocate_when_picked=bool(row[2]))

    def company_settings(self) -> CompanySettings:
        """The settings the Toolkit's save consults: multi-location, BOM components, audit year, quotes."""
        with self.database.transaction(write=False) as cursor:
            return company_settings(cursor)

    def vat_rates(self) -> dict[str, float]:
        """{VAT code: rate %} from the company's evw_VATRate."""
        with self.database.transaction(write=False) as cursor:
            return vat_rates(cursor)

    def stock_rules(self, locations: str | Iterable[str] = ALL_LOCATIONS) -> StockRules:
        """The rules as this company's settings and the given location scope make them."""
        return StockRules(settings=self.free_stock_settings(), locations=locations)

    def locations(self) -> list[tuple[str, str]]:
        """(code, name) of every location, by code."""
        with self.database.transaction(write=False) as cursor:
            rows = cursor.run("SELECT {locations.code}, {locations.name} FROM {locations} "
                              "ORDER BY {locations.code}").fetchall()
        return [(row[0], row[1]) for row in rows]

    def _item(self, row: Row, location_rows: Iterable[Row]) -> StockItem:
        return StockItem(
            row[0], row[1], row[2], row[3], row[4], float(row[5]), float(row[6]), float(row[7]),
            float(row[8]), float(row[9]), float(row[10]), row[11], str(row[12]).strip() == self._web_flag_value,
            tuple(LocationStock(lr[1], _number(lr[2]), _number(lr[3]), _number(lr[4]), _number(lr[5]),
                                _number(lr[6]), _number(lr[7]))
                  for lr in location_rows),
            float(row[13]), float(row[14]),
        )

    def _stock_pages(self, cursor: Cursor, columns: str) -> Iterator[list[Row]]:
        """Lists of STOCK rows (`columns` first the code), in code order, `page_rows` at a time."""
        page_sql = self.database.dialect.limit(
            self.database.names.sql(f"SELECT {columns} FROM {{stock}} WHERE {{stock.code}} > ? "
                                    "ORDER BY {stock.code}"), self.page_rows)
        after = ""
        while True:
            page = cursor.execute(page_sql, (after,)).fetchall()
            if page:
                yield page
            if len(page) < self.page_rows:
                return
            after = page[-1][0]

    def iter_stock_items(self) -> Iterator[StockItem]:
        """Yields every stock item with its locations, in code order, a page at a time."""
        locations_sql = self.database.names.sql(
            f"SELECT {_LOCATION_COLUMNS} FROM {{stock_locations}} "
            "WHERE {stock_locations.stock_code} >= ? AND {stock_locations.stock_code} <= ? "
            "ORDER BY {stock_locations.stock_code}, {stock_locations.location}")
        with self.database.transaction(write=False) as cursor:
            for page in self._stock_pages(cursor, _STOCK_COLUMNS):
                by_code: dict[str, list[Row]] = {}
                for location_row in cursor.execute(locations_sql, (page[0][0], page[-1][0])).fetchall():
                    by_code.setdefault(location_row[0], []).append(location_row)
                for row in page:
                    yield self._item(row, by_code.get(row[0], ()))

    def iter_free_stock(self, rules: StockRules) -> Iterator[tuple[Any, ...]]:
        """Yields a plain tuple per stock item, in code order, a page at a time: (code, type, free
        stock, web enabled, description, band A price, band B price, category). Change capture's lean
        path: nothing is built per item or per location.

        With every location counting, free stock comes from the STOCK row's own totals (Exchequer
        keeps them the sum over its locations, and `rules.free` reads the same); otherwise from the
        configured locations' rows alone, added up in location order as `rules.free` does.
        """
        rule = rules.free_from
        web_value = self._web_flag_value
        located = None if rules.locations == ALL_LOCATIONS else sorted(rules.locations)
        if located:
            placeholders = ", ".join("?" * len(located))
            locations_sql = self.database.names.sql(
                "SELECT {stock_locations.stock_code}, {stock_locations.qty_in_stock}, "
                "{stock_locations.qty_allocated}, {stock_locations.qty_picked}, {stock_locations.qty_alloc_wor}, "
                "{stock_locations.qty_picked_wor} FROM {stock_locations} "
                "WHERE {stock_locations.stock_code} >= ? AND {stock_locations.stock_code} <= ? "
                f"AND {{stock_locations.location}} IN ({placeholders}) "
                "ORDER BY {stock_locations.stock_code}, {stock_locations.location}")
        with self.database.transaction(write=False) as cursor:
            for page in self._stock_pages(cursor, _FREE_STOCK_COLUMNS):
                if located is None:
                    for code, stock_type, in_stock, allocated, picked, web, description, band_a, band_b, \
                            category, alloc_wor, picked_wor in page:
                        yield (code, stock_type, rule(float(in_stock), float(allocated), float(picked),
                                                      float(alloc_wor), float(picked_wor)),
                               str(web).strip() == web_value, description, band_a, band_b, category)
                    continue
                free: dict[str, float] = {}
                if located:
                    for code, in_stock, allocated, picked, alloc_wor, picked_wor in cursor.execute(
                            locations_sql, (page[0][0], page[-1][0], *located)).fetchall():
                        free[code] = free.get(code, 0) + rule(_number(in_stock), _number(allocated), _number(picked),
                                                              _number(alloc_wor), _number(picked_wor))
                for code, stock_type, _, _, _, web, description, band_a, band_b, category, _, _ in page:
                    yield (code, stock_type, free.get(code, 0), str(web).strip() == web_value, description,
                           band_a, band_b, category)

    def stock_item(self, code: str) -> StockItem:
        with self.database.transaction(write=False) as cursor:
            row = cursor.run(f"SELECT {_STOCK_COLUMNS} FROM {{stock}} WHERE {{stock.code}} = ?", (code,)).fetchone()
            if row is None:
                raise UnknownStockItemError(f"no stock item {code!r}")
            locations = cursor.run(f"SELECT {_LOCATION_COLUMNS} FROM {{stock_locations}} "
                                   "WHERE {stock_locations.stock_code} = ? ORDER BY {stock_locations.location}",
                                   (row[0],)).fetchall()
        return self._item(row, locations)

    def bom_components(self) -> dict[str, tuple[BomComponent, ...]]:
        """Every bill of materials: parent code -> its components (with each component's type), read
        through the company's evw_BillOfMaterials (its binary folio and quantity decoded by Exchequer)."""
        boms: dict[str, list[BomComponent]] = {}
        with self.database.transaction(write=False) as cursor:
            cursor.run(
                "SELECT p.{stock.code}, b.{bom_view.component_code}, b.{bom_view.qty_used}, c.{stock.type} "
                "FROM {bom_view} b JOIN {stock} p ON p.{stock.folio} = b.{bom_view.parent_folio} "
                "LEFT JOIN {stock} c ON c.{stock.code} = b.{bom_view.component_code} "
                "ORDER BY p.{stock.code}, b.{bom_view.position_id}")
            for parent, component, qty_used, component_type in cursor.iterate():
                boms.setdefault(parent, []).append(
                    BomComponent(parent, component, float(qty_used), component_type or ""))
        return {parent: tuple(components) for parent, components in boms.items()}

    def stock_levels(self, locations: str | Iterable[str] = ALL_LOCATIONS) -> Iterator[StockLevel]:
        """Free stock (and could-build for BOMs) of every item, streamed."""
        rules = self.stock_rules(locations)
        return rules.levels(self.iter_stock_items(), self.bom_components())

    def account(self, code: str) -> Account:
        """The account with this code (codes are held upper case, as Exchequer keeps them)."""
        with self.database.transaction(write=False) as cursor:
            row = cursor.run(f"SELECT {_ACCOUNT_COLUMNS} FROM {{accounts}} WHERE {{accounts.code}} = ?",
                             (code.upper(),)).fetchone()
        if row is None:
            raise UnknownAccountError(f"no account {code!r}")
        return _account(row)

    def accounts_by_email(self, email: str) -> list[Account]:
        """Every account with this e-mail address, compared case-insensitively."""
        with self.database.transaction(write=False) as cursor:
            rows = cursor.run(f"SELECT {_ACCOUNT_COLUMNS} FROM {{accounts}} "
                              "WHERE LOWER({accounts.email}) = ? ORDER BY {accounts.code}",
                              (email.strip().lower(),)).fetchall()
        return [_account(row) for row in rows]

    def iter_accounts(self) -> Iterator[Account]:
        """Yields every account, in code order."""
        with self.database.transaction(write=False) as cursor:
            cursor.run(f"SELECT {_ACCOUNT_COLUMNS} FROM {{accounts}} ORDER BY {{accounts.code}}")
            for row in cursor.iterate():
                yield _account(row)

    def iter_customer_fields(self) -> Iterator[Row]:
        """Yields (code, company, contact, address 1-5, post code, e-mail, phone, price band) of every
        customer account, as plain tuples: the lean path account capture takes each cycle."""
        with self.database.transaction(write=False) as cursor:
            cursor.run(f"SELECT {_CUSTOMER_FIELD_COLUMNS} FROM {{accounts}} WHERE {{accounts.cust_supp}} = 'C' "
                       "ORDER BY {accounts.code}")
            yield from cursor.iterate()

    def document(self, reference: str) -> Document:
        """A transaction (header and lines) by its reference, e.g. SOR000123."""
        with self.database.transaction(write=False) as cursor:
            return self._document(cursor, reference)

    def _document(self, cursor: Cursor, reference: str) -> Document:
        row = cursor.run(f"SELECT {_HEADER_COLUMNS} FROM {{documents}} WHERE {{documents.our_ref}} = ?",
                         (reference,)).fetchone()
        if row is None:
            raise UnknownDocumentError(f"no transaction {reference!r}")
        header = _header(row)
        lines = cursor.run(f"SELECT {_LINE_COLUMNS} FROM {{lines}} WHERE {{lines.folio}} = ? "
                           "ORDER BY {lines.line_no}, {lines.abs_line_no}", (header.folio,)).fetchall()
        return Document(header=header, lines=tuple(_line(line) for line in lines))

    def order_progress(self, reference: str) -> OrderProgress:
        """How far a sales order has got: delivered and invoiced per line, and the SDNs and SINs.

        Delivery and invoice lines name the order line by its tlABSLineNo (tlSOPABSLineNo), which
        stays put when lines are inserted or removed in Exchequer; tlLineNo is only the position.
        """
        with self.database.transaction(write=False) as cursor:
            order = self._document(cursor, reference)
            raised = cursor.run(
                "SELECT d.{documents.doc_type}, d.{documents.our_ref}, l.{lines.sop_abs_line_no}, l.{lines.qty} "
                "FROM {lines} l JOIN {documents} d ON d.{documents.folio} = l.{lines.folio} "
                "WHERE l.{lines.sop_folio} = ? ORDER BY d.{documents.folio}, l.{lines.abs_line_no}",
                (order.header.folio,)).fetchall()
        deliveries: list[str] = []
        invoices: list[str] = []
        invoiced: dict[int, float] = {}
        for doc_type, our_ref, sop_abs_line_no, qty in raised:
            if doc_type == DOC_TYPES["SDN"] and our_ref not in deliveries:
                deliveries.append(our_ref)
            elif doc_type == DOC_TYPES["SIN"]:
                if our_ref not in invoices:
                    invoices.append(our_ref)
                invoiced[sop_abs_line_no] = invoiced.get(sop_abs_line_no, 0.0) + float(qty)
        lines = tuple(LineProgress(abs_line_no=line.abs_line_no, line_no=line.line_no, stock_code=line.stock_code,
                                   qty=line.qty, qty_delivered=line.qty_delivered,
                                   qty_invoiced=invoiced.get(line.abs_line_no, 0.0))
                      for line in order.lines)
        return OrderProgress(reference=reference, lines=lines, deliveries=tuple(deliveries),
                             invoices=tuple(invoices))
