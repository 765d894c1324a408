"""What change capture compares: the shop's view of each web product, and what was last sent of it.

`iter_exports` streams a `ProductExport` per web-enabled item (description, band A and B prices,
category, free stock over the configured locations; for a bill of materials the kit rule: its own
free stock plus what its components could build, never below 0). `SentProducts` is the capture
state's record of what was last sent, held compactly (one int per SKU), so that a catalogue of a
million items costs a dict of ints, not a million tuples of strings; it also remembers which raw
field values were seen to give each recorded fingerprint, so a scan in which nothing changed
computes no fingerprint at all.
"""

import dataclasses
import hashlib
import math
from collections.abc import Iterable, Iterator
from typing import Any, SupportsFloat

from exsync.exchequer.reader import ExchequerReader
from exsync.exchequer.rules import ALL_LOCATIONS

__all__ = ["ProductExport", "SentProducts", "fingerprint", "iter_exports", "web_rows"]

# Quantities are floats: 2.9999999999 free should show as 3, not 2.
_FLOOR_TOLERANCE = 1e-9
# One SKU's entry in SentProducts, an int: bits 0-63 the raw-fields hash that was seen to give the
# recorded fingerprint (0: not seen yet), bits 64-128 the recorded fingerprint (the blake2b digest
# as an int; 2**64 for a stored value that is no digest, which nothing equals), bits 129 up the
# recorded quantity (Python's ints keep a negative one intact under >>).
_RAW_BITS = 64
_FINGERPRINT_BITS = 65
_QUANTITY_SHIFT = _RAW_BITS + _FINGERPRINT_BITS
_RAW_MASK = (1 << _RAW_BITS) - 1
_FINGERPRINT_MASK = (1 << _FINGERPRINT_BITS) - 1
_NO_DIGEST = 1 << 64
# Raw hashes always have their top bit set, so that 0 can mean "not seen".
_RAW_SEEN = 1 << 63
_RAW_HASH_MASK = _RAW_SEEN - 1


def _money(value: SupportsFloat | str) -> str:
    return f"{float(value):.2f}"


def fingerprint(description: str, regular_price: str, wholesale_price: str, category: str) -> str:
    """The short hash of a product's shop fields that the capture state stores (16 hex digits)."""
    text = f"{description}\x1f{regular_price}\x1f{wholesale_price}\x1f{category}"
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def _digest_int(value: str) -> int:
    try:
        return int(value, 16) if len(value) == 16 else _NO_DIGEST
    except ValueError:
        return _NO_DIGEST


@dataclasses.dataclass(frozen=True, slots=True)
class ProductExport:
    """What the shop shows of one web product: the values capture fingerprints and publishes."""

    sku: str
    description: str
    regular_price: str
    wholesale_price: str
    category: str
    quantity: int

    def fingerprint(self) -> str:
        """A short hash of the product fields (the quantity is compared on its own)."""
        return fingerprint(self.description, self.regular_price, self.wholesale_price, self.category)

    def product_item(self, sequence: int) -> dict[str, str | int]:
        return {"sku": self.sku, "description": self.description, "regular_price": self.regular_price,
                "wholesale_price": self.wholesale_price, "category": self.category, "sequence": sequence}

    def stock_item(self, sequence: int) -> dict[str, str | int]:
        return {"sku": self.sku, "quantity": self.quantity, "sequence": sequence}


def web_rows(reader: ExchequerReader, locations: str | Iterable[str] = ALL_LOCATIONS,
             counter: list[int] | None = None) -> Iterator[tuple[tuple[Any, ...], int]]:
    """(row, quantity) per web-enabled item, rows as ExchequerReader.iter_free_stock gives them
    (code, type, free, web, description, band A, band B, category); bills of materials come last,
    their quantity what could be built. `counter`, a one-element list, counts the rows scanned."""
    rules = reader.stock_rules(locations)
    floor = math.floor
    scanned = 0
    for row, built in rules.with_could_build(reader.iter_free_stock(rules), reader.bom_components()):
        scanned += 1
        if row[3]:
            available = row[2] if built is None else built
            yield row, max(0, floor(available + _FLOOR_TOLERANCE))
    if counter is not None:
        counter[0] += scanned


def export_of(row: tuple[Any, ...], quantity: int) -> ProductExport:
    """The ProductExport of a web_rows row."""
    return ProductExport(sku=row[0], description=row[4].strip(), regular_price=_money(row[5]),
                         wholesale_price=_money(row[6]), category=row[7].strip(), quantity=quantity)


def row_fingerprint(row: tuple[Any, ...]) -> str:
    """The fingerprint of a web_rows row's product fields (as `export_of(row, q).fingerprint()`)."""
    return fingerprint(row[4].strip(), _money(row[5]), _money(row[6]), row[7].strip())


def iter_exports(reader: ExchequerReader, *, locations: str | Iterable[str] = ALL_LOCATIONS,
                 counter: list[int] | None = None) -> Iterator[ProductExport]:
    """Yields a ProductExport per web-enabled item, streamed; bills of materials come last.

    Every item is read (a BOM's components need not be web products), but only bills of materials
    are held, until every component's free stock has been seen. `counter`, a one-element list,
    counts the rows scanned (once the stream is exhausted).
    """
    for row, quantity in web_rows(reader, locations, counter):
        yield export_of(row, quantity)


class SentProducts:
    """sku -> the product fingerprint and quantity the capture state last recorded, one int each.

    `candidates()` is the steady state's scan: a row passes over when the recorded quantity is its
    quantity and its raw fields (a per-process hash) were already seen to give the recorded fingerprint.
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[str, int] = {}

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, int]]) -> "SentProducts":
        """From (sku, fingerprint, quantity) rows, streamed."""
        sent = cls()
        entries = sent._entries
        for sku, digest, quantity in rows:
            entries[sku] = (int(quantity) << _QUANTITY_SHIFT) | (_digest_int(str(digest)) << _RAW_BITS)
        return sent

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, sku: str) -> bool:
        return sku in self._entries

    def candidates(self, reader: ExchequerReader, locations: str | Iterable[str] = ALL_LOCATIONS, *,
                   force: bool = False,
                   counts: list[int] | None = None) -> Iterator[tuple[tuple[Any, ...], int, int]]:
        """(row, quantity, raw hash) of each web row (as `web_rows`) not known to be unchanged: the
        steady state's loop, kept to one generator and no call per row. `counts`, a two-element
        list, gets the rows scanned and the web rows seen added to it."""
        rules = reader.stock_rules(locations)
        floor = math.floor
        get = self._entries.get
        scanned = exported = 0
        for row, built in rules.with_could_build(reader.iter_free_stock(rules), reader.bom_components()):
            scanned += 1
            if not row[3]:
                continue
            exported += 1
            quantity = max(0, floor((row[2] if built is None else built) + _FLOOR_TOLERANCE))
            raw = _RAW_SEEN | (hash(row[4:8]) & _RAW_HASH_MASK)
            if not force:
                entry = get(row[0])
                if entry is not None and entry & _RAW_MASK == raw and entry >> _QUANTITY_SHIFT == quantity:
                    continue
            yield row, quantity, raw
        if counts is not None:
            counts[0] += scanned
            counts[1] += exported

    def compare(self, sku: str, raw: int, digest: str, quantity: int) -> tuple[bool, bool] | None:
        """(product changed, stock changed) against the record, None for a SKU never recorded; a
        fingerprint found unchanged remembers `raw` as giving it."""
        entry = self._entries.get(sku)
        if entry is None:
            return None
        product_changed = (entry >> _RAW_BITS) & _FINGERPRINT_MASK != _digest_int(digest)
        if not product_changed and entry & _RAW_MASK != raw:
            self._entries[sku] = (entry & ~_RAW_MASK) | raw
        return product_changed, entry >> _QUANTITY_SHIFT != quantity

    def set(self, sku: str, raw: int, digest: str, quantity: int) -> None:
        """Notes what was recorded for `sku` (and that `raw` gives `digest`)."""
        self._entries[sku] = (int(quantity) << _QUANTITY_SHIFT) | (_digest_int(digest) << _RAW_BITS) | raw
