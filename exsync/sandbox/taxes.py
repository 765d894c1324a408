"""The sandbox shop's tax settings, tax rates and tax arithmetic, as WooCommerce 8.9 has them.

Taxes are off until `woocommerce_calc_taxes` is `yes` and rates exist (`POST /taxes`), as on a real
shop. The arithmetic follows WC_Tax and the order classes: taxes per rate unrounded (a line's
`taxes`), each line's tax rounded to the penny (`total_tax`) unless the shop rounds at subtotal,
order tax lines summing the rounded figures per rate, shipping taxed by the rates marked `shipping`.
Amounts are Decimals here; the shop turns them into WooCommerce's strings.
"""

import decimal
from typing import Any

__all__ = [
    "DEFAULT_BASE_COUNTRY",
    "SETTINGS",
    "TAX_CLASSES",
    "TaxRates",
    "format_rate",
    "round_tax",
    "unrounded",
]

CENT = decimal.Decimal("0.01")
# PHP prints floats with 14 significant digits; 10 decimal places is as much as a tax ever shows.
_UNROUNDED = decimal.Decimal("1e-10")
DEFAULT_BASE_COUNTRY = "GB"
TAX_CLASSES = {"standard": "Standard", "reduced-rate": "Reduced rate", "zero-rate": "Zero rate"}

# The settings exsync can meet, by group: (label, type, default, options for a select).
SETTINGS = {
    "general": {
        "woocommerce_default_country": ("Country / State", "single_select_country", DEFAULT_BASE_COUNTRY, None),
        "woocommerce_currency": ("Currency", "select", "GBP", {"GBP": "Pound sterling", "EUR": "Euro",
                                                             "USD": "United States (US) dollar"}),
        "woocommerce_calc_taxes": ("Enable taxes", "checkbox", "no", None),
    },
    "tax": {
        "woocommerce_prices_include_tax": ("Prices entered with tax", "radio", "no",
                                           {"yes": "Yes, I will enter prices inclusive of tax",
                                            "no": "No, I will enter prices exclusive of tax"}),
        "woocommerce_tax_based_on": ("Calculate tax based on", "select", "shipping",
                                     {"shipping": "Customer shipping address", "billing": "Customer billing address",
                                      "base": "Shop base address"}),
        "woocommerce_shipping_tax_class": ("Shipping tax class", "select", "inherit",
                                           {"inherit": "Shipping tax class based on cart items", "": "Standard",
                                            "reduced-rate": "Reduced rate", "zero-rate": "Zero rate"}),
        "woocommerce_tax_round_at_subtotal": ("Rounding", "checkbox", "no", None),
    },
}


def round_tax(value: Any) -> decimal.Decimal:
    """`wc_round_tax_total`: to the penny, half up."""
    return decimal.Decimal(value).quantize(CENT, rounding=decimal.ROUND_HALF_UP)


def unrounded(value: Any) -> str:
    """An unrounded tax as WooCommerce prints it: `10.434`, `2`, never an exponent."""
    text = format(decimal.Decimal(value).quantize(_UNROUNDED, rounding=decimal.ROUND_HALF_UP), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_rate(value: Any) -> str:
    """A rate as WooCommerce stores it: four decimals (`20.0000`)."""
    return f"{decimal.Decimal(str(value)).quantize(decimal.Decimal('0.0001')):f}"


def _class_slug(value):
    """The REST `class` (standard, reduced-rate...) as a product's `tax_class` ('' is standard)."""
    return "" if value in (None, "", "standard") else str(value)


class TaxRates:
    """The shop's tax rates (`/taxes`) and WC_Tax's lookups and sums over them."""

    def __init__(self) -> None:
        self.rates: dict[int, dict[str, Any]] = {}

    @staticmethod
    def rate_code(rate: dict[str, Any]) -> str:
        """`WC_Tax::get_rate_code`: country, state, name (or TAX) and priority, e.g. GB-VAT-1."""
        parts = [rate["country"], rate["state"], rate["name"] or "TAX", str(rate["priority"])]
        return "-".join(part for part in parts if part).upper()

    @staticmethod
    def label(rate: dict[str, Any]) -> str:
        return rate["name"] or "Tax"

    def find(self, *, country: str, state: str = "", postcode: str = "", city: str = "", tax_class: str | None = "",
             shipping: bool = False) -> list[dict[str, Any]]:
        """`WC_Tax::find_rates` (or find_shipping_rates): the matching rates, one per priority."""
        tax_class = _class_slug(tax_class)
        matching = []
        for rate in self.rates.values():
            if _class_slug(rate["class"]) != tax_class or (shipping and not rate["shipping"]):
                continue
            if rate["country"] not in ("", (country or "").upper()) or rate["state"] not in ("", (state or "").upper()):
                continue
            if rate["postcodes"] and (postcode or "").upper().replace(" ", "") not in \
                    {p.upper().replace(" ", "") for p in rate["postcodes"]}:
                continue
            if rate["cities"] and (city or "").upper() not in {c.upper() for c in rate["cities"]}:
                continue
            matching.append(rate)
        # The most specific location first within a priority, then the rate order: the first one wins.
        matching.sort(key=lambda r: (r["priority"], -bool(r["country"]) - bool(r["state"]) - bool(r["postcodes"])
                                     - bool(r["cities"]), r["order"], r["id"]))
        chosen, priorities = [], set()
        for rate in matching:
            if rate["priority"] not in priorities:
                priorities.add(rate["priority"])
                chosen.append(rate)
        return chosen

    @staticmethod
    def calc(price: Any, rates: list[dict[str, Any]], *, inclusive: bool = False) -> dict[int, decimal.Decimal]:
        """`WC_Tax::calc_tax`: {rate id: unrounded tax} for `price` (a Decimal)."""
        price = decimal.Decimal(price)
        taxes = {rate["id"]: decimal.Decimal(0) for rate in rates}
        regular = [r for r in rates if not r["compound"]]
        compound = [r for r in rates if r["compound"]]
        if not inclusive:
            for rate in regular:
                taxes[rate["id"]] += price * decimal.Decimal(rate["rate"]) / 100
            before_compound = sum(taxes.values(), decimal.Decimal(0))
            for rate in compound:
                taxes[rate["id"]] += (price + before_compound) * decimal.Decimal(rate["rate"]) / 100
            return taxes
        non_compound_price = price
        for rate in reversed(compound):
            tax = non_compound_price - non_compound_price / (1 + decimal.Decimal(rate["rate"]) / 100)
            taxes[rate["id"]] += tax
            non_compound_price -= tax
        regular_rate = 1 + sum((decimal.Decimal(r["rate"]) for r in regular), decimal.Decimal(0)) / 100
        for rate in regular:
            taxes[rate["id"]] += decimal.Decimal(rate["rate"]) / 100 / regular_rate * non_compound_price
        return taxes
