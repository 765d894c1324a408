"""Turns a WooCommerce order body into Exchequer document lines, to the penny.

Products become stock lines by SKU (the shop's SKU is the Exchequer stock code); shipping lines
become a carriage line described through the shipping mapping; fees become non-stock lines. Line
totals already carry coupon discounts, so each line's net is its discounted total. WooCommerce
stores line totals without tax even when prices are entered with tax; an order whose totals do
include tax (the order total equals the sum of line totals) is read as net = total - total_tax.
Exchequer computes each line's net and VAT itself (rounded per line), so the lines are priced the
way it will compute them, and a rounding line makes net + VAT equal the shop's order total.

The money is checked again here, whatever checked the body before (the receiver's schema): every
amount is finite, within bounds and written to the penny, every quantity a positive whole number,
and the rounding line covers at most `orders.rounding.max_difference`. Anything else raises
OrderMoneyError (permanent: the order is parked with the reason, never retried).
"""

import dataclasses
import decimal
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from exsync.consumers.errors import OrderDataError, OrderMoneyError
from exsync.exchequer import DocumentLine
from exsync.schemas.sections import OrderRoundingConfig, OrderShippingConfig, OrderVatConfig
from exsync.schemas.woo import MAX_ID, MAX_QUANTITY, amount_problem, currency_places, validate_body

__all__ = ["CENT", "MappedLine", "OrderMapping", "check_order", "money", "order_id_of", "tax_amount",
           "totals_include_tax", "vat_code_for_rate"]

CENT = decimal.Decimal("0.01")
# Exchequer keeps money to the penny: a currency written with more places cannot be booked exactly.
EXCHEQUER_PLACES = 2
PRODUCT = "product"
SHIPPING = "shipping"
FEE = "fee"
DEFAULT_DESCRIPTION_CHARS = 60


def _amount(value: object, *, places: int | None) -> decimal.Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float, decimal.Decimal, type(None))):
        raise OrderMoneyError(f"{value!r} is not an amount of money")
    try:
        amount = decimal.Decimal(str(value if value not in (None, "") else "0").strip())
    except decimal.InvalidOperation as error:
        raise OrderMoneyError(f"{value!r} is not an amount of money") from error
    problem = amount_problem(amount, places=places)
    if problem:
        raise OrderMoneyError(f"{value!r} is not an amount of money: {problem}")
    return amount


def money(value: object, *, places: int = EXCHEQUER_PLACES) -> decimal.Decimal:
    """A money string (or number) as Decimal pennies: finite, within bounds, at most `places` places.

    Missing ("" or None) is zero. Anything else raises OrderMoneyError, never rounds: "10.434" is
    not an amount of pounds, and NaN is not an amount at all.
    """
    return _amount(value, places=places).quantize(CENT)


def tax_amount(value: object) -> decimal.Decimal:
    """A line's `taxes[].total`, which WooCommerce leaves unrounded ("10.434"): finite and bounded."""
    return _amount(value, places=None)


def order_id_of(data: object) -> int:
    """The order id in a body: a JSON integer from 1 to MAX_ID (a float id such as 800006.7 is not one)."""
    value = data.get("id") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise OrderDataError(f"order id {value!r} is not a whole number from 1 to {MAX_ID}")
    return value


def check_order(order: object) -> None:
    """Raises OrderDataError naming what the order schema refuses in `order` (the receiver's check, again)."""
    # The receiver's compiled check first: marshmallow, the authority, is asked only when it is not sure.
    errors = validate_body("order.updated", order) if isinstance(order, dict) else {"_schema": ["not an object"]}
    if errors:
        raise OrderDataError(f"the order fails its schema: {_flatten(errors)}"[:250])


def _flatten(errors: object, prefix: str = "") -> str:
    """marshmallow's nested error dict as `path: message; ...`."""
    if isinstance(errors, dict):
        return "; ".join(_flatten(value, f"{prefix}{key}." if prefix or key != "_schema" else "")
                         for key, value in errors.items())
    if isinstance(errors, list):
        return "; ".join(_flatten(value, prefix) for value in errors)
    return f"{prefix.rstrip('.')}: {errors}" if prefix else str(errors)


def _quantity(item: Mapping[str, Any]) -> decimal.Decimal:
    quantity = item.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
        raise OrderMoneyError(f"line {item.get('id')!r} has quantity {quantity!r}, not a whole number "
                              f"from 1 to {MAX_QUANTITY}")
    return decimal.Decimal(quantity)


def _parts(order: Mapping[str, Any]) -> list[Any]:
    return [*(order.get("line_items") or []), *(order.get("shipping_lines") or []), *(order.get("fee_lines") or [])]


def totals_include_tax(order: Mapping[str, Any]) -> bool:
    """Whether this order's line totals include tax: only when it says prices include tax and
    its own arithmetic (the order total) agrees, since WooCommerce normally stores them net."""
    if not order.get("prices_include_tax"):
        return False
    parts = _parts(order)
    gross = sum((money(part.get("total")) for part in parts), decimal.Decimal("0"))
    tax = sum((money(part.get("total_tax")) for part in parts), decimal.Decimal("0"))
    total = money(order.get("total"))
    return tax != 0 and gross + tax != total and gross == total


def vat_code_for_rate(rate_percent: object, vat_rates: Mapping[str, float], *,
                      preferred: Iterable[str] = ()) -> str | None:
    """The Exchequer VAT code whose rate is `rate_percent` (the shop's tax line `rate_percent`), the
    `preferred` codes first when several share the rate; None when no code has it. `vat_rates` is
    the company's code -> rate table, whatever it is read from."""
    wanted = decimal.Decimal(str(rate_percent))
    matching = [code for code, rate in vat_rates.items()
                if abs(decimal.Decimal(str(rate)) - wanted) < decimal.Decimal("0.0001")]
    for code in (*preferred, *sorted(matching)):
        if code in matching:
            return code
    return None


def _rates_charged(part: Mapping[str, Any], tax_lines: Mapping[str, Any]) -> decimal.Decimal | None:
    """The total rate (percent) the shop charged on this part, from its taxes and the order's tax
    lines; None if a charged rate's percentage is not known (shops before WooCommerce 5.7)."""
    total = decimal.Decimal(0)
    for charged in part.get("taxes") or []:
        if not isinstance(charged, dict) or tax_amount(charged.get("total")) == 0:
            continue
        percent = (tax_lines.get(str(charged.get("id"))) or {}).get("rate_percent")
        if percent in (None, ""):
            return None
        try:
            total += decimal.Decimal(str(percent))
        except decimal.InvalidOperation:
            return None
    return total if total else None


@dataclasses.dataclass(frozen=True, kw_only=True)
class MappedLine:
    """One order line ready for a document: `net` is the line's net total in pounds and pence."""

    kind: str
    stock_code: str
    description: str
    qty: decimal.Decimal
    net: decimal.Decimal
    vat_code: str

    def document_line(self) -> DocumentLine:
        # Exchequer multiplies qty by the unit price and rounds to the penny; a unit price carried
        # to 6 places gives back the line's net for any sensible quantity, the rounding line the rest.
        unit = (self.net / self.qty).quantize(decimal.Decimal("0.000001"))
        return DocumentLine(stock_code=self.stock_code, description=self.description, qty=float(self.qty),
                            unit_net_price=float(unit), vat_code=self.vat_code)


def exchequer_total(lines: Iterable[DocumentLine], vat_rates: Mapping[str, float]) -> decimal.Decimal:
    """Net + VAT of DocumentLines as the SQL backend computes them (float, rounded per line)."""
    total = decimal.Decimal("0")
    for line in lines:
        net = round(float(line.qty) * float(line.unit_net_price), 2)
        vat = round(net * vat_rates[line.vat_code] / 100.0, 2)
        total += decimal.Decimal(str(net)).quantize(CENT) + decimal.Decimal(str(vat)).quantize(CENT)
    return total


class OrderMapping:
    """The configured mapping from an order's lines to document lines (`orders:` vat, shipping, rounding)."""

    def __init__(self, *, vat: OrderVatConfig, shipping: OrderShippingConfig, rounding: OrderRoundingConfig,
                 vat_rates: Mapping[str, float],
                 description_chars: int = DEFAULT_DESCRIPTION_CHARS) -> None:
        self.vat = vat
        self.shipping = shipping
        self.rounding = rounding
        self.max_difference = decimal.Decimal(str(rounding.max_difference))
        self.vat_rates = dict(vat_rates)
        self.description_chars = description_chars
        for where, code in (("orders.vat.default", vat.default), ("orders.vat.untaxed", vat.untaxed),
                            ("orders.rounding.vat_code", rounding.vat_code),
                            *((f"orders.vat.tax_classes.{k}", v) for k, v in vat.tax_classes.items()),
                            *((f"orders.vat.tax_rates.{k}", v) for k, v in vat.tax_rates.items())):
            if code not in self.vat_rates:
                raise OrderDataError(f"{where}: VAT code {code!r} is not one of exchequer.vat_codes")
        if self.vat_rates[rounding.vat_code] != 0:
            raise OrderDataError("orders.rounding.vat_code must be a VAT code with a 0% rate")

    def _vat_code(self, part: Mapping[str, Any], tax: decimal.Decimal, tax_lines: Mapping[str, Any]) -> str:
        """By the tax rate charged: its id or rate code when configured, else the Exchequer code with
        the same percentage; then the tax class, then the default."""
        if tax == 0:
            return self.vat.untaxed
        by_rate = self.vat.tax_rates
        for charged in part.get("taxes") or []:
            if not isinstance(charged, dict) or tax_amount(charged.get("total")) == 0:
                continue
            rate_code = str((tax_lines.get(str(charged.get("id"))) or {}).get("rate_code") or "")
            for key in (str(charged.get("id")), rate_code):
                if key in by_rate:
                    return by_rate[key]
        by_class = self.vat.tax_classes.get(str(part.get("tax_class") or ""))
        percent = _rates_charged(part, tax_lines)
        if percent is not None:
            # Several rates share a rate code (GB-VAT-1 at 20 % and at 5 %): the percentage decides.
            code = vat_code_for_rate(percent, self.vat_rates,
                                     preferred=tuple(c for c in (by_class, self.vat.default) if c))
            if code is not None:
                return code
        return by_class or self.vat.default

    def _description(self, text: object) -> str:
        return " ".join(str(text).split())[:self.description_chars]

    def shipping_description(self, line: Mapping[str, Any], titles: Mapping[str, str] | None = None) -> str:
        """The carriage description: by instance id, then method id, then the imported title."""
        methods = self.shipping.methods
        for key in (str(line.get("instance_id") or ""), str(line.get("method_id") or "")):
            if key and key in methods:
                return methods[key].description
        title = (titles or {}).get(str(line.get("instance_id") or "")) or line.get("method_title")
        default = self.shipping.default_description
        return f"{default}: {title}" if title else default

    def lines(self, order: Mapping[str, Any], *, shipping_titles: Mapping[str, str] | None = None) -> list[MappedLine]:
        """The order's lines as MappedLines: products (by SKU), carriage, fees; zero lines left out.

        Raises OrderDataError for a body the order schema refuses, OrderMoneyError for money that
        is not sane (checked here again whatever checked the body before).
        """
        check_order(order)
        places = min(EXCHEQUER_PLACES, currency_places(order.get("currency")))
        for amount in (order.get("total"), order.get("shipping_total"), order.get("total_tax")):
            money(amount, places=places)
        for part in _parts(order):
            for name in ("total", "subtotal", "total_tax"):
                money(part.get(name), places=places)
        included = totals_include_tax(order)
        tax_lines = {str(line.get("rate_id")): line for line in order.get("tax_lines") or [] if isinstance(line, dict)}
        mapped: list[MappedLine] = []
        for item in order.get("line_items") or []:
            quantity = _quantity(item)
            total, tax = money(item.get("total")), money(item.get("total_tax"))
            net = total - tax if included else total
            mapped.append(MappedLine(kind=PRODUCT, stock_code=str(item.get("sku") or "").strip(),
                                     description=self._description(item.get("name") or item.get("sku") or ""),
                                     qty=quantity, net=net, vat_code=self._vat_code(item, tax, tax_lines)))
        non_stock = [(SHIPPING, line, self.shipping_description(line, shipping_titles))
                     for line in order.get("shipping_lines") or []]
        non_stock += [(FEE, fee, fee.get("name") or "Fee") for fee in order.get("fee_lines") or []]
        for kind, part, description in non_stock:
            total, tax = money(part.get("total")), money(part.get("total_tax"))
            if total == 0 and tax == 0:
                continue
            mapped.append(MappedLine(kind=kind, stock_code="", qty=decimal.Decimal(1),
                                     net=total - tax if included else total,
                                     description=self._description(description),
                                     vat_code=self._vat_code(part, tax, tax_lines)))
        return mapped

    def document_lines(self, mapped: Sequence[MappedLine], *,
                       target_total: decimal.Decimal) -> tuple[DocumentLine, ...]:
        """DocumentLines for `mapped`, with a rounding line when Exchequer's net + VAT would differ
        from `target_total` (Decimal)."""
        lines = [line.document_line() for line in mapped]
        computed = exchequer_total(lines, self.vat_rates)
        difference = target_total - computed
        if abs(difference) > self.max_difference:
            # A rounding line is for pennies; beyond that the order's figures disagree with themselves.
            raise OrderMoneyError(f"the order's total is {target_total} but its lines come to {computed} "
                                  f"(net + VAT); the difference {difference} is more than "
                                  f"orders.rounding.max_difference {self.max_difference}")
        if difference:
            lines.append(DocumentLine(stock_code="", description=self._description(self.rounding.description),
                                      qty=1.0, unit_net_price=float(difference), vat_code=self.rounding.vat_code))
        return tuple(lines)

    def total_of(self, lines: Iterable[DocumentLine]) -> decimal.Decimal:
        return exchequer_total(lines, self.vat_rates)
