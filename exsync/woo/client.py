"""The WooCommerce REST client (wc/v3): authentication, pacing, retries, pages and batches.

Everything exsync asks of the shop goes through `WooClient`, so the rules the shop imposes live in
one place: Basic over HTTPS or OAuth 1.0a over HTTP, at most `requests_per_second` (for the whole
deployment when made `from_settings`: see `ratelimit`), back-off with jitter on 429/5xx/transport
errors, a `Retry-After` pausing every request of the process to that shop (and, through the shared
budget, of the deployment), never a retry on other 4xx, page URLs
built from `X-WP-TotalPages` (the `Link` header can carry the wrong scheme or port), and batches
of at most 100 items with each item's own answer.
"""

import dataclasses
import datetime
import email.utils
import logging
import random
import re
import time
from collections.abc import Callable

import requests
import tenacity
import urllib3

from exsync.errors import ConfigError
from exsync.metrics import Metrics
from exsync.redact import redact
from exsync.woo.auth import DEFAULT_SIGNATURE_METHOD, DEFAULT_SIGNATURE_TYPE, auth_for
from exsync.woo.dates import format_wc_datetime, parse_wc_gmt
from exsync.woo.errors import (
    WooBatchTooLarge,
    WooError,
    WooProtocolError,
    WooTransportError,
    api_error_from,
)
from exsync.woo.ratelimit import SharedTokenBucket, TokenBucket, pause_for

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

log = logging.getLogger(__name__)

API_PATH = "/wp-json/wc/v3/"
WP_USERS_PATH = "/wp-json/wp/v2/users/"
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_REQUESTS_PER_SECOND = 5.0
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_BACKOFF_INITIAL_SECONDS = 0.5
DEFAULT_BACKOFF_MAX_SECONDS = 30.0
DEFAULT_MAX_RETRY_AFTER_SECONDS = 120.0
MAX_PER_PAGE = 100
MAX_BATCH_ITEMS = 100
BATCH_ACTIONS = ("create", "update", "delete")
# Answers whose Retry-After speaks for the host as a whole (rate limit, maintenance), not one request.
PAUSING_STATUSES = (429, 503)

_ID_SEGMENT = re.compile(r"^\d+$")


def normalise_route(route):
    """The metric label for a route: numeric segments become `{id}` so no id ever becomes a label."""
    path = route.split("?", 1)[0].strip("/")
    return "/".join("{id}" if _ID_SEGMENT.match(part) else part for part in path.split("/"))


def _retry_after_seconds(value):
    """Reads `Retry-After` as seconds (it may be a number or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _refused(error):
    """True when the connection was never made, so the request cannot have reached the shop."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


@dataclasses.dataclass(frozen=True)
class WooResponse:
    """One successful answer: status, headers (case-insensitive) and the decoded JSON body."""

    status: int
    headers: requests.structures.CaseInsensitiveDict
    body: object


@dataclasses.dataclass(frozen=True)
class Page:
    """One page of a list, with the totals the shop reported for the whole list."""

    items: list
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
    def ok(self):
        return self.error is None


@dataclasses.dataclass(frozen=True)
class BatchResult:
    """Every item's answer, in the order the caller gave them (creates, then updates, then deletes)."""

    items: list

    @property
    def ok(self):
        return all(item.ok for item in self.items)

    @property
    def failed(self):
        return [item for item in self.items if not item.ok]

    def for_action(self, action):
        return [item for item in self.items if item.action == action]


def _connect_state(settings):
    """exsync's state database, where the deployment's shop budget is kept."""
    from exsync.exchequer.db import connect
    from exsync.exchequer.options import mapping_for

    return connect(settings.state_dsn, mapping=mapping_for(settings.config))


class WooClient:
    """A client for one shop's wc/v3 API; thread-safe, one token bucket shared by every thread."""

    def __init__(
        self,
        *,
        url,
        consumer_key,
        consumer_secret,
        timeout_seconds=DEFAULT_TIMEOUT_SECONDS,
        requests_per_second=DEFAULT_REQUESTS_PER_SECOND,
        burst=None,
        max_attempts=DEFAULT_MAX_ATTEMPTS,
        backoff_initial_seconds=DEFAULT_BACKOFF_INITIAL_SECONDS,
        backoff_max_seconds=DEFAULT_BACKOFF_MAX_SECONDS,
        max_retry_after_seconds=DEFAULT_MAX_RETRY_AFTER_SECONDS,
        verify=True,
        signature_method=DEFAULT_SIGNATURE_METHOD,
        signature_type=DEFAULT_SIGNATURE_TYPE,
        batch_limit=MAX_BATCH_ITEMS,
        metrics=None,
        session=None,
        bucket=None,
    ):
        if not url:
            raise ValueError("the shop URL is required")
        self.url = url.rstrip("/")
        self.api_url = self.url + API_PATH
        self.timeout_seconds = timeout_seconds
        self.max_attempts = max_attempts
        self.backoff_initial_seconds = backoff_initial_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.max_retry_after_seconds = max_retry_after_seconds
        self.verify = verify
        self.batch_limit = min(batch_limit, MAX_BATCH_ITEMS)
        self.metrics = metrics or Metrics()
        # What a transport error's text must never show: requests quotes the signed URL in it.
        self._secrets = tuple(secret for secret in (consumer_key, consumer_secret) if secret)
        self._auth = auth_for(url=self.url, consumer_key=consumer_key, consumer_secret=consumer_secret,
                              signature_method=signature_method, signature_type=signature_type)
        # `bucket`: the deployment's shared budget (from_settings), else this client's own.
        self._bucket = bucket or TokenBucket(rate_per_second=requests_per_second, burst=burst)
        self._pause = pause_for(self.url)
        self._session = session or requests.Session()
        self._session.headers.setdefault("Accept", "application/json")
        # Called with each error about to be retried (on the thread that sent it): how a caller keeping
        # several requests in flight hears of 429/503/timeouts the retries hide from its results.
        self.retry_listeners: list[Callable[[WooError], None]] = []

    @classmethod
    def from_settings(cls, settings, *, metrics=None, **overrides):
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

    def close(self):
        self._session.close()
        self._bucket.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the HTTP layer -------------------------------------------------------------------------

    def request(self, method, route, *, params=None, json=None, idempotent=None):
        """Sends one wc/v3 call (retrying what may pass) and returns the WooResponse.

        `idempotent` says whether the call may be repeated after a read timeout, when the shop may
        already have applied it; it defaults to true for everything but POST.
        """
        return self._send(method, self.api_url + route.lstrip("/"), normalise_route(route), params=params,
                          json=json, auth=self._auth,
                          idempotent=method.upper() != "POST" if idempotent is None else idempotent)

    def _send(self, method, url, endpoint, *, params, json, auth, idempotent):
        def should_retry(error):
            if not isinstance(error, WooError) or not error.retryable:
                return False
            if isinstance(error, WooTransportError) and error.sent and not idempotent:
                return False
            # A Retry-After longer than we are willing to block is the caller's to schedule.
            return error.retry_after_seconds is None or error.retry_after_seconds <= self.max_retry_after_seconds

        def before_sleep(retry_state):
            error = retry_state.outcome.exception()
            reason = "transport" if isinstance(error, WooTransportError) else str(error.status)
            self.metrics.inc("woo_request_retries", endpoint=endpoint, reason=reason)
            for listener in self.retry_listeners:
                listener(error)
            log.warning("shop %s %s failed (%s); attempt %d of %d", method, endpoint, error,
                        retry_state.attempt_number, self.max_attempts)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            retry=tenacity.retry_if_exception(should_retry),
            wait=self._wait_seconds,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(self._attempt, method, url, endpoint, params, json, auth)

    def _wait_seconds(self, retry_state):
        error = retry_state.outcome.exception()
        ceiling = min(self.backoff_max_seconds,
                      self.backoff_initial_seconds * 2 ** (retry_state.attempt_number - 1))
        if error is not None and error.retry_after_seconds is not None:
            # At least what the host asked for, plus a little jitter so parallel clients spread out.
            return error.retry_after_seconds + random.uniform(0, min(1.0, 0.1 * error.retry_after_seconds))
        return random.uniform(0, ceiling)

    def _pause_all(self, error):
        """A 429/503 with Retry-After holds every request of the process (and the deployment) to the shop."""
        if error.status in PAUSING_STATUSES and error.retry_after_seconds:
            seconds = min(error.retry_after_seconds, self.max_retry_after_seconds)
            self._pause.extend(seconds)
            self._bucket.pause(seconds)

    def _attempt(self, method, url, endpoint, params, json, auth):
        self._pause.wait()
        self._bucket.acquire()
        # A pause that began while this request waited for its token holds it too.
        self._pause.wait()
        started = time.monotonic()
        status_label = "error"
        try:
            try:
                response = self._session.request(method, url, params=params, json=json, auth=auth,
                                                 timeout=self.timeout_seconds, verify=self.verify,
                                                 allow_redirects=False)
            except requests.exceptions.SSLError as error:
                failure = WooTransportError(f"TLS with {self.url} failed: {self._redacted(error)}", sent=False)
                failure.retryable = False
                raise failure from error
            except requests.exceptions.ReadTimeout as error:
                raise WooTransportError(f"{self.url} did not answer within {self.timeout_seconds} s",
                                        sent=True) from error
            except requests.exceptions.ConnectionError as error:
                raise WooTransportError(f"cannot reach {self.url}: {self._redacted(error)}",
                                        sent=not _refused(error)) from error
            except requests.exceptions.RequestException as error:
                raise WooTransportError(f"request to {self.url} failed: {self._redacted(error)}",
                                        sent=True) from error
            status_label = str(response.status_code)
            try:
                return self._read(response)
            except WooError as error:
                self._pause_all(error)
                raise
        finally:
            self.metrics.observe("woo_request_duration_seconds", time.monotonic() - started,
                                 method=method, endpoint=endpoint)
            self.metrics.inc("woo_requests", method=method, endpoint=endpoint, status=status_label)

    def _redacted(self, text):
        return redact(text, secrets=self._secrets)

    def _read(self, response):
        status = response.status_code
        try:
            body = response.json() if response.content else None
            decoded = True
        except ValueError:
            body, decoded = None, False
        if 200 <= status < 300:
            if not decoded:
                raise WooProtocolError(f"the shop answered {status} with a body that is not JSON "
                                       f"({response.headers.get('Content-Type')})", status=status)
            return WooResponse(status=status, headers=response.headers, body=body)
        if 300 <= status < 400:
            location = self._redacted(response.headers.get("Location"))
            raise WooProtocolError(f"the shop redirected to {location!r}; "
                                   "check the shop URL's scheme and host", status=status)
        raise api_error_from(status=status, body=body,
                             retry_after_seconds=_retry_after_seconds(response.headers.get("Retry-After")))

    def get(self, route, **params):
        return self.request("GET", route, params=params or None).body

    # -- lists ----------------------------------------------------------------------------------

    def list_page(self, route, *, page=1, per_page=MAX_PER_PAGE, params=None):
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

    def iter_pages(self, route, *, params=None, per_page=MAX_PER_PAGE):
        """Every page, requested by number up to the latest `X-WP-TotalPages` (never via `Link`)."""
        page = 1
        while True:
            result = self.list_page(route, page=page, per_page=per_page, params=params)
            if result.items:
                yield result
            if not result.items or page >= result.total_pages:
                return
            page += 1

    def iter_all(self, route, *, params=None, per_page=MAX_PER_PAGE):
        """Every item of a list endpoint, across all pages."""
        for page in self.iter_pages(route, params=params, per_page=per_page):
            yield from page.items

    # -- batches --------------------------------------------------------------------------------

    def batch(self, route, *, create=(), update=(), delete=()):
        """Sends create/update/delete items in requests of at most `batch_limit` items together.

        Returns every item's answer; a failed request marks its items with the error, and a failure
        that may pass (after retries) also marks the items not yet sent rather than hammering on.
        """
        operations = [(action, index, item)
                      for action, items in (("create", create), ("update", update), ("delete", delete))
                      for index, item in enumerate(items)]
        results = []
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

    def get_order(self, order_id):
        return self.get(f"orders/{int(order_id)}")

    def create_order(self, order):
        return self.request("POST", "orders", json=order).body

    def update_order(self, order_id, changes):
        return self.request("PUT", f"orders/{int(order_id)}", json=changes).body

    def update_order_status(self, order_id, status):
        return self.update_order(order_id, {"status": status})

    def iter_order_pages(self, *, params=None):
        """Pages of orders, by page number."""
        return self.iter_pages("orders", params=params)

    def iter_orders(self, *, params=None):
        for page in self.iter_order_pages(params=params):
            yield from page.items

    def iter_modified_orders(self, *, modified_after, per_page=MAX_PER_PAGE):
        """Batches of orders modified after `modified_after` (UTC), oldest first, each version once.

        Walks by modification time rather than page number: an order modified during the walk moves
        to the end of the list, which would shift an unseen one back across a page boundary. Each
        query restarts one second before the last modification seen (WooCommerce keeps whole
        seconds), skipping what was already yielded; only a single second holding more than a page
        of orders falls back to page numbers. `dates_are_gmt` matters: without it WooCommerce
        compares against the site's local times.
        """
        bound, page, seen = modified_after, 1, set()
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

    def order_status_totals(self):
        """Every order status the shop knows (custom ones included), with counts."""
        return self.get("reports/orders/totals")

    def add_order_note(self, order_id, note, *, customer_note=False):
        """Adds a note; with customer_note the customer sees it and WooCommerce emails them."""
        return self.request("POST", f"orders/{int(order_id)}/notes",
                            json={"note": note, "customer_note": bool(customer_note)}).body

    def list_order_notes(self, order_id):
        return self.get(f"orders/{int(order_id)}/notes")

    def create_refund(self, order_id, *, amount, reason="", line_items=None, api_refund=False):
        """Records a refund; `api_refund` stays false by default (offline gateways answer 500 otherwise)."""
        body = {"amount": str(amount), "reason": reason, "api_refund": bool(api_refund)}
        if line_items is not None:
            body["line_items"] = line_items
        return self.request("POST", f"orders/{int(order_id)}/refunds", json=body).body

    def batch_orders(self, *, create=(), update=(), delete=()):
        return self.batch("orders/batch", create=create, update=update, delete=delete)

    # -- products -------------------------------------------------------------------------------

    def get_product(self, product_id):
        return self.get(f"products/{int(product_id)}")

    def list_products_page(self, *, page=1, per_page=MAX_PER_PAGE, params=None):
        return self.list_page("products", page=page, per_page=per_page, params=params)

    def iter_products(self, *, params=None):
        return self.iter_all("products", params=params)

    def products_by_sku(self, skus):
        """Maps each SKU found to its product (exact matches, `?sku=a,b`, 100 SKUs per request)."""
        wanted = list(dict.fromkeys(sku for sku in skus if sku))
        found = {}
        for start in range(0, len(wanted), MAX_PER_PAGE):
            chunk = wanted[start:start + MAX_PER_PAGE]
            for product in self.iter_all("products", params={"sku": ",".join(chunk)}):
                if product.get("sku") in chunk:
                    found[product["sku"]] = product
        return found

    def create_product(self, product):
        return self.request("POST", "products", json=product).body

    def update_product(self, product_id, changes):
        return self.request("PUT", f"products/{int(product_id)}", json=changes).body

    def batch_products(self, *, create=(), update=(), delete=()):
        return self.batch("products/batch", create=create, update=update, delete=delete)

    # -- categories -----------------------------------------------------------------------------

    def iter_categories(self, *, params=None):
        return self.iter_all("products/categories", params=params)

    def create_category(self, *, name, parent=0, slug=None):
        body = {"name": name, "parent": int(parent)}
        if slug:
            body["slug"] = slug
        return self.request("POST", "products/categories", json=body).body

    # -- customers ------------------------------------------------------------------------------

    def get_customer(self, customer_id):
        return self.get(f"customers/{int(customer_id)}")

    def iter_customers(self, *, role="all", params=None):
        """Customers of `role` (`all` by default: the shop's own default lists only `customer`)."""
        return self.iter_all("customers", params=dict(params or {}, role=role))

    def create_customer(self, customer):
        return self.request("POST", "customers", json=customer).body

    def update_customer(self, customer_id, changes):
        return self.request("PUT", f"customers/{int(customer_id)}", json=changes).body

    def batch_customers(self, *, create=(), update=(), delete=()):
        return self.batch("customers/batch", create=create, update=update, delete=delete)

    def set_user_roles(self, user_id, roles, *, username, application_password):
        """Changes a user's roles through WordPress (wc/v3 treats `role` as read-only).

        WordPress wants an application password here, not the WooCommerce consumer key.
        """
        endpoint = "wp/v2/users/{id}"
        return self._send("POST", self.url + WP_USERS_PATH + str(int(user_id)), endpoint, params=None,
                          json={"roles": list(roles)}, auth=requests.auth.HTTPBasicAuth(username, application_password),
                          idempotent=True).body

    # -- shipping -------------------------------------------------------------------------------

    def list_shipping_zones(self):
        return self.get("shipping/zones")

    def list_shipping_zone_methods(self, zone_id):
        return self.get(f"shipping/zones/{int(zone_id)}/methods")

    def list_shipping_methods(self):
        return self.get("shipping_methods")

    # -- webhooks -------------------------------------------------------------------------------

    def iter_webhooks(self, *, status="all"):
        return self.iter_all("webhooks", params={"status": status})

    def get_webhook(self, webhook_id):
        return self.get(f"webhooks/{int(webhook_id)}")

    def create_webhook(self, webhook):
        return self.request("POST", "webhooks", json=webhook).body

    def update_webhook(self, webhook_id, changes):
        return self.request("PUT", f"webhooks/{int(webhook_id)}", json=changes).body

    def delete_webhook(self, webhook_id):
        return self.request("DELETE", f"webhooks/{int(webhook_id)}", params={"force": "true"}).body

