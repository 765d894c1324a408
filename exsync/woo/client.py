"""The WooCommerce REST client (wc/v3): what exsync asks of the shop, in pages and batches.

Everything exsync asks of the shop goes through `WooClient`, so the rules the shop imposes live in
one place. How each request travels (authentication, pacing, retries, `Retry-After`, errors) is
`WooTransport`'s (transport.py), which `WooClient` extends with the API's vocabulary: page URLs
built from `X-WP-TotalPages` (the `Link` header can carry the wrong scheme or port), batches of at
most 100 items with each item's own answer, and one method per resource exsync uses.
"""

import dataclasses
import datetime
import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Self

import requests

from exsync.errors import ConfigError
from exsync.metrics import Metrics
from exsync.woo.auth import DEFAULT_SIGNATURE_METHOD
from exsync.woo.dates import format_wc_datetime, parse_wc_gmt
from exsync.woo.errors import WooBatchTooLarge, WooError, WooProtocolError, api_error_from
from exsync.woo.ratelimit import SharedTokenBucket
from exsync.woo.transport import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_REQUESTS_PER_SECOND,
    DEFAULT_TIMEOUT_SECONDS,
    WP_USERS_PATH,
    WooResponse,
    WooTransport,
    normalise_route,
)

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_REQUESTS_PER_SECOND",
    "DEFAULT_TIMEOUT_SECONDS",
    "MAX_BATCH_ITEMS",
    "MAX_PER_PAGE",
    "BatchItemResult",
    "BatchResult",
    "Page",
    "WooClient",
    "WooResponse",
    "normalise_route",
]

if TYPE_CHECKING:
    from exsync.config import Settings

log = logging.getLogger(__name__)

# A WooCommerce resource as its JSON decodes (an order, a product, a webhook ...).
JsonObject = dict[str, Any]

MAX_PER_PAGE = 100
MAX_BATCH_ITEMS = 100
BATCH_ACTIONS = ("create", "update", "delete")


@dataclasses.dataclass(frozen=True)
class Page:
    """One page of a list, with the totals the shop reported for the whole list."""

    items: list[JsonObject]
    page: int
    total: int
    total_pages: int


@dataclasses.dataclass(frozen=True)
class BatchItemResult:
    """The shop's answer for one batch item: its JSON (`body`) or the error it gave (`error`)."""

    action: str
    index: int
    request: object
    body: dict | None = None
    error: WooError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclasses.dataclass(frozen=True)
class BatchResult:
    """Every item's answer, in the order the caller gave them (creates, then updates, then deletes)."""

    items: list[BatchItemResult]

    @property
    def ok(self) -> bool:
        return all(item.ok for item in self.items)

    @property
    def failed(self) -> list[BatchItemResult]:
        return [item for item in self.items if not item.ok]

    def for_action(self, action: str) -> list[BatchItemResult]:
        return [item for item in self.items if item.action == action]


def _connect_state(settings):
    """exsync's state database, where the deployment's shop budget is kept."""
    from exsync.exchequer.db import connect
    from exsync.exchequer.options import mapping_for

    return connect(settings.state_dsn, mapping=mapping_for(settings.config))


class WooClient(WooTransport):
    """A client for one shop's wc/v3 API; thread-safe. `batch_limit` caps the items per batch request
    (never above WooCommerce's default 100); every other option is the transport's."""

    def __init__(self, *, batch_limit: int = MAX_BATCH_ITEMS, **options: Any) -> None:
        super().__init__(**options)
        self.batch_limit = min(batch_limit, MAX_BATCH_ITEMS)

    @classmethod
    def from_settings(cls, settings: "Settings", *, metrics: Metrics | None = None, **overrides: Any) -> Self:
        """A client for the shop the settings name, tuned by the `shop:` section of the config."""
        shop = settings.config.get("shop", {})
        missing = [name for name, value in (("EXSYNC_WOO_URL", settings.woo_url),
                                            ("EXSYNC_WOO_CONSUMER_KEY", settings.woo_consumer_key),
                                            ("EXSYNC_WOO_CONSUMER_SECRET", settings.woo_consumer_secret)) if not value]
        if missing:
            raise ConfigError([(name, "is required to talk to the shop") for name in missing])
        requests_per_second = shop.get("requests_per_second", DEFAULT_REQUESTS_PER_SECOND)
        state_dsn = getattr(settings, "state_dsn", None)
        bucket = None
        if state_dsn:
            bucket = SharedTokenBucket(connect=lambda: _connect_state(settings), shop=settings.woo_url,
                                       rate_per_second=requests_per_second)
        options = {
            "url": settings.woo_url,
            "consumer_key": settings.woo_consumer_key,
            "consumer_secret": settings.woo_consumer_secret,
            "timeout_seconds": shop.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS),
            "requests_per_second": requests_per_second,
            "bucket": bucket,
            "max_attempts": shop.get("max_attempts", DEFAULT_MAX_ATTEMPTS),
            "verify": shop.get("ca_bundle") or shop.get("verify_tls", True),
            "signature_method": shop.get("oauth_signature_method", DEFAULT_SIGNATURE_METHOD),
            "metrics": metrics,
        }
        options.update(overrides)
        return cls(**options)

    # -- lists ----------------------------------------------------------------------------------

    def list_page(self, route: str, *, page: int = 1, per_page: int = MAX_PER_PAGE,
                  params: dict[str, Any] | None = None) -> Page:
        """One page of a list endpoint, with the shop's totals."""
        query = dict(params or {}, page=page, per_page=per_page)
        response = self.request("GET", route, params=query)
        items = response.body if isinstance(response.body, list) else []
        total = int(response.headers.get("X-WP-Total") or len(items))
        pages_header = response.headers.get("X-WP-TotalPages")
        if pages_header is not None:
            total_pages = int(pages_header)
        else:
            total_pages = page + 1 if len(items) >= per_page else page
        return Page(items=items, page=page, total=total, total_pages=total_pages)

    def iter_pages(self, route: str, *, params: dict[str, Any] | None = None,
                   per_page: int = MAX_PER_PAGE) -> Iterator[Page]:
        """Every page, requested by number up to the latest `X-WP-TotalPages` (never via `Link`)."""
        page = 1
        while True:
            result = self.list_page(route, page=page, per_page=per_page, params=params)
            if result.items:
                yield result
            if not result.items or page >= result.total_pages:
                return
            page += 1

    def iter_all(self, route: str, *, params: dict[str, Any] | None = None,
                 per_page: int = MAX_PER_PAGE) -> Iterator[JsonObject]:
        """Every item of a list endpoint, across all pages."""
        for page in self.iter_pages(route, params=params, per_page=per_page):
            yield from page.items

    # -- batches --------------------------------------------------------------------------------

    def batch(self, route: str, *, create: Iterable[Any] = (), update: Iterable[Any] = (),
              delete: Iterable[Any] = ()) -> BatchResult:
        """Sends create/update/delete items in requests of at most `batch_limit` items together.

        Returns every item's answer; a failed request marks its items with the error, and a failure
        that may pass (after retries) also marks the items not yet sent rather than hammering on.
        """
        operations = [(action, index, item)
                      for action, items in (("create", create), ("update", update), ("delete", delete))
                      for index, item in enumerate(items)]
        results: list[BatchItemResult] = []
        endpoint = normalise_route(route)
        limit = self.batch_limit
        position = 0
        while position < len(operations):
            chunk = operations[position:position + limit]
            payload = {action: [item for act, _, item in chunk if act == action]
                       for action in BATCH_ACTIONS if any(act == action for act, _, _ in chunk)}
            try:
                response = self.request("POST", route, json=payload,
                                        idempotent=not any(act == "create" for act, _, _ in chunk))
            except WooBatchTooLarge as error:
                if limit > 1:
                    # The shop's `woocommerce_rest_batch_items_limit` is lower than ours: halve and go on.
                    limit = max(1, limit // 2)
                    log.warning("shop refused a batch of %d items; sending %d at a time", len(chunk), limit)
                    continue
                results.extend(BatchItemResult(action=a, index=i, request=item, error=error) for a, i, item in chunk)
                position += len(chunk)
                continue
            except WooError as error:
                stop = error.retryable
                failed = operations[position:] if stop else chunk
                results.extend(BatchItemResult(action=a, index=i, request=item, error=error) for a, i, item in failed)
                position += len(failed)
                if stop:
                    break
                continue
            results.extend(self._match_answers(chunk, response.body))
            position += len(chunk)
        for item in results:
            self.metrics.inc("woo_batch_items", endpoint=endpoint, outcome="ok" if item.ok else "error")
        return BatchResult(items=results)

    @staticmethod
    def _match_answers(chunk, body):
        """Pairs each sent item with the answer in the same position of the same action's list."""
        answers = {action: list((body or {}).get(action) or []) for action in BATCH_ACTIONS}
        results = []
        for action, index, item in chunk:
            queue = answers[action]
            if not queue:
                results.append(BatchItemResult(action=action, index=index, request=item,
                                               error=WooProtocolError(f"the shop gave no answer for a {action} item")))
                continue
            answer = queue.pop(0)
            error = answer.get("error") if isinstance(answer, dict) else None
            if error:
                data = error.get("data") if isinstance(error.get("data"), dict) else {}
                results.append(BatchItemResult(action=action, index=index, request=item, body=answer,
                                               error=api_error_from(status=int(data.get("status") or 400),
                                                                    body=error)))
            else:
                results.append(BatchItemResult(action=action, index=index, request=item, body=answer))
        return results

    # -- orders ---------------------------------------------------------------------------------

    def get_order(self, order_id: int) -> JsonObject:
        return self.get(f"orders/{int(order_id)}")

    def create_order(self, order: JsonObject) -> JsonObject:
        return self.request("POST", "orders", json=order).body

    def update_order(self, order_id: int, changes: JsonObject) -> JsonObject:
        return self.request("PUT", f"orders/{int(order_id)}", json=changes).body

    def update_order_status(self, order_id: int, status: str) -> JsonObject:
        return self.update_order(order_id, {"status": status})

    def iter_order_pages(self, *, params: dict[str, Any] | None = None) -> Iterator[Page]:
        """Pages of orders, by page number."""
        return self.iter_pages("orders", params=params)

    def iter_orders(self, *, params: dict[str, Any] | None = None) -> Iterator[JsonObject]:
        for page in self.iter_order_pages(params=params):
            yield from page.items

    def iter_modified_orders(self, *, modified_after: datetime.datetime,
                             per_page: int = MAX_PER_PAGE) -> Iterator[list[JsonObject]]:
        """Batches of orders modified after `modified_after` (UTC), oldest first, each version once.

        Walks by modification time rather than page number: an order modified during the walk moves
        to the end of the list, which would shift an unseen one back across a page boundary. Each
        query restarts one second before the last modification seen (WooCommerce keeps whole
        seconds), skipping what was already yielded; only a single second holding more than a page
        of orders falls back to page numbers. `dates_are_gmt` matters: without it WooCommerce
        compares against the site's local times.
        """
        bound, page = modified_after, 1
        seen: set[tuple[int, str | None]] = set()
        while True:
            result = self.list_page("orders", page=page, per_page=per_page, params={
                "modified_after": format_wc_datetime(bound), "dates_are_gmt": "true", "orderby": "modified",
                "order": "asc"})
            fresh = [order for order in result.items if (order["id"], order.get("date_modified_gmt")) not in seen]
            seen.update((order["id"], order.get("date_modified_gmt")) for order in fresh)
            if fresh:
                yield fresh
            if len(result.items) < per_page:
                return
            next_bound = parse_wc_gmt(result.items[-1]["date_modified_gmt"]) - datetime.timedelta(seconds=1)
            if next_bound > bound:
                bound, page = next_bound, 1
            else:
                page += 1

    def order_status_totals(self) -> list[JsonObject]:
        """Every order status the shop knows (custom ones included), with counts."""
        return self.get("reports/orders/totals")

    def add_order_note(self, order_id: int, note: str, *, customer_note: bool = False) -> JsonObject:
        """Adds a note; with customer_note the customer sees it and WooCommerce emails them."""
        return self.request("POST", f"orders/{int(order_id)}/notes",
                            json={"note": note, "customer_note": bool(customer_note)}).body

    def list_order_notes(self, order_id: int) -> list[JsonObject]:
        return self.get(f"orders/{int(order_id)}/notes")

    def create_refund(self, order_id: int, *, amount: Any, reason: str = "", line_items: list[JsonObject] | None = None,
                      api_refund: bool = False) -> JsonObject:
        """Records a refund; `api_refund` stays false by default (offline gateways answer 500 otherwise)."""
        body = {"amount": str(amount), "reason": reason, "api_refund": bool(api_refund)}
        if line_items is not None:
            body["line_items"] = line_items
        return self.request("POST", f"orders/{int(order_id)}/refunds", json=body).body

    def batch_orders(self, *, create: Iterable[Any] = (), update: Iterable[Any] = (),
                     delete: Iterable[Any] = ()) -> BatchResult:
        return self.batch("orders/batch", create=create, update=update, delete=delete)

    # -- products -------------------------------------------------------------------------------

    def get_product(self, product_id: int) -> JsonObject:
        return self.get(f"products/{int(product_id)}")

    def list_products_page(self, *, page: int = 1, per_page: int = MAX_PER_PAGE,
                           params: dict[str, Any] | None = None) -> Page:
        return self.list_page("products", page=page, per_page=per_page, params=params)

    def iter_products(self, *, params: dict[str, Any] | None = None) -> Iterator[JsonObject]:
        return self.iter_all("products", params=params)

    def products_by_sku(self, skus: Iterable[str]) -> dict[str, JsonObject]:
        """Maps each SKU found to its product (exact matches, `?sku=a,b`, 100 SKUs per request)."""
        wanted = list(dict.fromkeys(sku for sku in skus if sku))
        found = {}
        for start in range(0, len(wanted), MAX_PER_PAGE):
            chunk = wanted[start:start + MAX_PER_PAGE]
            for product in self.iter_all("products", params={"sku": ",".join(chunk)}):
                if product.get("sku") in chunk:
                    found[product["sku"]] = product
        return found

    def create_product(self, product: JsonObject) -> JsonObject:
        return self.request("POST", "products", json=product).body

    def update_product(self, product_id: int, changes: JsonObject) -> JsonObject:
        return self.request("PUT", f"products/{int(product_id)}", json=changes).body

    def batch_products(self, *, create: Iterable[Any] = (), update: Iterable[Any] = (),
                       delete: Iterable[Any] = ()) -> BatchResult:
        return self.batch("products/batch", create=create, update=update, delete=delete)

    # -- categories -----------------------------------------------------------------------------

    def iter_categories(self, *, params: dict[str, Any] | None = None) -> Iterator[JsonObject]:
        return self.iter_all("products/categories", params=params)

    def create_category(self, *, name: str, parent: int = 0, slug: str | None = None) -> JsonObject:
        body = {"name": name, "parent": int(parent)}
        if slug:
            body["slug"] = slug
        return self.request("POST", "products/categories", json=body).body

    # -- customers ------------------------------------------------------------------------------

    def get_customer(self, customer_id: int) -> JsonObject:
        return self.get(f"customers/{int(customer_id)}")

    def iter_customers(self, *, role: str = "all", params: dict[str, Any] | None = None) -> Iterator[JsonObject]:
        """Customers of `role` (`all` by default: the shop's own default lists only `customer`)."""
        return self.iter_all("customers", params=dict(params or {}, role=role))

    def create_customer(self, customer: JsonObject) -> JsonObject:
        return self.request("POST", "customers", json=customer).body

    def update_customer(self, customer_id: int, changes: JsonObject) -> JsonObject:
        return self.request("PUT", f"customers/{int(customer_id)}", json=changes).body

    def batch_customers(self, *, create: Iterable[Any] = (), update: Iterable[Any] = (),
                        delete: Iterable[Any] = ()) -> BatchResult:
        return self.batch("customers/batch", create=create, update=update, delete=delete)

    def set_user_roles(self, user_id: int, roles: Iterable[str], *, username: str,
                       application_password: str) -> JsonObject:
        """Changes a user's roles through WordPress (wc/v3 treats `role` as read-only).

        WordPress wants an application password here, not the WooCommerce consumer key.
        """
        endpoint = "wp/v2/users/{id}"
        return self._send("POST", self.url + WP_USERS_PATH + str(int(user_id)), endpoint, params=None,
                          json={"roles": list(roles)}, auth=requests.auth.HTTPBasicAuth(username, application_password),
                          idempotent=True).body

    # -- shipping -------------------------------------------------------------------------------

    def list_shipping_zones(self) -> list[JsonObject]:
        return self.get("shipping/zones")

    def list_shipping_zone_methods(self, zone_id: int) -> list[JsonObject]:
        return self.get(f"shipping/zones/{int(zone_id)}/methods")

    def list_shipping_methods(self) -> list[JsonObject]:
        return self.get("shipping_methods")

    # -- webhooks -------------------------------------------------------------------------------

    def iter_webhooks(self, *, status: str = "all") -> Iterator[JsonObject]:
        return self.iter_all("webhooks", params={"status": status})

    def get_webhook(self, webhook_id: int) -> JsonObject:
        return self.get(f"webhooks/{int(webhook_id)}")

    def create_webhook(self, webhook: JsonObject) -> JsonObject:
        return self.request("POST", "webhooks", json=webhook).body

    def update_webhook(self, webhook_id: int, changes: JsonObject) -> JsonObject:
        return self.request("PUT", f"webhooks/{int(webhook_id)}", json=changes).body

    def delete_webhook(self, webhook_id: int) -> JsonObject:
        return self.request("DELETE", f"webhooks/{int(webhook_id)}", params={"force": "true"}).body
