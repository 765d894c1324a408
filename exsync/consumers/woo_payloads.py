"""What the woo-writer sends: a pending change turned into a `/products/batch` item, and the
shop's categories by name.

Band A is the regular price; band B is Wholesale Suite's wholesale price meta, with the
percentage-discount meta cleared (it would override the price). Stock is sent as an integer
with the stock status derived from it. Only what differs from the last values written is sent.
"""

import html
from typing import Any

from exsync.state.products import PendingChange, WriterStore
from exsync.woo import WooApiError

__all__ = [
    "PRODUCT_FIELDS",
    "WHOLESALE_DISCOUNT_META",
    "WHOLESALE_FLAG_META",
    "WHOLESALE_PRICE_META",
    "Categories",
    "desired_values",
    "money",
    "payload_for",
    "product_values",
    "shop_values",
    "stock_status",
]

WHOLESALE_PRICE_META = "wholesale_customer_wholesale_price"
WHOLESALE_FLAG_META = "wholesale_customer_have_wholesale_price"
WHOLESALE_DISCOUNT_META = "wholesale_customer_wholesale_percentage_discount"
PRODUCT_FIELDS = ("name", "regular_price", "wholesale_price", "category")


def money(value: Any) -> str:
    """A price as the writer compares and sends it ("12.50"); "" when it is not a number."""
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return ""


def _meta(product: dict, key: str) -> Any:
    for entry in product.get("meta_data") or ():
        if entry.get("key") == key:
            return entry.get("value")
    return None


def stock_status(quantity: int) -> str:
    return "instock" if quantity > 0 else "outofstock"


def product_values(item: dict) -> dict:
    """The values the writer manages, from a product change event's item."""
    return {"name": str(item["description"]), "regular_price": money(item["regular_price"]),
            "wholesale_price": money(item["wholesale_price"]), "category": str(item.get("category") or "")}


def shop_values(product: dict) -> dict:
    """What a shop product shows of the fields the writer manages, as the writer compares them."""
    categories = product.get("categories") or []
    wholesale = _meta(product, WHOLESALE_PRICE_META)
    if _meta(product, WHOLESALE_DISCOUNT_META) not in (None, ""):
        wholesale = None  # a leftover discount overrides the price: it must be written again
    return {
        "name": html.unescape(product.get("name") or ""),
        "regular_price": money(product.get("regular_price")),
        "wholesale_price": money(wholesale) if wholesale not in (None, "") else "",
        "category": html.unescape(categories[0]["name"]) if categories else "",
        "quantity": product.get("stock_quantity") if product.get("manage_stock") else None,
    }


def desired_values(pending: PendingChange, written: dict) -> dict:
    """The values the product is to have once `pending` is written over `written`."""
    desired = dict(written)
    if pending.product is not None:
        desired.update({field: pending.product[field] for field in PRODUCT_FIELDS})
    if pending.quantity is not None:
        desired["quantity"] = pending.quantity
    return desired


class Categories:
    """The shop's top-level categories by name: stored ones, then the shop's, else created there."""

    def __init__(self, *, store: WriterStore, client: Any) -> None:
        self.store = store
        self.client = client
        self._ids: dict[str, int] | None = None

    def id_of(self, name: str) -> int:
        if self._ids is None:
            self._ids = self.store.categories()
        if name not in self._ids:
            # WordPress hands names back HTML-escaped ("Nuts &amp; Bolts").
            found = {html.unescape(category["name"]): int(category["id"])
                     for category in self.client.iter_categories() if category.get("parent", 0) == 0}
            category_id = found.get(name)
            if category_id is None:
                try:
                    category_id = int(self.client.create_category(name=name)["id"])
                except WooApiError as error:
                    # The name differs but the slug is taken (case, punctuation): that term is the one.
                    existing = (error.data or {}).get("resource_id") if isinstance(error.data, dict) else None
                    if error.code != "term_exists" or not existing:
                        raise
                    category_id = int(existing)
            # Another process may have stored the category first: its id is the one (the shop has one term).
            self._ids[name] = self.store.add_category(name, category_id)
        return self._ids[name]


def payload_for(desired: dict, written: dict, *, create: bool, sku: str, categories: Categories) -> dict:
    """The fields to send: everything for a new product, only what differs for an existing one."""
    changed = {field for field in (*PRODUCT_FIELDS, "quantity")
               if desired.get(field) is not None and desired.get(field) != written.get(field)}
    payload: dict[str, Any] = {}
    if create:
        payload.update({"sku": sku, "type": "simple", "name": desired.get("name") or sku, "manage_stock": True})
        changed.discard("name")
    if "name" in changed and desired["name"]:
        payload["name"] = desired["name"]
    if "regular_price" in changed:
        payload["regular_price"] = desired["regular_price"]
    if "category" in changed and desired["category"]:
        payload["categories"] = [{"id": categories.id_of(desired["category"])}]
    if "wholesale_price" in changed:
        price = desired["wholesale_price"]
        has_price = price not in ("", "0.00")
        payload["meta_data"] = [
            {"key": WHOLESALE_PRICE_META, "value": price if has_price else None},
            {"key": WHOLESALE_FLAG_META, "value": "yes" if has_price else "no"},
            {"key": WHOLESALE_DISCOUNT_META, "value": None},
        ]
    if "quantity" in changed:
        quantity = int(desired["quantity"])
        payload.update({"manage_stock": True, "stock_quantity": quantity, "stock_status": stock_status(quantity)})
    return payload
