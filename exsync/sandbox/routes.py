"""The sandbox shop's routes: the wc/v3 (and WordPress `/wp/v2/users`) URLs and methods it answers.

An endpoint's name is the `SandboxApp` method that serves it (`products` -> `_products`).
"""

from werkzeug.routing import Map, Rule

__all__ = ["API_PREFIX", "WP_PREFIX", "url_map"]

API_PREFIX = "/wp-json/wc/v3"
WP_PREFIX = "/wp-json/wp/v2"


def url_map() -> Map:
    """The routes WooCommerce 8.9 and WordPress 6.5 answer, each named after the SandboxApp method that serves it."""
    api, wp = API_PREFIX, WP_PREFIX
    return Map([
        Rule(f"{api}/products", endpoint="products", methods=["GET", "POST"]),
        Rule(f"{api}/products/batch", endpoint="products_batch", methods=["POST", "PUT", "PATCH"]),
        Rule(f"{api}/products/categories", endpoint="categories", methods=["GET", "POST"]),
        Rule(f"{api}/products/categories/<int:item_id>", endpoint="category", methods=["GET"]),
        Rule(f"{api}/products/<int:item_id>", endpoint="product", methods=["GET", "PUT", "PATCH", "DELETE"]),
        Rule(f"{api}/customers", endpoint="customers", methods=["GET", "POST"]),
        Rule(f"{api}/customers/batch", endpoint="customers_batch", methods=["POST", "PUT", "PATCH"]),
        Rule(f"{api}/customers/<int:item_id>", endpoint="customer", methods=["GET", "PUT", "PATCH", "DELETE"]),
        Rule(f"{api}/orders", endpoint="orders", methods=["GET", "POST"]),
        Rule(f"{api}/orders/batch", endpoint="orders_batch", methods=["POST", "PUT", "PATCH"]),
        Rule(f"{api}/orders/<int:item_id>", endpoint="order", methods=["GET", "PUT", "PATCH", "DELETE"]),
        Rule(f"{api}/orders/<int:item_id>/notes", endpoint="order_notes", methods=["GET", "POST"]),
        Rule(f"{api}/orders/<int:item_id>/refunds", endpoint="order_refunds", methods=["GET", "POST"]),
        Rule(f"{api}/reports/orders/totals", endpoint="order_totals", methods=["GET"]),
        Rule(f"{api}/shipping/zones", endpoint="zones", methods=["GET"]),
        Rule(f"{api}/shipping/zones/<int:item_id>", endpoint="zone", methods=["GET"]),
        Rule(f"{api}/shipping/zones/<int:item_id>/methods", endpoint="zone_methods", methods=["GET"]),
        Rule(f"{api}/shipping_methods", endpoint="shipping_methods", methods=["GET"]),
        Rule(f"{api}/webhooks", endpoint="webhooks", methods=["GET", "POST"]),
        Rule(f"{api}/webhooks/<int:item_id>", endpoint="webhook", methods=["GET", "PUT", "PATCH", "DELETE"]),
        Rule(f"{api}/settings/<group>", endpoint="settings", methods=["GET"]),
        Rule(f"{api}/settings/<group>/<name>", endpoint="setting", methods=["GET", "PUT", "PATCH"]),
        Rule(f"{api}/taxes", endpoint="taxes", methods=["GET", "POST"]),
        Rule(f"{api}/taxes/classes", endpoint="tax_classes", methods=["GET"]),
        Rule(f"{api}/taxes/<int:item_id>", endpoint="tax", methods=["GET", "PUT", "PATCH", "DELETE"]),
        Rule(f"{wp}/users/<int:item_id>", endpoint="wp_user", methods=["GET", "POST", "PUT", "PATCH"]),
    ], strict_slashes=False)
