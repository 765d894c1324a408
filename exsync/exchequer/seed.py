"""Fills a demo company with realistic, reproducible data (the same seed gives the same company).

Locations; products with stock per location; band A (retail) and band B (wholesale) prices; a
category and a web-enabled flag in the configured fields; group and description-only items; bills
of materials (`KIT-nnnnn`, in addition to the `--items` products) in EXCHQCHK's binary layout, some
nested and some with a description-only component; customer accounts, a share of them on band B.
Allocations and picks are real: open sales orders (the "backlog", SORs on the seeded accounts) whose
lines carry them, written the way the Toolkit writes them, so the company is consistent from the
start (Exchequer's stock recalculation would find the same figures). Rows go in with executemany in
batches, all in one transaction. Only an exsync demo company is seeded.
"""

import dataclasses
import datetime
import random
from collections.abc import Iterable, Iterator
from typing import Any

from exsync.exchequer.accounts import AccountCodePattern
from exsync.exchequer.db import Cursor, Database
from exsync.exchequer.errors import AccountCodeExhaustedError, SeedError
from exsync.exchequer.ledger import (
    format_reference,
    insert_document,
    next_number,
    post_order_balance,
    vat_rates,
)
from exsync.exchequer.mapping import (
    BOM_RECORD_PREFIX,
    BOM_SUB_TYPE,
    FOLIO_COUNTER,
    folio_bytes,
    real48_bytes,
)
from exsync.exchequer.schema import require_demo_company

__all__ = ["CATEGORIES", "DEFAULT_BATCH_ROWS", "DEFAULT_SEED", "SeedSummary", "seed"]

DEFAULT_SEED = 20261127
DEFAULT_BATCH_ROWS = 5000
BACKLOG_LINES_PER_ORDER = 40
BACKLOG_DATE = datetime.date(2026, 11, 20)
CATEGORIES = (("Widgets", "WIDGET"), ("Gadgets", "GADGET"), ("Sprockets", "SPROCKET"), ("Fasteners", "BOLT"),
              ("Bearings", "BEARING"), ("Cables", "CABLE"), ("Valves", "VALVE"), ("Filters", "FILTER"))
_ADJECTIVES = ("Standard", "Heavy-duty", "Compact", "Stainless", "Galvanised", "Precision", "Industrial", "Mini")
_SIZES = ("M4", "M6", "M8", "M10", "10mm", "25mm", "50mm", "1/2in", "3/4in", "Large", "Small")
_COMPANY_WORDS = ("Acme", "Brightwater", "Castle", "Dovetail", "Evergreen", "Fairfield", "Granite", "Harbour",
                  "Ironbridge", "Juniper", "Kestrel", "Lakeside", "Meridian", "Northgate", "Oakwood", "Pennine",
                  "Quayside", "Riverside", "Summit", "Thornbury", "Upland", "Vale", "Westbrook", "Yardley")
_COMPANY_KINDS = ("Engineering", "Supplies", "Trading", "Fabrications", "Services", "Maintenance", "Hardware")
_SUFFIXES = ("Ltd", "Ltd", "plc", "& Sons", "LLP")
_FIRST_NAMES = ("Alice", "Ben", "Chloe", "David", "Emma", "Farid", "Grace", "Harry", "Isla", "Jack", "Kiran", "Lucy")
_SURNAMES = ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Robinson",
             "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson")
_TOWNS = (("Leeds", "West Yorkshire", "LS"), ("Bristol", "Avon", "BS"), ("Norwich", "Norfolk", "NR"),
          ("Derby", "Derbyshire", "DE"), ("Exeter", "Devon", "EX"), ("York", "North Yorkshire", "YO"))
_STREETS = ("High Street", "Station Road", "Mill Lane", "Church Street", "Park Road", "Victoria Road")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SeedSummary:
    """What seed() wrote."""

    locations: int
    items: int
    boms: int
    accounts: int
    stock_rows: int
    stock_location_rows: int
    bom_rows: int
    backlog_orders: int = 0


def _location_codes(count: int) -> list[str]:
    return ["MAI"] + [f"W{n:02d}" for n in range(2, count + 1)]


def _batched(cursor: Cursor, sql: str, rows: Iterable[tuple[Any, ...]], batch_rows: int) -> None:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= batch_rows:
            cursor.executemany(sql, batch)
            batch = []
    cursor.executemany(sql, batch)


def _stock_row(code: str, folio: int, description: str, stock_type: str, parent: str,
               totals: tuple[float, ...], prices: tuple[float, float], category: str,
               web_flag: str | int) -> tuple[Any, ...]:
    in_stock, allocated, picked, on_order = totals
    band_a, band_b = prices
    return (code, folio, description, stock_type, parent, in_stock, allocated, picked, on_order, band_a, band_b,
            category, web_flag, "S", "MAI")


class _Seeder:
    def __init__(self, *, rng: random.Random, items: int, locations: int, boms: int, accounts: int,
                 web_flag_value: str, web_flag_is_int: bool = False) -> None:
        self.rng = rng
        self.items = items
        self.location_codes = _location_codes(locations)
        self.boms = boms
        self.accounts = accounts
        # stUseForEbus is an int (1 on); a user field holds the configured text.
        self.web_flag_value: str | int = int(web_flag_value) if web_flag_is_int else web_flag_value
        self.web_off: str | int = 0 if web_flag_is_int else "N"
        self.folios: dict[str, int] = {}
        self.stock_rows: list[tuple[Any, ...]] = []
        self.location_rows: list[tuple[Any, ...]] = []
        self.products: list[str] = []
        self.description_only: list[str] = []
        # (code, location, allocated, picked): lines of the open orders
        self.backlog: list[tuple[str, str, float, float]] = []
        self.folio = 0

    def _next_folio(self, code: str | None = None) -> int:
        self.folio += 1
        if code is not None:
            self.folios[code] = self.folio
        return self.folio

    def _item_type(self, n: int) -> str:
        # Fixed positions rather than chance, so even a ten-item company has one of each.
        if n % 50 == 7:
            return "D"
        if n % 50 == 23:
            return "X"
        return "P"

    def stock(self) -> Iterator[tuple[Any, ...]]:
        rng = self.rng
        for category, prefix in CATEGORIES:
            yield _stock_row(f"GRP-{prefix}", self._next_folio(), category, "G", "", (0.0, 0.0, 0.0, 0.0),
                             (0.0, 0.0), category, self.web_off)
        for n in range(1, self.items + 1):
            category, prefix = CATEGORIES[rng.randrange(len(CATEGORIES))]
            code = f"{prefix}-{n:05d}"
            stock_type = self._item_type(n)
            if stock_type == "D":
                self.description_only.append(code)
                yield _stock_row(code, self._next_folio(code), f"{category} fitting instructions", "D", f"GRP-{prefix}",
                                 (0.0, 0.0, 0.0, 0.0), (0.0, 0.0), category, self.web_off)
                continue
            description = f"{rng.choice(_ADJECTIVES)} {category[:-1].lower()} {rng.choice(_SIZES)}"
            totals = [0.0, 0.0, 0.0, 0.0]
            for location in self.location_codes:
                in_stock = 0.0 if rng.random() < 0.1 else float(rng.randint(1, 250))
                allocated = float(rng.randint(0, int(in_stock) // 3))
                picked = float(rng.randint(0, int(allocated)))
                on_order = float(rng.choice((0, 0, 0, 24, 48, 100)))
                if not self.accounts:
                    allocated = picked = 0.0  # no account to hold the orders that would carry them
                if allocated:
                    self.backlog.append((code, location, allocated, picked))
                self.location_rows.append((code, self.folio + 1, location, in_stock, allocated, picked, on_order))
                for index, value in enumerate((in_stock, allocated, picked, on_order)):
                    totals[index] += value
            band_a = round(rng.uniform(0.5, 400.0), 2)
            band_b = round(band_a * rng.uniform(0.65, 0.85), 2)
            web = self.web_flag_value if stock_type == "P" and rng.random() < 0.85 else self.web_off
            if stock_type == "P":
                self.products.append(code)
            yield _stock_row(code, self._next_folio(code), description, stock_type, f"GRP-{prefix}", tuple(totals),
                             (band_a, band_b), category, web)

    def bills(self) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
        """(stock row, component rows) for each kit; kit 2 onwards may contain an earlier kit. A
        component row is EXCHQCHK's BillMatType: the parent folio binary in EXCHQCHKcode1, the
        component folio in EXCHQCHKcode3, whose last byte with QtyUsed holds the Real48 quantity
        (exchqchk_final.xml L54-62; icc_AddBinaryConversionColumns.sql), and the replica's stand-ins
        for the computed columns Exchqchkcode1Trans5, Exchqchkcode3Trans2 and QtyUsedTrans."""
        rng = self.rng
        kits: list[str] = []
        for n in range(1, self.boms + 1):
            code = f"KIT-{n:05d}"
            folio = self._next_folio()
            chosen = rng.sample(self.products, min(len(self.products), rng.randint(2, 4)))
            components = [(code_, float(rng.choice((1, 1, 2, 3, 4, 0.5)))) for code_ in chosen]
            if kits and (n == 2 or rng.random() < 0.2):
                components.append((rng.choice(kits), 1.0))
            if self.description_only and (n == 1 or rng.random() < 0.3):
                components.append((rng.choice(self.description_only), 1.0))
            kits.append(code)
            band_a = round(rng.uniform(20.0, 900.0), 2)
            row = _stock_row(code, folio, f"Kit {n}: {len(components)} parts", "M", "", (0.0, 0.0, 0.0, 0.0),
                             (band_a, round(band_a * 0.8, 2)), "Kits", self.web_flag_value)
            self.folios[code] = folio
            rows: list[tuple[Any, ...]] = []
            for component, qty in components:
                real = real48_bytes(qty)
                component_folio = self.folios[component]
                rows.append((BOM_RECORD_PREFIX, BOM_SUB_TYPE, folio_bytes(folio, 13),
                             folio_bytes(component_folio, 11) + real[:1], real[1:], component.ljust(20)[:20],
                             folio, component_folio, qty))
            yield row, rows

    def account_rows(self, pattern: AccountCodePattern) -> Iterator[tuple[Any, ...]]:
        rng = self.rng
        counters: dict[str, int] = {}
        for n in range(1, self.accounts + 1):
            first, surname = rng.choice(_FIRST_NAMES), rng.choice(_SURNAMES)
            company = "" if rng.random() < 0.3 else \
                f"{rng.choice(_COMPANY_WORDS)} {rng.choice(_COMPANY_KINDS)} {rng.choice(_SUFFIXES)}"
            contact = f"{first} {surname}"
            stem = pattern.stem(company=company, contact=contact)
            counters[stem] = counters.get(stem, 0) + 1
            try:
                code = pattern.code(stem, counters[stem])
            except AccountCodeExhaustedError as error:
                raise SeedError(f"too many accounts for the seed's names ({error}); seed fewer") from error
            town, county, area = rng.choice(_TOWNS)
            post_code = f"{area}{rng.randint(1, 29)} {rng.randint(1, 9)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}" \
                        f"{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
            domain = (company.split()[0].lower() + ".example") if company else "mail.example"
            email = f"{first.lower()}.{surname.lower()}{n}@{domain}"
            band = "B" if rng.random() < 0.2 else "A"
            yield (code, "C", "C", company, contact, f"{rng.randint(1, 200)} {rng.choice(_STREETS)}", town, county,
                   "", "", post_code, email, f"01{rng.randint(100, 999)} {rng.randint(100000, 999999)}", band, "S",
                   "20261101", "090000")


def seed(database: Database, *, items: int, locations: int, boms: int, accounts: int, seed_value: int = DEFAULT_SEED,
         batch_rows: int = DEFAULT_BATCH_ROWS, account_codes: AccountCodePattern | None = None) -> SeedSummary:
    """Fills an initialised, empty company; SeedError if it already holds stock."""
    if locations < 1 or items < 2 or boms < 0 or accounts < 0:
        raise SeedError("seed needs at least 1 location and 2 items, and no negative counts")
    if boms and items < 5:
        raise SeedError("bills of materials need at least 5 items to choose components from")
    names = database.names
    require_demo_company(database, "exsync exchequer seed")
    seeder = _Seeder(rng=random.Random(seed_value), items=items, locations=locations, boms=boms,
                     accounts=accounts, web_flag_value=database.mapping.web_flag_value,
                     web_flag_is_int=database.mapping.tables["stock"].kind("web_flag") == "int")
    stock_sql = names.sql(
        "INSERT INTO {stock} ({stock.code}, {stock.folio}, {stock.desc_1}, {stock.type}, {stock.parent_code}, "
        "{stock.qty_in_stock}, {stock.qty_allocated}, {stock.qty_picked}, {stock.qty_on_order}, "
        "{stock.band_a_price}, {stock.band_b_price}, {stock.category}, {stock.web_flag}, {stock.vat_code}, "
        "{stock.location}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    location_sql = names.sql(
        "INSERT INTO {stock_locations} ({stock_locations.stock_code}, {stock_locations.stock_folio}, "
        "{stock_locations.location}, {stock_locations.qty_in_stock}, {stock_locations.qty_allocated}, "
        "{stock_locations.qty_picked}, {stock_locations.qty_on_order}, {stock_locations.qty_alloc_wor}, "
        "{stock_locations.qty_picked_wor}, {stock_locations.cost_price}, {stock_locations.last_used}, "
        "{stock_locations.last_time}) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, 0, '20261101', '090000')")
    bom_sql = names.sql("INSERT INTO {bom} ({bom.record_prefix}, {bom.sub_type}, {bom.code_1}, {bom.code_3}, "
                        "{bom.qty_used_raw}, {bom.component_code}, {bom.parent_folio}, {bom.component_folio}, "
                        "{bom.qty_used}, {bom.qty_cost}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)")
    account_sql = names.sql(
        "INSERT INTO {accounts} ({accounts.code}, {accounts.cust_supp}, {accounts.sub_type}, {accounts.company}, "
        "{accounts.contact}, {accounts.address_1}, {accounts.address_2}, {accounts.address_3}, "
        "{accounts.address_4}, {accounts.address_5}, {accounts.post_code}, {accounts.email}, {accounts.phone}, "
        "{accounts.price_band}, {accounts.vat_code}, {accounts.last_used}, {accounts.time_stamp}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    counts = {"stock": 0, "locations": 0, "bom": 0}
    with database.transaction() as cursor:
        if cursor.scalar("SELECT COUNT(*) FROM {stock}"):
            raise SeedError("the company already holds stock items; seed an empty one")
        cursor.executemany(names.sql("INSERT INTO {locations} ({locations.code}, {locations.name}) VALUES (?, ?)"),
                           [(code, "Main warehouse" if code == "MAI" else f"Warehouse {code[1:].lstrip('0')}")
                            for code in seeder.location_codes])

        def stock_rows() -> Iterator[tuple[Any, ...]]:
            for row in seeder.stock():
                counts["stock"] += 1
                yield row
                if len(seeder.location_rows) >= batch_rows:
                    counts["locations"] += len(seeder.location_rows)
                    cursor.executemany(location_sql, seeder.location_rows)
                    seeder.location_rows = []

        _batched(cursor, stock_sql, stock_rows(), batch_rows)
        counts["locations"] += len(seeder.location_rows)
        cursor.executemany(location_sql, seeder.location_rows)
        kit_rows: list[tuple[Any, ...]] = []
        component_rows: list[tuple[Any, ...]] = []
        for row, components in seeder.bills():
            kit_rows.append(row)
            component_rows.extend(components)
        cursor.executemany(stock_sql, kit_rows)
        cursor.executemany(bom_sql, component_rows)
        codes: list[str] = []

        def account_rows() -> Iterator[tuple[Any, ...]]:
            for row in seeder.account_rows(account_codes or AccountCodePattern()):
                codes.append(row[0])
                yield row

        _batched(cursor, account_sql, account_rows(), batch_rows)
        backlog = _backlog_orders(cursor, seeder.backlog, codes)
    return SeedSummary(locations=len(seeder.location_codes), items=items, boms=boms, accounts=accounts,
                       stock_rows=counts["stock"] + len(kit_rows), stock_location_rows=counts["locations"],
                       bom_rows=len(component_rows), backlog_orders=backlog)


def _backlog_orders(cursor: Cursor, backlog: list[tuple[str, str, float, float]], account_codes: list[str]) -> int:
    """The open sales orders behind the seeded allocations and picks, written as the Toolkit writes an
    SOR (ledger.insert_document): tlStockDeductQty is each line's allocation, tlQtyPicked its pick.
    The STOCK and StockLocation figures were inserted with the same totals. The company is empty, so
    references and folios are taken in one go and the counters moved once; each account's order
    balance goes to HISTORY once."""
    if not backlog:
        return 0
    rates = vat_rates(cursor)
    chunks = [backlog[start:start + BACKLOG_LINES_PER_ORDER]
              for start in range(0, len(backlog), BACKLOG_LINES_PER_ORDER)]
    first_sor = _take_numbers(cursor, "SOR", len(chunks))
    first_folio = _take_numbers(cursor, FOLIO_COUNTER, len(chunks))
    balances: dict[str, float] = {}
    for number, chunk in enumerate(chunks):
        account = account_codes[number % len(account_codes)]
        lines = [{"stock_code": code, "description": code, "qty": allocated, "net_value": 1.0, "vat_code": "S",
                  "location": location, "qty_picked": picked, "stock_deduct_qty": allocated}
                 for code, location, allocated, picked in chunk]
        reference = format_reference("SOR", first_sor + number)
        _, _, outstanding = insert_document(cursor, doc_type="SOR", our_ref=reference, folio=first_folio + number,
                                            account_code=account, date=BACKLOG_DATE,
                                            your_ref=f"BACKLOG{number + 1}", lines=lines, vat_rates=rates)
        balances[account] = balances.get(account, 0.0) + outstanding
    for account, outstanding in sorted(balances.items()):
        post_order_balance(cursor, account_code=account, year=BACKLOG_DATE.year - 1900, period=BACKLOG_DATE.month,
                           amount=outstanding)
    return len(chunks)


def _take_numbers(cursor: Cursor, counter_type: str, count: int) -> int:
    """The first of `count` consecutive numbers of a counter (the company holds no documents yet)."""
    first = next_number(cursor, counter_type)
    cursor.run("UPDATE {counters} SET {counters.next_number} = ? WHERE {counters.counter_type} = ?",
               (first + count, counter_type))
    return first
