"""The sandbox shop's state and rules: products, categories, customers, orders, shipping, webhooks.

It keeps everything in memory behind one lock and behaves the way WooCommerce 8.9 does where
exsync can tell the difference (see ../shared/woocommerce.md): money as strings but
`line_items[].price` a number, `shipping_lines[].instance_id` a string, duplicate SKUs refused,
lenient batch items, stock falling when an order is paid, and the webhook topics each change fires.
The HTTP side lives in `app.py`; deliveries in `delivery.py`.
"""

import datetime
import decimal
import itertools
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from exsync.sandbox.authn import Authenticator, Credentials
from exsync.sandbox.delivery import DEFAULT_DELIVERY_DELAY_SECONDS, WC_VERSION, WP_VERSION, WebhookDeliverer
from exsync.sandbox.errors import SandboxRestError
from exsync.sandbox.faults import Faults
from exsync.sandbox.taxes import (
    SETTINGS,
    TAX_CLASSES,
    TaxRates,
    format_rate,
    round_tax,
    unrounded,
)

# A record in the shop's memory or an answer's JSON object: WooCommerce's shapes, loosely typed as PHP has them.
Record = dict[str, Any]

__all__ = [
    "DEFAULT_BATCH_LIMIT",
    "DEFAULT_MAX_WEBHOOK_FAILURES",
    "ORDER_STATUSES",
    "TOPIC_HOOKS",
    "USER_ROLES",
    "WC_VERSION",
    "WP_VERSION",
    "SandboxShop",
]

DEFAULT_BATCH_LIMIT = 100
DEFAULT_MAX_WEBHOOK_FAILURES = 5
DEFAULT_CURRENCY = "GBP"
ORDER_STATUSES = ("pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed", "trash",
                  "checkout-draft")
DRAFT_STATUSES = ("checkout-draft",)
STOCK_REDUCING_STATUSES = ("processing", "completed", "on-hold")
STOCK_RESTORING_STATUSES = ("cancelled", "pending")
PAID_STATUSES = ("processing", "completed")
OFFLINE_GATEWAYS = ("", "bacs", "cheque", "cod")
USER_ROLES = ("administrator", "editor", "author", "contributor", "subscriber", "customer", "shop_manager",
              "wholesale_customer")
CUSTOMER_ROLES_FOR_REST = ("customer", "subscriber")
STOCK_STATUSES = ("instock", "outofstock", "onbackorder")
BACKORDERS = ("no", "notify", "yes")
PRODUCT_STATUSES = ("draft", "pending", "private", "publish", "future", "trash")
WEBHOOK_STATUSES = ("active", "paused", "disabled")
WEBHOOK_API_VERSIONS = ("wp_api_v1", "wp_api_v2", "wp_api_v3", "legacy_v3")
WEBHOOK_RESOURCES = ("coupon", "customer", "order", "product")
WEBHOOK_EVENTS = ("created", "updated", "deleted", "restored")
TOPIC_HOOKS = {
    "order.created": ["woocommerce_new_order"],
    "order.updated": ["woocommerce_update_order", "woocommerce_order_refunded"],
    "order.deleted": ["wp_trash_post"],
    "order.restored": ["untrashed_post"],
    "customer.created": ["user_register", "woocommerce_created_customer", "woocommerce_new_customer"],
    "customer.updated": ["profile_update", "woocommerce_update_customer"],
    "customer.deleted": ["delete_user"],
    "product.created": ["woocommerce_process_product_meta", "woocommerce_new_product",
                        "woocommerce_new_product_variation"],
    "product.updated": ["woocommerce_process_product_meta", "woocommerce_update_product",
                        "woocommerce_update_product_variation"],
    "product.deleted": ["wp_trash_post"],
    "product.restored": ["untrashed_post"],
    "coupon.created": ["woocommerce_process_shop_coupon_meta", "woocommerce_new_coupon"],
    "coupon.updated": ["woocommerce_process_shop_coupon_meta", "woocommerce_update_coupon"],
    "coupon.deleted": ["wp_trash_post"],
    "coupon.restored": ["untrashed_post"],
}
SHIPPING_METHOD_TYPES = (
    {"id": "flat_rate", "title": "Flat rate", "description": "Lets you charge a fixed rate for shipping."},
    {"id": "free_shipping", "title": "Free shipping",
     "description": "Free shipping is a special method which can be triggered with coupons and minimum spends."},
    {"id": "local_pickup", "title": "Local pickup",
     "description": "Allow customers to pick up orders themselves. By default, when using local pickup store base "
                    "taxes will apply regardless of customer address."},
)
ADDRESS_FIELDS = ("first_name", "last_name", "company", "address_1", "address_2", "city", "postcode", "country",
                  "state")
INVALID_ID = "Invalid ID."
CENT = decimal.Decimal("0.01")
# The line item meta wc_reduce_stock_levels leaves (the quantity taken), removed when stock goes back.
REDUCED_STOCK_META = "_reduced_stock"


def _money(value: Any) -> str:
    """A money string to the penny, rounded half up as PHP rounds (8.325 is 8.33)."""
    return f"{decimal.Decimal(str(value)).quantize(CENT, rounding=decimal.ROUND_HALF_UP):f}"


def _decimal_amount(value: Any) -> decimal.Decimal:
    """An amount sent to the shop as a Decimal; junk is 0, as PHP's floatval makes it."""
    try:
        amount = decimal.Decimal(str(value).strip() or "0")
    except decimal.InvalidOperation:
        return decimal.Decimal(0)
    return amount if amount.is_finite() else decimal.Decimal(0)


def _slugify(text: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _stock_amount(value: Any) -> int:
    """`wc_stock_amount`: PHP's intval, so junk becomes 0 (batch items are never type-checked)."""
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def _decimal(value: Any) -> str:
    """`wc_format_decimal` for prices: a string, empty when not numeric."""
    if value in (None, ""):
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    text = f"{number:.6f}".rstrip("0").rstrip(".")
    return text


def _error(code: str, message: str, status: int = 400, data: Any = None) -> SandboxRestError:
    return SandboxRestError(code, message, status, data)


def invalid_params(problems: Mapping[str, str]) -> SandboxRestError:
    """WordPress's `rest_invalid_param` for {param: message}."""
    return _error("rest_invalid_param", f"Invalid parameter(s): {', '.join(problems)}", 400,
                  {"params": dict(problems),
                   "details": {name: {"code": "rest_invalid_type", "message": message, "data": {"param": name}}
                               for name, message in problems.items()}})


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip() or "x") is not None


_SCHEMA_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": _is_integer,
    "boolean": lambda v: isinstance(v, bool) or v in ("true", "false", "1", "0", 1, 0),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "number": lambda v: (isinstance(v, (int, float)) and not isinstance(v, bool))
    or (isinstance(v, str) and re.fullmatch(r"-?\d+(\.\d+)?", v.strip()) is not None),
}

PRODUCT_SCHEMA: dict[str, str | tuple[str, ...]] = {
    "name": "string", "slug": "string", "type": ("simple", "grouped", "external", "variable"),
    "status": PRODUCT_STATUSES, "description": "string", "short_description": "string", "sku": "string",
    "regular_price": "string", "sale_price": "string", "manage_stock": "boolean", "stock_quantity": "integer",
    "stock_status": STOCK_STATUSES, "backorders": BACKORDERS, "weight": "string", "categories": "array",
    "meta_data": "array", "tax_status": ("taxable", "shipping", "none"), "tax_class": "string",
}
CUSTOMER_SCHEMA: dict[str, str | tuple[str, ...]] = {
    "email": "string", "first_name": "string", "last_name": "string", "username": "string", "password": "string",
    "billing": "object", "shipping": "object", "meta_data": "array",
}
ORDER_SCHEMA: dict[str, str | tuple[str, ...]] = {
    "status": ORDER_STATUSES, "currency": "string", "customer_id": "integer", "customer_note": "string",
    "billing": "object", "shipping": "object", "payment_method": "string", "payment_method_title": "string",
    "transaction_id": "string", "set_paid": "boolean", "line_items": "array", "shipping_lines": "array",
    "fee_lines": "array", "meta_data": "array",
}


def validate_schema(schema: Mapping[str, str | tuple[str, ...]], data: Mapping[str, Any]) -> None:
    """What WordPress checks before a single-item endpoint runs (batch items skip this)."""
    problems = {}
    for name, kind in schema.items():
        if name not in data or data[name] is None and kind != "string":
            continue
        value = data[name]
        if isinstance(kind, tuple):
            if value not in kind:
                problems[name] = f"{name} is not one of {', '.join(kind)}."
        elif not _SCHEMA_CHECKS[kind](value):
            problems[name] = f"{name} is not of type {kind}."
    if problems:
        raise invalid_params(problems)


class SandboxShop:
    """One shop's data and rules, thread-safe; `deliverer` sends its webhooks asynchronously."""

    def __init__(self, *, home_url: str = "http://127.0.0.1/", currency: str = DEFAULT_CURRENCY,
                 timezone_offset_hours: float = 0, batch_limit: int = DEFAULT_BATCH_LIMIT,
                 max_webhook_failures: int = DEFAULT_MAX_WEBHOOK_FAILURES, delivery_timeout_seconds: float = 60.0,
                 delivery_delay_seconds: float = DEFAULT_DELIVERY_DELAY_SECONDS, environment_type: str = "production",
                 faults: Faults | None = None, clock: Callable[[], datetime.datetime] | None = None) -> None:
        self.lock = threading.RLock()
        self.home_url = home_url
        self.currency = currency
        self.timezone_offset = datetime.timedelta(hours=timezone_offset_hours)
        self.batch_limit = batch_limit
        self.max_webhook_failures = max_webhook_failures
        self.environment_type = environment_type
        self.faults = faults or Faults()
        self.authenticator = Authenticator()
        self.deliverer = WebhookDeliverer(shop=self, timeout_seconds=delivery_timeout_seconds,
                                          delay_seconds=delivery_delay_seconds)
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._post_ids = itertools.count(100)
        self._user_ids = itertools.count(2)
        self._term_ids = itertools.count(16)
        self._meta_ids = itertools.count(1000)
        self._item_ids = itertools.count(1)
        self._comment_ids = itertools.count(1)
        self._webhook_ids = itertools.count(1)
        self._zone_ids = itertools.count(1)
        self._instance_ids = itertools.count(1)
        self.products: dict[int, Record] = {}
        self.categories: dict[int, Record] = {
            15: {"id": 15, "name": "Uncategorized", "slug": "uncategorized", "parent": 0, "description": ""}}
        self.users: dict[int, Record] = {}
        self.orders: dict[int, Record] = {}
        self.notes: dict[int, list[Record]] = {}
        self.refunds: dict[int, list[Record]] = {}
        self.zones: dict[int, Record] = {0: {"id": 0, "name": "Locations not covered by your other zones", "order": 0}}
        self.zone_methods: dict[int, list[Record]] = {0: []}
        self.webhooks: dict[int, Record] = {}
        self.app_passwords: dict[str, str] = {}
        # Options set through `/settings` (defaults in taxes.SETTINGS) and the rates of `/taxes`.
        self.settings: dict[str, Any] = {}
        self.tax_rates = TaxRates()
        self._tax_rate_ids = itertools.count(1)
        # Every REST request served: (method, route, status), so tests can count what a client did.
        self.request_log: list[tuple[str, str, int]] = []
        now = self.now()
        self.users[1] = {"id": 1, "username": "admin", "email": "admin@example.test", "first_name": "",
                         "last_name": "", "role": "administrator", "billing": {}, "shipping": {}, "meta_data": [],
                         "_created": now, "_modified": now}

    # -- site -----------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.home_url.rstrip("/")

    def now(self) -> datetime.datetime:
        return self._clock().astimezone(datetime.UTC).replace(tzinfo=None, microsecond=0)

    def _dates(self, prefix: str, gmt: datetime.datetime | None) -> dict[str, str | None]:
        if gmt is None:
            return {prefix: None, f"{prefix}_gmt": None}
        return {prefix: (gmt + self.timezone_offset).isoformat(), f"{prefix}_gmt": gmt.isoformat()}

    def add_credentials(self, *, consumer_key: str | None = None, consumer_secret: str | None = None,
                        permissions: str = "read_write", user_id: int = 1) -> Credentials:
        """Registers a REST API key (random when not given) and returns its Credentials."""
        return self.authenticator.add(Credentials(
            consumer_key=consumer_key or f"ck_{secrets.token_hex(20)}",
            consumer_secret=consumer_secret or f"cs_{secrets.token_hex(20)}",
            permissions=permissions, user_id=user_id))

    def add_application_password(self, *, username: str = "admin", password: str | None = None) -> str:
        """A WordPress application password for `/wp/v2/users` (the consumer key is not accepted there)."""
        password = password or " ".join(secrets.token_urlsafe(3)[:4] for _ in range(6))
        with self.lock:
            self.app_passwords[username] = password
        return password

    def _links(self, route: str, collection: str, extra: Record | None = None) -> Record:
        api = f"{self.base_url}/wp-json/wc/v3/"
        links = {"self": [{"href": api + route}], "collection": [{"href": api + collection}]}
        links.update(extra or {})
        return links

    def _emit(self, topic: str, resource_id: Any) -> None:
        """Queues the delivery of `topic` for `resource_id` to every active webhook on that topic."""
        for webhook in self.webhooks.values():
            if webhook["status"] == "active" and webhook["topic"] == topic:
                self.deliverer.enqueue(webhook_id=webhook["id"], resource_id=resource_id)

    def fire_action(self, hook: str, arg: Any) -> None:
        """Runs a WordPress action, for webhooks on `action.<hook>` topics."""
        with self.lock:
            self._emit(f"action.{hook}", arg)

    # -- meta data ------------------------------------------------------------------------------

    def _apply_meta(self, record: Record, entries: Any) -> None:
        if not isinstance(entries, list):
            return
        meta = record.setdefault("meta_data", [])
        for entry in entries:
            if not isinstance(entry, dict) or "key" not in entry:
                continue
            existing = None
            if entry.get("id"):
                existing = next((m for m in meta if m["id"] == _stock_amount(entry["id"])), None)
            if existing is None:
                existing = next((m for m in meta if m["key"] == entry["key"]), None)
            if entry.get("value") is None and existing is not None:
                meta.remove(existing)
            elif existing is not None:
                existing["value"] = entry["value"]
            elif entry.get("value") is not None:
                meta.append({"id": next(self._meta_ids), "key": str(entry["key"]), "value": entry["value"]})

    # -- categories -----------------------------------------------------------------------------

    def category_json(self, category: Record) -> Record:
        count = sum(1 for p in self.products.values() if category["id"] in p["categories"]
                    and p["status"] != "trash")
        return {"id": category["id"], "name": category["name"], "slug": category["slug"],
                "parent": category["parent"], "description": category["description"], "display": "default",
                "image": None, "menu_order": 0, "count": count,
                "_links": self._links(f"products/categories/{category['id']}", "products/categories")}

    def list_categories(self, args: Mapping[str, Any]) -> list[Record]:
        """`GET /products/categories`, by name, filtered by `search`, `slug` and `parent`."""
        with self.lock:
            categories = list(self.categories.values())
        if args.get("search"):
            categories = [c for c in categories if str(args["search"]).lower() in c["name"].lower()]
        if args.get("slug"):
            categories = [c for c in categories if c["slug"] == args["slug"]]
        if args.get("parent") not in (None, ""):
            categories = [c for c in categories if c["parent"] == _stock_amount(args["parent"])]
        return sorted(categories, key=lambda c: (c["name"].lower(), c["id"]))

    def create_category(self, data: Record) -> Record:
        name = str(data.get("name") or "").strip()
        if not name:
            raise _error("rest_missing_callback_param", "Missing parameter(s): name", 400,
                         {"params": ["name"]})
        slug = _slugify(data.get("slug") or name)
        parent = _stock_amount(data.get("parent") or 0)
        with self.lock:
            if parent and parent not in self.categories:
                raise _error("woocommerce_rest_term_invalid", "Resource does not exist.", 404)
            if any(c["slug"] == slug and c["parent"] == parent for c in self.categories.values()):
                existing = next(c for c in self.categories.values() if c["slug"] == slug and c["parent"] == parent)
                raise _error("term_exists", "A term with the name provided already exists with this parent.", 400,
                             {"resource_id": existing["id"]})
            category: Record = {"id": next(self._term_ids), "name": name, "slug": slug, "parent": parent,
                                "description": str(data.get("description") or "")}
            self.categories[category["id"]] = category
            return self.category_json(category)

    # -- products -------------------------------------------------------------------------------

    def product_json(self, product: Record) -> Record:
        price = product["sale_price"] or product["regular_price"]
        price_html = ""
        if price:
            price_html = ('<span class="woocommerce-Price-amount amount"><bdi><span class="woocommerce-Price-'
                          f'currencySymbol">&pound;</span>{float(price):.2f}</bdi></span>')
        categories = [{"id": cid, "name": self.categories[cid]["name"], "slug": self.categories[cid]["slug"]}
                      for cid in product["categories"] if cid in self.categories]
        body = {"id": product["id"], "name": product["name"], "slug": product["slug"],
                "permalink": f"{self.base_url}/product/{product['slug']}/"}
        body.update(self._dates("date_created", product["_created"]))
        body.update(self._dates("date_modified", product["_modified"]))
        body.update({
            "type": product["type"], "status": product["status"], "featured": False, "catalog_visibility": "visible",
            "description": product["description"], "short_description": product["short_description"],
            "sku": product["sku"], "price": price, "regular_price": product["regular_price"],
            "sale_price": product["sale_price"], "date_on_sale_from": None, "date_on_sale_from_gmt": None,
            "date_on_sale_to": None, "date_on_sale_to_gmt": None, "on_sale": bool(product["sale_price"]),
            "purchasable": price != "", "total_sales": product["total_sales"], "virtual": False,
            "downloadable": False, "downloads": [], "download_limit": -1, "download_expiry": -1,
            "external_url": "", "button_text": "", "tax_status": product["tax_status"],
            "tax_class": product["tax_class"], "manage_stock": product["manage_stock"],
            "stock_quantity": product["stock_quantity"] if product["manage_stock"] else None,
            "backorders": product["backorders"], "backorders_allowed": product["backorders"] != "no",
            "backordered": False, "low_stock_amount": None, "sold_individually": False, "weight": product["weight"],
            "dimensions": {"length": "", "width": "", "height": ""}, "shipping_required": True,
            "shipping_taxable": True, "shipping_class": "", "shipping_class_id": 0, "reviews_allowed": True,
            "average_rating": "0.00", "rating_count": 0, "upsell_ids": [], "cross_sell_ids": [], "parent_id": 0,
            "purchase_note": "", "categories": categories, "tags": [], "images": [], "attributes": [],
            "default_attributes": [], "variations": [], "grouped_products": [], "menu_order": 0,
            "price_html": price_html, "related_ids": [], "meta_data": [dict(m) for m in product["meta_data"]],
            "stock_status": product["stock_status"], "has_options": False, "post_password": "",
            "global_unique_id": "",
            "_links": self._links(f"products/{product['id']}", "products"),
        })
        return body

    def _apply_product(self, product: Record, data: Record) -> None:
        for name in ("name", "description", "short_description", "weight", "tax_class"):
            if name in data and data[name] is not None:
                product[name] = str(data[name])
        if "name" in data and "slug" not in data and not product["slug"]:
            product["slug"] = _slugify(product["name"]) or str(product["id"])
        if data.get("slug"):
            product["slug"] = _slugify(data["slug"])
        for name, allowed in (("type", ("simple", "grouped", "external", "variable")), ("status", PRODUCT_STATUSES),
                              ("backorders", BACKORDERS), ("tax_status", ("taxable", "shipping", "none"))):
            if data.get(name) in allowed:
                product[name] = data[name]
        if "regular_price" in data:
            product["regular_price"] = _decimal(data["regular_price"])
        if "sale_price" in data:
            product["sale_price"] = _decimal(data["sale_price"])
        if "sku" in data:
            sku = str(data["sku"] or "").strip()
            if sku and any(other["sku"] == sku and other["id"] != product["id"] and other["status"] != "trash"
                           for other in self.products.values()):
                raise _error("product_invalid_sku", "Invalid or duplicated SKU.", 400,
                             {"resource_id": product["id"], "unique_sku": sku})
            product["sku"] = sku
        if "categories" in data and isinstance(data["categories"], list):
            product["categories"] = [_stock_amount(c.get("id")) for c in data["categories"]
                                     if isinstance(c, dict) and _stock_amount(c.get("id")) in self.categories]
        if "meta_data" in data:
            self._apply_meta(product, data["meta_data"])
        if "manage_stock" in data:
            product["manage_stock"] = _to_bool(data["manage_stock"])
        if "stock_quantity" in data and data["stock_quantity"] is not None:
            product["stock_quantity"] = _stock_amount(data["stock_quantity"])
        if "stock_status" in data and data["stock_status"] in STOCK_STATUSES:
            product["stock_status"] = data["stock_status"]
        self._settle_stock_status(product)

    @staticmethod
    def _settle_stock_status(product: Record) -> None:
        """WooCommerce derives the stock status from the quantity when it manages stock."""
        if not product["manage_stock"]:
            product["stock_quantity"] = None
            return
        quantity = product["stock_quantity"] or 0
        product["stock_quantity"] = quantity
        if quantity > 0:
            product["stock_status"] = "instock"
        else:
            product["stock_status"] = "onbackorder" if product["backorders"] != "no" else "outofstock"

    def create_product(self, data: Record, *, lenient: bool = False) -> Record:
        """Adds a product as `POST /products` does (fires product.created); returns its JSON."""
        if not lenient:
            validate_schema(PRODUCT_SCHEMA, data)
        with self.lock:
            now = self.now()
            product: Record = {
                "id": next(self._post_ids), "name": "", "slug": "", "type": "simple", "status": "publish",
                "description": "", "short_description": "", "sku": "", "regular_price": "", "sale_price": "",
                "tax_status": "taxable", "tax_class": "", "manage_stock": False, "stock_quantity": None,
                "stock_status": "instock", "backorders": "no", "weight": "", "categories": [],
                "meta_data": [], "total_sales": 0, "_created": now, "_modified": now}
            self._apply_product(product, data)
            if not product["slug"]:
                product["slug"] = _slugify(product["name"]) or f"product-{product['id']}"
            self.products[product["id"]] = product
            self._emit("product.created", product["id"])
            return self.product_json(product)

    def _live_product(self, product_id: Any, status: int) -> Record:
        product = self.products.get(_stock_amount(product_id))
        if product is None or product["status"] == "trash" and status == 400:
            raise _error("woocommerce_rest_product_invalid_id", INVALID_ID, status)
        return product

    def get_product(self, product_id: Any) -> Record:
        with self.lock:
            return self.product_json(self._live_product(product_id, 404))

    def update_product(self, product_id: Any, data: Record, *, lenient: bool = False) -> Record:
        """Changes a product as `PUT /products/<id>` does (fires product.updated); returns its JSON."""
        if not lenient:
            validate_schema(PRODUCT_SCHEMA, data)
        with self.lock:
            product = self._live_product(product_id, 400)
            self._apply_product(product, data)
            product["_modified"] = self.now()
            self._emit("product.updated", product["id"])
            return self.product_json(product)

    def delete_product(self, product_id: Any, *, force: bool = False) -> Record:
        with self.lock:
            product = self.products.get(_stock_amount(product_id))
            if product is None:
                raise _error("woocommerce_rest_product_invalid_id", INVALID_ID, 404)
            body = self.product_json(product)
            if force:
                del self.products[product["id"]]
            else:
                if product["status"] == "trash":
                    raise _error("woocommerce_rest_already_trashed", "The product has already been deleted.", 410)
                product["status"] = "trash"
                product["_modified"] = self.now()
                body = self.product_json(product)
            self._emit("product.deleted", product["id"])
            return body

    def list_products(self, args: Mapping[str, Any]) -> list[Record]:
        with self.lock:
            products = [p for p in self.products.values() if p["status"] != "trash"
                        or args.get("status") == "trash"]
            if args.get("sku"):
                wanted = {s.strip() for s in str(args["sku"]).split(",") if s.strip()}
                products = [p for p in products if p["sku"] in wanted]
            if args.get("status") and args["status"] != "any":
                products = [p for p in products if p["status"] == args["status"]]
            if args.get("stock_status"):
                products = [p for p in products if p["stock_status"] == args["stock_status"]]
            if args.get("category"):
                category = _stock_amount(args["category"])
                products = [p for p in products if category in p["categories"]]
            if args.get("search"):
                needle = str(args["search"]).lower()
                products = [p for p in products if needle in p["name"].lower() or needle in p["sku"].lower()]
            if args.get("include"):
                include = {_stock_amount(i) for i in str(args["include"]).split(",")}
                products = [p for p in products if p["id"] in include]
            products = self._ordered(products, args, default="date")
            return products

    @staticmethod
    def _ordered(records: Iterable[Record], args: Mapping[str, Any], *, default: str,
                 default_order: str = "desc") -> list[Record]:
        orderby = args.get("orderby") or default
        keys: dict[str, Callable[[Record], Any]] = {"date": lambda r: (r["_created"], r["id"]), "id": lambda r: r["id"],
                "modified": lambda r: (r["_modified"], r["id"]), "include": lambda r: r["id"],
                "title": lambda r: (r.get("name", ""), r["id"]), "slug": lambda r: (r.get("slug", ""), r["id"]),
                "name": lambda r: (f"{r.get('first_name', '')} {r.get('last_name', '')}".strip().lower()
                                   or r.get("username", ""), r["id"]),
                "registered": lambda r: (r["_created"], r["id"])}
        key = keys.get(orderby, keys[default])
        return sorted(records, key=key, reverse=(args.get("order") or default_order) == "desc")

    def wait_for_deliveries(self, timeout_seconds: float = 10.0) -> bool:
        """Blocks until every queued webhook delivery has been sent; False if they did not drain in time."""
        return self.deliverer.wait_until_idle(timeout_seconds=timeout_seconds)

    def batch_item_pause(self) -> None:
        """The per-item cost of a write on a real host (each batch item, each single write), outside the lock."""
        if self.faults.item_latency_seconds:
            time.sleep(self.faults.item_latency_seconds)

    # -- customers ------------------------------------------------------------------------------

    def customer_json(self, user: Record) -> Record:
        billing = {name: user.get("billing", {}).get(name, "") for name in ADDRESS_FIELDS + ("email", "phone")}
        shipping = {name: user.get("shipping", {}).get(name, "") for name in ADDRESS_FIELDS + ("phone",)}
        body = {"id": user["id"]}
        body.update(self._dates("date_created", user["_created"]))
        body.update(self._dates("date_modified", user["_modified"]))
        body.update({
            "email": user["email"], "first_name": user["first_name"], "last_name": user["last_name"],
            "role": user["role"], "username": user["username"], "billing": billing, "shipping": shipping,
            "is_paying_customer": bool(user.get("is_paying_customer")),
            "avatar_url": "https://secure.gravatar.com/avatar/?s=96&d=mm&r=g",
            "meta_data": [dict(m) for m in user["meta_data"]],
            "_links": self._links(f"customers/{user['id']}", "customers"),
        })
        return body

    def _apply_customer(self, user: Record, data: Record) -> None:
        for name in ("first_name", "last_name"):
            if name in data and data[name] is not None:
                user[name] = str(data[name])
        for address in ("billing", "shipping"):
            if isinstance(data.get(address), dict):
                allowed = ADDRESS_FIELDS + (("email", "phone") if address == "billing" else ("phone",))
                for name, value in data[address].items():
                    if name in allowed and value is not None:
                        user.setdefault(address, {})[name] = str(value)
        if "meta_data" in data:
            self._apply_meta(user, data["meta_data"])

    def create_customer(self, data: Record, *, lenient: bool = False, role: str = "customer") -> Record:
        """Registers a customer as `POST /customers` does (fires customer.created and .updated)."""
        if not lenient:
            validate_schema(CUSTOMER_SCHEMA, data)
        email = str(data.get("email") or "").strip().lower()
        if not email:
            raise _error("rest_missing_callback_param", "Missing parameter(s): email", 400, {"params": ["email"]})
        if "@" not in email:
            raise _error("registration-error-invalid-email", "Please provide a valid email address.", 400)
        with self.lock:
            if any(u["email"] == email for u in self.users.values()):
                raise _error("registration-error-email-exists",
                             "An account is already registered with your email address. "
                             "<a href=\"#\" class=\"showlogin\">Please log in.</a>", 400)
            username = str(data.get("username") or email.split("@")[0])
            while any(u["username"] == username for u in self.users.values()):
                username = f"{username}-{secrets.token_hex(2)}"
            now = self.now()
            user: Record = {"id": next(self._user_ids), "email": email, "username": username, "first_name": "",
                            "last_name": "", "role": role, "billing": {}, "shipping": {}, "meta_data": [],
                            "_created": now, "_modified": now}
            self._apply_customer(user, data)
            self.users[user["id"]] = user
            self._emit("customer.created", user["id"])
            self._emit("customer.updated", user["id"])
            return self.customer_json(user)

    def _user(self, user_id: Any, status: int = 404) -> Record:
        user = self.users.get(_stock_amount(user_id))
        if user is None:
            raise _error("woocommerce_rest_invalid_id", INVALID_ID, status)
        return user

    def get_customer(self, customer_id: Any) -> Record:
        with self.lock:
            return self.customer_json(self._user(customer_id))

    def update_customer(self, customer_id: Any, data: Record, *, lenient: bool = False) -> Record:
        """Changes a customer; `role` is read-only here, as in wc/v3 (a PUT ignores it)."""
        if not lenient:
            validate_schema(CUSTOMER_SCHEMA, data)
        with self.lock:
            user = self._user(customer_id, 400)
            if data.get("email") and str(data["email"]).strip().lower() != user["email"]:
                if user["role"] not in CUSTOMER_ROLES_FOR_REST:
                    # WooCommerce 9.5+: REST may change the e-mail of customers and subscribers only.
                    raise _error("woocommerce_rest_cannot_edit", "Sorry, you are not allowed to edit this resource.",
                                 403)
                email = str(data["email"]).strip().lower()
                if any(u["email"] == email and u["id"] != user["id"] for u in self.users.values()):
                    raise _error("woocommerce_rest_customer_invalid_email", "Email address is invalid.", 400)
                user["email"] = email
            self._apply_customer(user, data)
            user["_modified"] = self.now()
            self._emit("customer.updated", user["id"])
            return self.customer_json(user)

    def delete_customer(self, customer_id: Any, *, force: bool = False) -> Record:
        if not force:
            raise _error("woocommerce_rest_trash_not_supported", "Customers do not support trashing.", 501)
        with self.lock:
            user = self._user(customer_id)
            body = self.customer_json(user)
            del self.users[user["id"]]
            if user["role"] == "customer":
                self._emit("customer.deleted", user["id"])
            return body

    def list_customers(self, args: Mapping[str, Any]) -> list[Record]:
        role = args.get("role") or "customer"
        if role != "all" and role not in USER_ROLES:
            raise invalid_params({"role": f"role is not one of all, {', '.join(USER_ROLES)}."})
        with self.lock:
            users = [u for u in self.users.values() if role == "all" or u["role"] == role]
            if args.get("email"):
                users = [u for u in users if u["email"] == str(args["email"]).strip().lower()]
            if args.get("search"):
                needle = str(args["search"]).lower()
                users = [u for u in users if needle in u["email"] or needle in u["username"].lower()]
            return self._ordered(users, args, default="name", default_order="asc")

    def set_user_roles(self, user_id: Any, roles: list[str]) -> Record:
        """WordPress's `POST /wp/v2/users/<id>` with `roles`: no webhook fires for a role change."""
        with self.lock:
            user = self.users.get(_stock_amount(user_id))
            if user is None:
                raise _error("rest_user_invalid_id", "Invalid user ID.", 404)
            if not roles or any(role not in USER_ROLES for role in roles):
                raise _error("rest_user_invalid_role", "Sorry, you are not allowed to give users that role.", 403)
            user["role"] = roles[0]
            return self.wp_user_json(user)

    def wp_user_json(self, user: Record) -> Record:
        return {"id": user["id"], "username": user["username"],
                "name": f"{user['first_name']} {user['last_name']}".strip() or user["username"],
                "first_name": user["first_name"], "last_name": user["last_name"], "email": user["email"],
                "slug": _slugify(user["username"]), "roles": [user["role"]],
                "registered_date": user["_created"].isoformat() + "+00:00",
                "_links": {"self": [{"href": f"{self.base_url}/wp-json/wp/v2/users/{user['id']}"}]}}

    # -- orders ---------------------------------------------------------------------------------

    def _item_taxes_json(self, taxes: Mapping[int, decimal.Decimal],
                         subtotal_taxes: Mapping[int, decimal.Decimal] | None = None) -> list[Record]:
        return [{"id": rate_id, "total": unrounded(tax),
                 "subtotal": unrounded((subtotal_taxes or {}).get(rate_id, tax)) if subtotal_taxes is not None else ""}
                for rate_id, tax in taxes.items()]

    def order_json(self, order: Record) -> Record:
        line_items = []
        for item in order["line_items"]:
            quantity = item["quantity"]
            line_items.append({
                "id": item["id"], "name": item["name"], "product_id": item["product_id"],
                "variation_id": item["variation_id"], "quantity": quantity, "tax_class": item["tax_class"],
                "subtotal": _money(item["subtotal"]), "subtotal_tax": _money(self._line_tax(item["subtotal_taxes"])),
                "total": _money(item["total"]), "total_tax": _money(self._line_tax(item["taxes"])),
                "taxes": self._item_taxes_json(item["taxes"], item["subtotal_taxes"]),
                "meta_data": [dict(m, display_key=m["key"], display_value=m["value"]) for m in item["meta_data"]],
                "sku": item["sku"], "price": float(item["total"]) / max(1, quantity),
                "image": {"id": "", "src": ""}, "parent_name": None,
            })
        shipping_lines = [{"id": line["id"], "method_title": line["method_title"], "method_id": line["method_id"],
                           "instance_id": line["instance_id"], "total": _money(line["total"]),
                           "total_tax": _money(self._line_tax(line["taxes"])),
                           "taxes": self._item_taxes_json(line["taxes"]), "meta_data": []}
                          for line in order["shipping_lines"]]
        fee_lines = [{"id": fee["id"], "name": fee["name"], "tax_class": fee["tax_class"],
                      "tax_status": fee["tax_status"], "amount": _money(fee["total"]), "total": _money(fee["total"]),
                      "total_tax": _money(self._line_tax(fee["taxes"])), "taxes": self._item_taxes_json(fee["taxes"]),
                      "meta_data": []} for fee in order["fee_lines"]]
        tax_lines = [{"id": line["id"], "rate_code": line["rate_code"], "rate_id": line["rate_id"],
                      "label": line["label"], "compound": line["compound"], "tax_total": _money(line["tax_total"]),
                      "shipping_tax_total": _money(line["shipping_tax_total"]), "rate_percent": line["rate_percent"],
                      "meta_data": []} for line in order["tax_lines"]]
        body = {"id": order["id"], "parent_id": 0, "status": order["status"], "currency": order["currency"],
                "version": WC_VERSION, "prices_include_tax": order["prices_include_tax"]}
        body.update(self._dates("date_created", order["_created"]))
        body.update(self._dates("date_modified", order["_modified"]))
        body.update({
            "discount_total": _money(order["discount_total"]), "discount_tax": _money(order["discount_tax"]),
            "shipping_total": _money(order["shipping_total"]), "shipping_tax": _money(order["shipping_tax"]),
            "cart_tax": _money(order["cart_tax"]), "total": _money(order["total"]),
            "total_tax": _money(order["cart_tax"] + order["shipping_tax"]),
            "customer_id": order["customer_id"], "order_key": order["order_key"],
            "billing": {name: order["billing"].get(name, "") for name in ADDRESS_FIELDS + ("email", "phone")},
            "shipping": {name: order["shipping"].get(name, "") for name in ADDRESS_FIELDS + ("phone",)},
            "payment_method": order["payment_method"], "payment_method_title": order["payment_method_title"],
            "transaction_id": order["transaction_id"], "customer_ip_address": order["customer_ip_address"],
            "customer_user_agent": "", "created_via": order["created_via"], "customer_note": order["customer_note"],
        })
        body.update(self._dates("date_completed", order["_completed"]))
        body.update(self._dates("date_paid", order["_paid"]))
        body.update({
            "cart_hash": "", "number": str(order["id"]), "meta_data": [dict(m) for m in order["meta_data"]],
            "line_items": line_items, "tax_lines": tax_lines, "shipping_lines": shipping_lines,
            "fee_lines": fee_lines, "coupon_lines": [],
            "refunds": [{"id": r["id"], "reason": r["reason"], "total": _money(-float(r["amount"]))}
                        for r in self.refunds.get(order["id"], [])],
            "payment_url": f"{self.base_url}/checkout/order-pay/{order['id']}/?pay_for_order=true&key="
                           f"{order['order_key']}",
            "is_editable": order["status"] in ("pending", "on-hold", "auto-draft"),
            "needs_payment": order["status"] in ("pending", "failed"),
            "needs_processing": True, "currency_symbol": "\u00a3",
            "_links": self._links(f"orders/{order['id']}", "orders",
                                  {"customer": [{"href": f"{self.base_url}/wp-json/wc/v3/customers/"
                                                         f"{order['customer_id']}"}]}
                                  if order["customer_id"] else None),
        })
        return body

    def _order(self, order_id: Any, status: int) -> Record:
        order = self.orders.get(_stock_amount(order_id))
        if order is None:
            raise _error("woocommerce_rest_shop_order_invalid_id", INVALID_ID, status)
        return order

    def _line_item(self, data: Record, *, prices_include_tax: bool, created_via: str,
                   location: Mapping[str, Any]) -> Record:
        """A line as the REST API (or a checkout) adds it: totals net of tax, unrounded."""
        product = None
        if data.get("sku"):
            product = next((p for p in self.products.values() if p["sku"] == str(data["sku"])), None)
        elif data.get("product_id"):
            product = self.products.get(_stock_amount(data["product_id"]))
        if product is None and (data.get("sku") or data.get("product_id")):
            raise _error("woocommerce_rest_invalid_product_id", "Product ID provided is invalid.", 400)
        quantity = max(1, _stock_amount(data.get("quantity", 1)))
        item: Record = {
            "id": next(self._item_ids), "name": str(data.get("name") or (product["name"] if product else "")),
            "product_id": product["id"] if product else 0, "variation_id": 0, "quantity": quantity,
            "sku": product["sku"] if product else "", "tax_class": product["tax_class"] if product else "",
            "tax_status": product["tax_status"] if product else "taxable", "meta_data": [], "taxes": {},
            "subtotal_taxes": {}, "included_tax": None}
        given_subtotal, given_total = data.get("subtotal"), data.get("total")
        if given_subtotal not in (None, "") or given_total not in (None, ""):
            # Totals sent with the line are taken as they are: net of tax.
            item["subtotal"] = _decimal_amount(given_subtotal if given_subtotal not in (None, "") else given_total)
            item["total"] = _decimal_amount(given_total) if given_total not in (None, "") else item["subtotal"]
            return item
        gross = _decimal_amount(product["sale_price"] or product["regular_price"] or 0 if product else 0) * quantity
        item["subtotal"] = item["total"] = gross
        if prices_include_tax and self.taxes_enabled and item["tax_status"] == "taxable":
            rates = self._item_rates(item, location)
            included = TaxRates.calc(gross, rates, inclusive=True)
            if created_via == "checkout" and not self.setting("woocommerce_tax_round_at_subtotal") == "yes":
                # The cart works in pennies: the rounded tax comes off, so net + tax is the price paid.
                item["subtotal"] = item["total"] = gross - sum((round_tax(t) for t in included.values()),
                                                               decimal.Decimal(0))
                item["included_tax"] = included
            else:
                # wc_get_price_excluding_tax: the unrounded tax comes off.
                item["subtotal"] = item["total"] = gross - sum(included.values(), decimal.Decimal(0))
        return item

    # -- order taxes and totals -----------------------------------------------------------------

    def _line_tax(self, taxes: Mapping[int, decimal.Decimal]) -> decimal.Decimal:
        """A line's `total_tax`: its taxes rounded one by one, or summed unrounded at subtotal."""
        if self.setting("woocommerce_tax_round_at_subtotal") == "yes":
            return round_tax(sum(taxes.values(), decimal.Decimal(0)))
        return sum((round_tax(t) for t in taxes.values()), decimal.Decimal(0))

    def _tax_location(self, order: Record) -> dict[str, Any]:
        """`WC_Abstract_Order::get_tax_location`: the shipping (or billing) address, else the shop's base."""
        based_on = self.setting("woocommerce_tax_based_on")
        if based_on == "shipping" and not order["shipping"].get("country"):
            based_on = "billing"
        address = order["billing"] if based_on == "billing" else order["shipping"]
        if based_on == "base" or not address.get("country"):
            return {"country": self.setting("woocommerce_default_country").split(":")[0], "state": "",
                    "postcode": "", "city": ""}
        return {name: address.get(name, "") for name in ("country", "state", "postcode", "city")}

    def _item_rates(self, item: Record, location: Mapping[str, Any]) -> list[Record]:
        return self.tax_rates.find(tax_class=item["tax_class"], **location)

    def _shipping_rates(self, order: Record, location: Mapping[str, Any]) -> list[Record]:
        tax_class = self.setting("woocommerce_shipping_tax_class")
        if tax_class == "inherit":
            classes = {item["tax_class"] for item in order["line_items"] if item["tax_status"] == "taxable"}
            ordered = [""] + [slug for slug in TAX_CLASSES if slug != "standard"]
            found = [slug for slug in ordered if slug in classes]
            if not found:
                return []
            tax_class = found[0]
        return self.tax_rates.find(tax_class=tax_class, shipping=True, **location)

    def _calculate_totals(self, order: Record) -> None:
        """`calculate_totals(true)`: each line's taxes, the tax lines per rate, then the order's totals."""
        zero = decimal.Decimal(0)
        enabled = self.taxes_enabled
        location = self._tax_location(order)
        for item in order["line_items"]:
            if not enabled or item["tax_status"] != "taxable":
                item["taxes"], item["subtotal_taxes"] = {}, {}
                continue
            if item["included_tax"] is not None:
                # A checkout keeps the cart's taxes: the price paid includes them.
                item["taxes"] = item["subtotal_taxes"] = dict(item["included_tax"])
                continue
            rates = self._item_rates(item, location)
            item["taxes"] = TaxRates.calc(item["total"], rates)
            item["subtotal_taxes"] = TaxRates.calc(item["subtotal"], rates)
        for fee in order["fee_lines"]:
            taxable = enabled and fee["tax_status"] == "taxable"
            fee["taxes"] = TaxRates.calc(fee["total"], self.tax_rates.find(tax_class=fee["tax_class"], **location)) \
                if taxable else {}
        shipping_rates = self._shipping_rates(order, location) if enabled else []
        for line in order["shipping_lines"]:
            line["taxes"] = TaxRates.calc(line["total"], shipping_rates) if shipping_rates else {}
        cart_taxes: dict[int, decimal.Decimal] = {}
        shipping_taxes: dict[int, decimal.Decimal] = {}
        per_line = self.setting("woocommerce_tax_round_at_subtotal") != "yes"
        for part in order["line_items"] + order["fee_lines"]:
            for rate_id, tax in part["taxes"].items():
                cart_taxes[rate_id] = cart_taxes.get(rate_id, zero) + (round_tax(tax) if per_line else tax)
        for line in order["shipping_lines"]:
            for rate_id, tax in line["taxes"].items():
                shipping_taxes[rate_id] = shipping_taxes.get(rate_id, zero) + (round_tax(tax) if per_line else tax)
        existing = {line["rate_id"]: line for line in order["tax_lines"]}
        order["tax_lines"] = []
        for rate_id in dict.fromkeys([*cart_taxes, *shipping_taxes]):
            rate = self.tax_rates.rates.get(rate_id)
            line = existing.get(rate_id) or {"id": next(self._item_ids), "rate_id": rate_id}
            if rate is not None:
                line.update(rate_code=TaxRates.rate_code(rate), label=TaxRates.label(rate),
                            compound=rate["compound"], rate_percent=float(rate["rate"]))
            line.update(tax_total=round_tax(cart_taxes.get(rate_id, zero)),
                        shipping_tax_total=round_tax(shipping_taxes.get(rate_id, zero)))
            order["tax_lines"].append(line)
        order["cart_tax"] = round_tax(sum(cart_taxes.values(), zero))
        order["shipping_tax"] = round_tax(sum(shipping_taxes.values(), zero))
        cart_subtotal = sum((round_tax(item["subtotal"]) for item in order["line_items"]), zero)
        cart_total = sum((round_tax(item["total"]) for item in order["line_items"]), zero)
        subtotal_tax = sum((self._line_tax(item["subtotal_taxes"]) for item in order["line_items"]), zero)
        total_tax = sum((self._line_tax(item["taxes"]) for item in order["line_items"]), zero)
        order["shipping_total"] = sum((line["total"] for line in order["shipping_lines"]), zero)
        fees_total = sum((fee["total"] for fee in order["fee_lines"]), zero)
        order["discount_total"] = round_tax(cart_subtotal - cart_total)
        order["discount_tax"] = round_tax(subtotal_tax - total_tax)
        order["total"] = round_tax(cart_total + fees_total + order["shipping_total"] + order["cart_tax"]
                                   + order["shipping_tax"])

    def _set_order_status(self, order: Record, status: str, now: datetime.datetime) -> None:
        """A status change and its side effects: stock reduced once when paid, restored on cancel."""
        previous = order["status"]
        order["status"] = status
        if status in PAID_STATUSES and order["_paid"] is None:
            order["_paid"] = now
        if status == "completed":
            order["_completed"] = now
        if status in STOCK_REDUCING_STATUSES and not order["stock_reduced"]:
            order["stock_reduced"] = True
            self._move_stock(order, -1, now)
        elif status in STOCK_RESTORING_STATUSES and order["stock_reduced"] and previous != status:
            order["stock_reduced"] = False
            self._move_stock(order, +1, now)

    def _move_stock(self, order: Record, sign: int, now: datetime.datetime) -> None:
        """`wc_reduce_stock_levels` (marks each line `_reduced_stock`) or `wc_increase_stock_levels`."""
        for item in order["line_items"]:
            product = self.products.get(item["product_id"])
            if product is None or not product["manage_stock"]:
                continue
            reduced = next((m for m in item["meta_data"] if m["key"] == REDUCED_STOCK_META), None)
            if sign > 0:
                if reduced is None:
                    continue
                quantity = _stock_amount(reduced["value"])
                item["meta_data"].remove(reduced)
            else:
                quantity = item["quantity"]
                item["meta_data"].append({"id": next(self._meta_ids), "key": REDUCED_STOCK_META,
                                          "value": str(quantity)})
                product["total_sales"] += quantity
            product["stock_quantity"] = (product["stock_quantity"] or 0) + sign * quantity
            self._settle_stock_status(product)
            product["_modified"] = now
            self._emit("product.updated", product["id"])

    def create_order(self, data: Record, *, lenient: bool = False, created_via: str = "rest-api") -> Record:
        """Creates an order as `POST /orders` (or a checkout, with created_via="checkout") does.

        Fires order.created and order.updated; a paid status also lowers stock (product.updated per
        stocked line) and touches the customer (customer.updated). With taxes on, taxes are
        calculated as WooCommerce calculates them.
        """
        if not lenient:
            validate_schema(ORDER_SCHEMA, data)
        with self.lock:
            customer_id = _stock_amount(data.get("customer_id") or 0)
            if customer_id and customer_id not in self.users:
                raise _error("woocommerce_rest_invalid_customer_id", "Customer ID is invalid.", 400)
            now = self.now()
            prices_include_tax = self.setting("woocommerce_prices_include_tax") == "yes"
            order = {"id": next(self._post_ids), "status": "pending", "currency": data.get("currency") or self.currency,
                     "customer_id": customer_id, "order_key": f"wc_order_{secrets.token_hex(7)[:13]}",
                     "billing": {}, "shipping": {}, "payment_method": "", "payment_method_title": "",
                     "transaction_id": "", "created_via": created_via, "customer_note": "", "meta_data": [],
                     "line_items": [], "shipping_lines": [], "fee_lines": [], "tax_lines": [],
                     "prices_include_tax": prices_include_tax, "_created": now, "_modified": now, "_paid": None,
                     "_completed": None, "stock_reduced": False,
                     # A REST request has no shopper's address to record; a checkout does.
                     "customer_ip_address": "127.0.0.1" if created_via == "checkout" else ""}
            self._apply_order_fields(order, data)
            location = self._tax_location(order)
            order["line_items"] = [self._line_item(item, prices_include_tax=prices_include_tax,
                                                   created_via=created_via, location=location)
                                   for item in data.get("line_items") or [] if isinstance(item, dict)]
            for line in data.get("shipping_lines") or []:
                order["shipping_lines"].append({
                    "id": next(self._item_ids), "method_id": str(line.get("method_id") or ""),
                    "instance_id": str(line.get("instance_id") or ""),
                    "method_title": str(line.get("method_title") or ""),
                    "total": _decimal_amount(line.get("total") or 0), "taxes": {}})
            for fee in data.get("fee_lines") or []:
                order["fee_lines"].append({"id": next(self._item_ids), "name": str(fee.get("name") or ""),
                                           "tax_class": str(fee.get("tax_class") or ""),
                                           "tax_status": fee.get("tax_status") if fee.get("tax_status") in
                                           ("taxable", "none") else "taxable",
                                           "total": _decimal_amount(fee.get("total") or 0), "taxes": {}})
            self._calculate_totals(order)
            self.orders[order["id"]] = order
            self.notes[order["id"]] = []
            status = "processing" if _to_bool(data.get("set_paid")) else data.get("status") or "pending"
            if status != "pending":
                self._set_order_status(order, status, now)
            if order["status"] not in DRAFT_STATUSES:
                self._emit("order.created", order["id"])
                self._emit("order.updated", order["id"])
                if customer_id and order["status"] in PAID_STATUSES:
                    user = self.users[customer_id]
                    user["is_paying_customer"] = True
                    user["_modified"] = now
                    self._emit("customer.updated", customer_id)
            return self.order_json(order)

    def _apply_order_fields(self, order: Record, data: Record) -> None:
        for address in ("billing", "shipping"):
            if isinstance(data.get(address), dict):
                order[address].update({k: str(v) for k, v in data[address].items() if v is not None})
        for name in ("payment_method", "payment_method_title", "transaction_id", "customer_note", "currency"):
            if data.get(name) is not None:
                order[name] = str(data[name])
        if "meta_data" in data:
            self._apply_meta(order, data["meta_data"])

    def get_order(self, order_id: Any) -> Record:
        with self.lock:
            return self.order_json(self._order(order_id, 404))

    def update_order(self, order_id: Any, data: Record, *, lenient: bool = False) -> Record:
        """Changes an order (an unknown id is 400 here, 404 on GET, as in WooCommerce)."""
        if not lenient:
            validate_schema(ORDER_SCHEMA, data)
        with self.lock:
            order = self._order(order_id, 400)
            now = self.now()
            self._apply_order_fields(order, data)
            status = "processing" if _to_bool(data.get("set_paid")) and order["status"] == "pending" \
                else data.get("status")
            if status and status in ORDER_STATUSES and status != order["status"]:
                self._set_order_status(order, status, now)
            order["_modified"] = now
            if order["status"] not in DRAFT_STATUSES:
                self._emit("order.updated", order["id"])
            return self.order_json(order)

    def delete_order(self, order_id: Any, *, force: bool = False) -> Record:
        with self.lock:
            order = self._order(order_id, 404)
            if force:
                body = self.order_json(order)
                del self.orders[order["id"]]
                return body
            order["status"] = "trash"
            order["_modified"] = self.now()
            self._emit("order.deleted", order["id"])
            return self.order_json(order)

    def list_orders(self, args: Mapping[str, Any]) -> list[Record]:
        with self.lock:
            orders = list(self.orders.values())
            statuses = [s.strip() for s in str(args.get("status") or "any").split(",") if s.strip()]
            if "any" in statuses:
                orders = [o for o in orders if o["status"] != "trash" and o["status"] not in DRAFT_STATUSES]
            else:
                orders = [o for o in orders if o["status"] in statuses]
            if args.get("customer") not in (None, ""):
                orders = [o for o in orders if o["customer_id"] == _stock_amount(args["customer"])]
            gmt = _to_bool(args.get("dates_are_gmt", False))
            for name, field, after in (("modified_after", "_modified", True), ("modified_before", "_modified", False),
                                       ("after", "_created", True), ("before", "_created", False)):
                if args.get(name):
                    bound = _parse_filter_date(args[name], name)
                    offset = datetime.timedelta(0) if gmt else self.timezone_offset
                    if after:
                        orders = [o for o in orders if o[field] + offset > bound]
                    else:
                        orders = [o for o in orders if o[field] + offset < bound]
            return self._ordered(orders, args, default="date")

    def add_order_note(self, order_id: Any, data: Record) -> Record:
        """`POST /orders/<id>/notes`: no webhook, and the order's date_modified does not move."""
        note_text = str(data.get("note") or "").strip()
        if not note_text:
            raise _error("rest_missing_callback_param", "Missing parameter(s): note", 400, {"params": ["note"]})
        with self.lock:
            order = self._order(order_id, 404)
            note = {"id": next(self._comment_ids), "author": "WooCommerce" if not data.get("added_by_user")
                    else "admin", "_created": self.now(), "note": note_text,
                    "customer_note": _to_bool(data.get("customer_note", False))}
            self.notes[order["id"]].append(note)
            return self.note_json(order["id"], note)

    def note_json(self, order_id: int, note: Record) -> Record:
        body = {"id": note["id"], "author": note["author"]}
        body.update(self._dates("date_created", note["_created"]))
        body.update({"note": note["note"], "customer_note": note["customer_note"],
                     "_links": self._links(f"orders/{order_id}/notes/{note['id']}", f"orders/{order_id}/notes",
                                           {"up": [{"href": f"{self.base_url}/wp-json/wc/v3/orders/{order_id}"}]})})
        return body

    def list_order_notes(self, order_id: Any, args: Mapping[str, Any]) -> list[Record]:
        with self.lock:
            order = self._order(order_id, 404)
            kind = args.get("type") or "any"
            notes = [n for n in self.notes[order["id"]]
                     if kind == "any" or (kind == "customer") == n["customer_note"]]
            return [self.note_json(order["id"], n) for n in sorted(notes, key=lambda n: n["id"], reverse=True)]

    def create_refund(self, order_id: Any, data: Record) -> Record:
        """`POST /orders/<id>/refunds`; fires order.updated. Offline gateways cannot `api_refund`."""
        with self.lock:
            order = self._order(order_id, 404)
            try:
                amount = float(data.get("amount") or 0)
            except (TypeError, ValueError):
                amount = 0.0
            if amount <= 0:
                raise _error("woocommerce_rest_cannot_create_order_refund", "Refund amount must be greater than zero.")
            refunded = sum(float(r["amount"]) for r in self.refunds.get(order["id"], []))
            if amount > float(order["total"]) - refunded + 1e-9:
                raise _error("woocommerce_rest_cannot_create_order_refund", "Invalid refund amount.")
            if _to_bool(data.get("api_refund", True)) and order["payment_method"] in OFFLINE_GATEWAYS:
                # WooCommerce really answers this with "data": 500, not an object.
                raise _error("woocommerce_rest_cannot_create_order_refund",
                             "The payment gateway for this order does not support automatic refunds.", 500, 500)
            now = self.now()
            refund = {"id": next(self._post_ids), "amount": _money(amount), "reason": str(data.get("reason") or ""),
                      "_created": now}
            self.refunds.setdefault(order["id"], []).append(refund)
            if abs(float(order["total"]) - refunded - amount) < 1e-9:
                self._set_order_status(order, "refunded", now)
            order["_modified"] = now
            self._emit("order.updated", order["id"])
            return self.refund_json(order["id"], refund)

    def refund_json(self, order_id: int, refund: Record) -> Record:
        body = {"id": refund["id"]}
        body.update(self._dates("date_created", refund["_created"]))
        body.update({"amount": refund["amount"], "reason": refund["reason"], "refunded_by": 1,
                     "refunded_payment": False, "meta_data": [], "line_items": [], "shipping_lines": [],
                     "tax_lines": [], "fee_lines": [],
                     "_links": self._links(f"orders/{order_id}/refunds/{refund['id']}", f"orders/{order_id}/refunds",
                                           {"up": [{"href": f"{self.base_url}/wp-json/wc/v3/orders/{order_id}"}]})})
        return body

    def list_refunds(self, order_id: Any) -> list[Record]:
        with self.lock:
            order = self._order(order_id, 404)
            return [self.refund_json(order["id"], r) for r in reversed(self.refunds.get(order["id"], []))]

    def order_status_totals(self) -> list[Record]:
        """`GET /reports/orders/totals`: every status the site knows, with its order count."""
        names = {"pending": "Pending payment", "processing": "Processing", "on-hold": "On hold",
                 "completed": "Completed", "cancelled": "Cancelled", "refunded": "Refunded", "failed": "Failed",
                 "checkout-draft": "Draft"}
        with self.lock:
            return [{"slug": slug, "name": name, "total": sum(1 for o in self.orders.values() if o["status"] == slug)}
                    for slug, name in names.items()]

    # -- shipping -------------------------------------------------------------------------------

    def add_shipping_zone(self, *, name: str, methods: Iterable[Mapping[str, Any]] = ()) -> Record:
        """Adds a zone with method instances.

        e.g. methods=[{"method_id": "flat_rate", "title": ..., "cost": "4.95"}].
        """
        with self.lock:
            zone: Record = {"id": next(self._zone_ids), "name": name, "order": len(self.zones)}
            self.zones[zone["id"]] = zone
            self.zone_methods[zone["id"]] = []
            for method in methods:
                instance = {"instance_id": next(self._instance_ids), "method_id": method["method_id"],
                            "title": method.get("title") or method["method_id"], "enabled": method.get("enabled", True),
                            "cost": str(method.get("cost", "0"))}
                self.zone_methods[zone["id"]].append(instance)
            return self.zone_json(zone)

    def zone_json(self, zone: Record) -> Record:
        return {"id": zone["id"], "name": zone["name"], "order": zone["order"],
                "_links": self._links(f"shipping/zones/{zone['id']}", "shipping/zones",
                                      {"describedby": [{"href": f"{self.base_url}/wp-json/wc/v3/shipping/zones/"
                                                                f"{zone['id']}/locations"}]})}

    def list_zones(self) -> list[Record]:
        with self.lock:
            return [self.zone_json(z) for z in sorted(self.zones.values(), key=lambda z: (z["order"], z["id"]))]

    def get_zone(self, zone_id: Any) -> Record:
        with self.lock:
            zone = self.zones.get(_stock_amount(zone_id))
            if zone is None:
                raise _error("woocommerce_rest_shipping_zone_invalid", "Resource does not exist.", 404)
            return self.zone_json(zone)

    def list_zone_methods(self, zone_id: Any) -> list[Record]:
        with self.lock:
            zone_id = _stock_amount(zone_id)
            if zone_id not in self.zones:
                raise _error("woocommerce_rest_shipping_zone_invalid", "Resource does not exist.", 404)
            titles = {m["id"]: m["title"] for m in SHIPPING_METHOD_TYPES}
            result = []
            for order, method in enumerate(self.zone_methods[zone_id], start=1):
                settings = {
                    "title": {"id": "title", "label": "Method title", "description": "", "type": "text",
                              "value": method["title"], "default": titles.get(method["method_id"], ""),
                              "tip": "", "placeholder": ""},
                    "cost": {"id": "cost", "label": "Cost", "description": "", "type": "text",
                             "value": method["cost"], "default": "", "tip": "", "placeholder": ""},
                }
                result.append({
                    "id": method["instance_id"], "instance_id": method["instance_id"], "title": method["title"],
                    "order": order, "enabled": method["enabled"], "method_id": method["method_id"],
                    "method_title": titles.get(method["method_id"], method["method_id"]),
                    "method_description": "", "settings": settings,
                    "_links": self._links(f"shipping/zones/{zone_id}/methods/{method['instance_id']}",
                                          f"shipping/zones/{zone_id}/methods"),
                })
            return result

    def list_shipping_methods(self) -> list[Record]:
        return [dict(m, _links=self._links(f"shipping_methods/{m['id']}", "shipping_methods"))
                for m in SHIPPING_METHOD_TYPES]

    # -- settings and taxes ---------------------------------------------------------------------

    def setting(self, name: str) -> Any:
        """A setting's current value (its default until someone sets it)."""
        with self.lock:
            if name in self.settings:
                return self.settings[name]
        for options in SETTINGS.values():
            if name in options:
                return options[name][2]
        raise KeyError(name)

    @property
    def taxes_enabled(self) -> bool:
        """`wc_tax_enabled()`: taxes are calculated only once `woocommerce_calc_taxes` is `yes`."""
        return self.setting("woocommerce_calc_taxes") == "yes"

    def setting_json(self, group: str, name: str) -> Record:
        label, kind, default, options = SETTINGS[group][name]
        body = {"id": name, "label": label, "description": "", "type": kind, "default": default, "tip": "",
                "value": self.setting(name), "group_id": group}
        if options is not None:
            body["options"] = dict(options)
        body["_links"] = self._links(f"settings/{group}/{name}", f"settings/{group}")
        return body

    @staticmethod
    def _setting_group(group: str) -> dict[str, Any]:
        if group not in SETTINGS:
            raise _error("rest_setting_setting_group_invalid", "Invalid setting group.", 404)
        return SETTINGS[group]

    def list_settings(self, group: str) -> list[Record]:
        return [self.setting_json(group, name) for name in self._setting_group(group)]

    def get_setting(self, group: str, name: str) -> Record:
        if name not in self._setting_group(group):
            raise _error("rest_setting_setting_invalid", "Invalid setting.", 404)
        return self.setting_json(group, name)

    def update_setting(self, group: str, name: str, data: Record) -> Record:
        """`PUT /settings/<group>/<id>` with `value`, validated the way WooCommerce validates its type."""
        options = self._setting_group(group)
        if name not in options:
            raise _error("rest_setting_setting_invalid", "Invalid setting.", 404)
        _, kind, default, choices = options[name]
        value = data.get("value")
        if kind == "checkbox":
            if value in (None, "", False):
                value = default
            if value not in ("yes", "no"):
                raise _error("rest_setting_value_invalid", "An invalid setting value was passed.", 400)
        elif choices is not None and value not in choices:
            raise _error("rest_setting_value_invalid", "An invalid setting value was passed.", 400)
        elif not isinstance(value, str):
            raise _error("rest_setting_value_invalid", "An invalid setting value was passed.", 400)
        with self.lock:
            self.settings[name] = value
            return self.setting_json(group, name)

    def tax_rate_json(self, rate: Record) -> Record:
        return {"id": rate["id"], "country": rate["country"], "state": rate["state"],
                "postcode": rate["postcodes"][0] if rate["postcodes"] else "",
                "city": rate["cities"][0] if rate["cities"] else "", "postcodes": list(rate["postcodes"]),
                "cities": list(rate["cities"]), "rate": rate["rate"], "name": rate["name"],
                "priority": rate["priority"], "compound": rate["compound"], "shipping": rate["shipping"],
                "order": rate["order"], "class": rate["class"],
                "_links": self._links(f"taxes/{rate['id']}", "taxes")}

    def _apply_tax_rate(self, rate: Record, data: Record) -> None:
        problems = {}
        if "class" in data and data["class"] not in TAX_CLASSES:
            problems["class"] = f"class is not one of {', '.join(TAX_CLASSES)}."
        if "rate" in data and not _SCHEMA_CHECKS["number"](str(data["rate"])):
            problems["rate"] = "rate is not of type string."
        for name in ("priority", "order"):
            if name in data and not _is_integer(data[name]):
                problems[name] = f"{name} is not of type integer."
        if problems:
            raise invalid_params(problems)
        for name in ("country", "state"):
            if name in data:
                rate[name] = str(data[name] or "").strip().upper()
        if "name" in data:
            rate["name"] = str(data["name"] or "")
        if "rate" in data:
            rate["rate"] = format_rate(data["rate"])
        for name in ("priority", "order"):
            if name in data:
                rate[name] = int(data[name])
        for name in ("compound", "shipping"):
            if name in data:
                rate[name] = _to_bool(data[name])
        if "class" in data:
            rate["class"] = data["class"]
        for single, many in (("postcode", "postcodes"), ("city", "cities")):
            if isinstance(data.get(many), list):
                rate[many] = [str(v) for v in data[many] if str(v).strip()]
            elif single in data:
                rate[many] = [v.strip() for v in str(data[single] or "").split(";") if v.strip()]

    def create_tax_rate(self, data: Record) -> Record:
        """`POST /taxes`: a rate for a location and tax class (a shop's VAT is one of these)."""
        with self.lock:
            rate: Record = {"id": next(self._tax_rate_ids), "country": "", "state": "", "postcodes": [], "cities": [],
                            "rate": format_rate(0), "name": "", "priority": 1, "compound": False, "shipping": True,
                            "order": 0, "class": "standard"}
            self._apply_tax_rate(rate, data)
            self.tax_rates.rates[rate["id"]] = rate
            return self.tax_rate_json(rate)

    def _tax_rate(self, rate_id: Any) -> Record:
        rate = self.tax_rates.rates.get(_stock_amount(rate_id))
        if rate is None:
            raise _error("woocommerce_rest_invalid_id", "Invalid resource ID.", 404)
        return rate

    def get_tax_rate(self, rate_id: Any) -> Record:
        with self.lock:
            return self.tax_rate_json(self._tax_rate(rate_id))

    def update_tax_rate(self, rate_id: Any, data: Record) -> Record:
        with self.lock:
            rate = self._tax_rate(rate_id)
            self._apply_tax_rate(rate, data)
            return self.tax_rate_json(rate)

    def delete_tax_rate(self, rate_id: Any, *, force: bool = False) -> Record:
        if not force:
            raise _error("woocommerce_rest_trash_not_supported", "Taxes do not support trashing.", 501)
        with self.lock:
            rate = self._tax_rate(rate_id)
            del self.tax_rates.rates[rate["id"]]
            return self.tax_rate_json(rate)

    def list_tax_rates(self, args: Mapping[str, Any]) -> list[Record]:
        with self.lock:
            rates = list(self.tax_rates.rates.values())
        if args.get("class"):
            rates = [r for r in rates if r["class"] == args["class"]]
        return sorted(rates, key=lambda r: (r["order"], r["id"]))

    def list_tax_classes(self) -> list[Record]:
        return [{"slug": slug, "name": name, "_links": self._links(f"taxes/classes/{slug}", "taxes/classes")}
                for slug, name in TAX_CLASSES.items()]

    # -- webhooks -------------------------------------------------------------------------------

    def webhook_json(self, webhook: Record) -> Record:
        """A webhook as wc/v3 shows it: never its `secret` or `api_version`, whatever the context."""
        resource, _, event = webhook["topic"].partition(".")
        body = {"id": webhook["id"], "name": webhook["name"], "status": webhook["status"], "topic": webhook["topic"],
                "resource": resource, "event": event,
                "hooks": TOPIC_HOOKS.get(webhook["topic"], [event] if resource == "action" else []),
                "delivery_url": webhook["delivery_url"]}
        body.update(self._dates("date_created", webhook["_created"]))
        body.update(self._dates("date_modified", webhook["_modified"]))
        body["_links"] = self._links(f"webhooks/{webhook['id']}", "webhooks")
        return body

    @staticmethod
    def _valid_topic(topic: Any) -> bool:
        resource, _, event = str(topic or "").partition(".")
        if resource == "action":
            return bool(event)
        return resource in WEBHOOK_RESOURCES and event in WEBHOOK_EVENTS

    def _webhook(self, webhook_id: Any, status: int = 404) -> Record:
        webhook = self.webhooks.get(_stock_amount(webhook_id))
        if webhook is None:
            raise _error("woocommerce_rest_webhook_invalid_id", INVALID_ID, status)
        return webhook

    def create_webhook(self, data: Record) -> Record:
        """`POST /webhooks`: saved, then pinged inside the call (201 even when the ping fails)."""
        if not self._valid_topic(data.get("topic")):
            raise _error("woocommerce_rest_webhook_invalid_topic", "Webhook topic is required and must be valid.")
        if not str(data.get("delivery_url") or "").startswith(("http://", "https://")):
            raise _error("woocommerce_rest_webhook_invalid_delivery_url",
                         "Webhook delivery URL must be a valid URL starting with http:// or https://.")
        status = data.get("status") or "active"
        if status not in WEBHOOK_STATUSES:
            raise invalid_params({"status": f"status is not one of {', '.join(WEBHOOK_STATUSES)}."})
        api_version = data.get("api_version") or "wp_api_v3"
        if api_version not in WEBHOOK_API_VERSIONS:
            raise invalid_params({"api_version": f"api_version is not one of {', '.join(WEBHOOK_API_VERSIONS)}."})
        with self.lock:
            now = self.now()
            webhook: Record = {
                "id": next(self._webhook_ids),
                "name": str(data.get("name") or f"Webhook created on {now:%b %d, %Y @ %I:%M %p}"),
                "status": status, "topic": str(data["topic"]), "delivery_url": str(data["delivery_url"]),
                "secret": str(data.get("secret") or secrets.token_urlsafe(38)), "api_version": api_version,
                "failure_count": 0, "pending_delivery": True, "_created": now, "_modified": now}
            self.webhooks[webhook["id"]] = webhook
            body = self.webhook_json(webhook)
        self.deliverer.ping(webhook["id"])
        return body

    def get_webhook(self, webhook_id: Any) -> Record:
        with self.lock:
            return self.webhook_json(self._webhook(webhook_id))

    def update_webhook(self, webhook_id: Any, data: Record) -> Record:
        """`PUT /webhooks/<id>`: re-activation pings again and does not reset the failure count."""
        with self.lock:
            webhook = self._webhook(webhook_id, 400)
            if "topic" in data and not self._valid_topic(data["topic"]):
                raise _error("woocommerce_rest_webhook_invalid_topic", "Webhook topic must be valid.")
            if "status" in data and data["status"] not in WEBHOOK_STATUSES:
                raise invalid_params({"status": f"status is not one of {', '.join(WEBHOOK_STATUSES)}."})
            if "api_version" in data and data["api_version"] not in WEBHOOK_API_VERSIONS:
                raise invalid_params({"api_version": f"api_version is not one of {', '.join(WEBHOOK_API_VERSIONS)}."})
            should_ping = False
            if data.get("delivery_url") and data["delivery_url"] != webhook["delivery_url"]:
                webhook["delivery_url"] = str(data["delivery_url"])
                webhook["pending_delivery"] = True
                should_ping = True
            if data.get("status") == "active" and webhook["status"] != "active":
                webhook["pending_delivery"] = True
                should_ping = True
            for name in ("name", "topic", "status", "secret", "api_version"):
                if data.get(name):
                    webhook[name] = str(data[name])
            webhook["_modified"] = self.now()
            body = self.webhook_json(webhook)
        if should_ping and webhook["status"] == "active":
            self.deliverer.ping(webhook["id"])
        return body

    def delete_webhook(self, webhook_id: Any, *, force: bool = False) -> Record:
        if not force:
            raise _error("woocommerce_rest_trash_not_supported", "Webhooks do not support trashing.", 501)
        with self.lock:
            webhook = self._webhook(webhook_id)
            body = self.webhook_json(webhook)
            del self.webhooks[webhook["id"]]
            return body

    def list_webhooks(self, args: Mapping[str, Any]) -> list[Record]:
        status = args.get("status") or "all"
        with self.lock:
            hooks = [w for w in self.webhooks.values() if status == "all" or w["status"] == status]
            return self._ordered(hooks, args, default="date")

    def set_webhook_status(self, webhook_id: Any, status: str) -> None:
        """Changes a webhook's status directly, as a person in wp-admin would (no REST, no ping)."""
        with self.lock:
            self._webhook(webhook_id)["status"] = status

    def webhook_failure_count(self, webhook_id: Any) -> int:
        """The failure count WooCommerce keeps per webhook (not visible over REST)."""
        with self.lock:
            return self._webhook(webhook_id)["failure_count"]

    def record_delivery_outcome(self, webhook_id: int, ok: bool) -> bool:
        """WooCommerce's bookkeeping after a delivery: reset on success, else count or disable."""
        with self.lock:
            webhook = self.webhooks.get(webhook_id)
            if webhook is None:
                return False
            if ok:
                webhook["failure_count"] = 0
            elif webhook["failure_count"] > self.max_webhook_failures:
                webhook["status"] = "disabled"
            else:
                webhook["failure_count"] += 1
            return webhook["pending_delivery"] and not ok

    def delivery_payload(self, webhook_id: int, resource_id: Any) -> tuple[Record, Record] | None:
        """What a delivery carries, built now: (webhook snapshot, body dict) or None if gone or inactive."""
        with self.lock:
            webhook = self.webhooks.get(webhook_id)
            if webhook is None or webhook["status"] != "active":
                return None
            resource, _, event = webhook["topic"].partition(".")
            if resource == "action":
                body = {"action": event, "arg": resource_id}
            elif event == "deleted":
                body = {"id": resource_id}
            else:
                render = {"order": (self.orders, self.order_json), "product": (self.products, self.product_json),
                          "customer": (self.users, self.customer_json)}.get(resource)
                record = render[0].get(resource_id) if render else None
                body = render[1](record) if render and record is not None else {"id": resource_id}
            if webhook["api_version"] == "legacy_v3" and resource != "action":
                body = {resource: body}
            return dict(webhook), body


def _parse_filter_date(value: Any, name: str) -> datetime.datetime:
    try:
        parsed = datetime.datetime.fromisoformat(str(value))
    except ValueError:
        raise invalid_params({name: f"{name} is not a valid date."}) from None
    return parsed.replace(tzinfo=None)
