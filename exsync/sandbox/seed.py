"""Seed data for the sandbox shop: a catalogue, customers, shipping zones, and orders placed at checkout."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exsync.sandbox.shop import SandboxShop

__all__ = ["DEFAULT_SKU_PREFIX", "place_order", "seed_catalogue", "seed_customers", "seed_shipping", "seed_taxes"]

DEFAULT_SKU_PREFIX = "SKU-"


def seed_catalogue(shop: "SandboxShop", *, count: int, sku_prefix: str = DEFAULT_SKU_PREFIX,
                   stock_quantity: int = 100, regular_price: str = "10.00",
                   category: str = "Widgets") -> list[dict[str, Any]]:
    """Adds `count` stocked simple products `<prefix>0001`... in one category; returns their JSON."""
    existing = next((c for c in shop.categories.values() if c["name"] == category), None)
    category_id = existing["id"] if existing else shop.create_category({"name": category})["id"]
    return [shop.create_product({"name": f"Product {n:04d}", "sku": f"{sku_prefix}{n:04d}", "type": "simple",
                                 "regular_price": regular_price, "manage_stock": True,
                                 "stock_quantity": stock_quantity, "categories": [{"id": category_id}]})
            for n in range(1, count + 1)]


def seed_customers(shop: "SandboxShop", *, count: int, wholesale: int = 0,
                   domain: str = "example.test") -> list[dict[str, Any]]:
    """Adds `count` customers (the last `wholesale` of them with role wholesale_customer); returns their JSON."""
    customers = []
    for n in range(1, count + 1):
        customer = shop.create_customer({
            "email": f"customer{n}@{domain}", "first_name": "Customer", "last_name": f"{n:04d}",
            "billing": {"first_name": "Customer", "last_name": f"{n:04d}", "address_1": f"{n} High Street",
                        "city": "Leeds", "postcode": "LS1 1AA", "country": "GB", "email": f"customer{n}@{domain}",
                        "phone": "0113 496 0000"}})
        if n > count - wholesale:
            shop.set_user_roles(customer["id"], ["wholesale_customer"])
            customer = shop.get_customer(customer["id"])
        customers.append(customer)
    return customers


def seed_shipping(shop: "SandboxShop") -> list[dict[str, Any]]:
    """Adds a UK zone (flat rate 4.95, free shipping) and a Europe zone (flat rate 12.50); returns the zones."""
    return [
        shop.add_shipping_zone(name="UK", methods=[{"method_id": "flat_rate", "title": "Standard delivery",
                                                    "cost": "4.95"},
                                                   {"method_id": "free_shipping", "title": "Free delivery"}]),
        shop.add_shipping_zone(name="Europe", methods=[{"method_id": "flat_rate", "title": "EU delivery",
                                                        "cost": "12.50"}]),
    ]


def seed_taxes(shop: "SandboxShop", *, prices_include_tax: bool = False) -> dict[str, Any]:
    """Turns taxes on as a shop manager does (`woocommerce_calc_taxes`, then a GB 20 % standard rate
    named VAT that also taxes shipping); returns the rate's JSON."""
    shop.update_setting("general", "woocommerce_calc_taxes", {"value": "yes"})
    shop.update_setting("tax", "woocommerce_prices_include_tax", {"value": "yes" if prices_include_tax else "no"})
    return shop.create_tax_rate({"country": "GB", "rate": "20.0000", "name": "VAT", "priority": 1, "compound": False,
                                 "shipping": True, "class": "standard"})


def place_order(shop: "SandboxShop", *, lines: list[tuple[str, int]], customer_id: int = 0,
                status: str = "processing", billing: dict[str, Any] | None = None,
                shipping_line: dict[str, Any] | None = None, payment_method: str = "bacs",
                payment_method_title: str = "Direct bank transfer") -> dict[str, Any]:
    """Places an order as a checkout would (a guest when customer_id is 0); returns its JSON.

    `lines` is [(sku, quantity), ...]; `shipping_line` a dict with method_id, instance_id, method_title, total.
    """
    if billing is None and customer_id:
        billing = shop.get_customer(customer_id)["billing"]
    if billing is None:
        billing = {"first_name": "Guest", "last_name": "Buyer", "email": "guest@example.test", "country": "GB",
                   "address_1": "1 Market Street", "city": "York", "postcode": "YO1 7HH"}
    shipping = dict(billing)
    shipping.pop("email", None)
    order = {"customer_id": customer_id, "status": status, "billing": billing, "shipping": shipping,
             "payment_method": payment_method, "payment_method_title": payment_method_title,
             "line_items": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
             "shipping_lines": [shipping_line] if shipping_line else []}
    return shop.create_order(order, created_via="checkout")
