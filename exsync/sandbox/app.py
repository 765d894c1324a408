"""The sandbox shop's HTTP face: WooCommerce's wc/v3 routes (and WordPress's `/wp/v2/users`) as WSGI.

Each request runs the way it does on a WordPress host: configured latency first (and any injected
fault, e.g. a firewall's 429 with `Retry-After`), then authentication, then parameter validation,
then the handler. Answers are PHP-style JSON with WooCommerce's error bodies and list headers.
"""

import collections
import dataclasses
import logging
import math
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.wrappers import Request, Response

from exsync.sandbox.errors import SandboxRestError
from exsync.sandbox.phpjson import php_json_dumps
from exsync.sandbox.routes import API_PREFIX, url_map
from exsync.sandbox.shop import Record, invalid_params
from exsync.sandbox.workers import WorkerPool

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from exsync.sandbox.shop import SandboxShop

__all__ = ["API_PREFIX", "LoggedRequest", "SandboxApp"]

log = logging.getLogger(__name__)

MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 10
DEFAULT_REQUEST_LOG_ENTRIES = 100_000

_CANNOT = {"GET": ("woocommerce_rest_cannot_view", "Sorry, you cannot list resources."),
           "POST": ("woocommerce_rest_cannot_create", "Sorry, you are not allowed to create resources."),
           "PUT": ("woocommerce_rest_cannot_edit", "Sorry, you are not allowed to edit this resource."),
           "PATCH": ("woocommerce_rest_cannot_edit", "Sorry, you are not allowed to edit this resource."),
           "DELETE": ("woocommerce_rest_cannot_delete", "Sorry, you are not allowed to delete this resource.")}


def _error_response(error: SandboxRestError) -> Response:
    data = error.data if error.data is not None and not isinstance(error.data, dict) \
        else dict({"status": error.status}, **(error.data or {}))
    return Response(php_json_dumps({"code": error.code, "message": error.message, "data": data}),
                    status=error.status, content_type="application/json; charset=UTF-8")


def _force(args: Mapping[str, Any]) -> bool:
    return str(args.get("force", "")).lower() in ("1", "true", "yes")


# What a route handler answers: a JSON body (200), or (status, body, headers).
Answer = Record | list[Record] | tuple[int, Record | list[Record], dict[str, str]]


class _FirewallPage(Response):
    """A proxy's page, as a firewall or rate limiter answers: WordPress never saw the request."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoggedRequest:
    """One request as it arrived: when (epoch seconds), its method, wc/v3 route and query arguments."""

    at: float
    method: str
    route: str
    args: dict


class SandboxApp:
    """The WSGI application serving one SandboxShop; `request_log` keeps the latest requests that arrived
    (a host's access log: how a test measures what a client sent, and when)."""

    def __init__(self, *, shop: "SandboxShop", link_base_url: str | None = None,
                 workers: WorkerPool | None = None) -> None:
        self.shop = shop
        self.workers = workers or WorkerPool()
        self.request_log: collections.deque[LoggedRequest] = collections.deque(maxlen=DEFAULT_REQUEST_LOG_ENTRIES)
        # Real shops behind proxies write `Link` URLs with the wrong scheme or port; clients must not follow them.
        self.link_base_url = link_base_url
        self.url_map = url_map()

    def __call__(self, environ: "WSGIEnvironment", start_response: "StartResponse") -> Iterable[bytes]:
        return self.handle(Request(environ))(environ, start_response)

    def handle(self, request: Request) -> Response:
        response = self._respond(request)
        if not isinstance(response, _FirewallPage):
            # WordPress sends its API's discovery link on every answer, errors included.
            response.headers.add("Link", f'<{self._site_url(request)}/wp-json/>; rel="https://api.w.org/"')
        with self.shop.lock:
            self.shop.request_log.append((request.method, request.path, response.status_code))
        return response

    def _site_url(self, request: Request) -> str:
        return (self.link_base_url or f"{request.scheme}://{request.host}").rstrip("/")

    def _respond(self, request: Request) -> Response:
        route = request.path[len(API_PREFIX) + 1:] if request.path.startswith(API_PREFIX + "/") else request.path
        self.request_log.append(LoggedRequest(at=time.time(), method=request.method, route=route,
                                              args=dict(request.args)))
        faults = self.shop.faults
        if faults.latency_seconds:
            time.sleep(faults.latency_seconds)
        fault = faults.take(request.method, route)
        if fault is not None:
            if fault.delay_seconds:
                time.sleep(fault.delay_seconds)
            if fault.status:
                headers: dict[str, str] = {}
                if fault.retry_after_seconds is not None:
                    headers["Retry-After"] = str(math.ceil(fault.retry_after_seconds))
                return _FirewallPage(fault.body or f"<html><body>{fault.status}</body></html>".encode(),
                                     status=fault.status, headers=headers, content_type="text/html")
        # WordPress runs in one of the host's PHP workers: beyond them, requests wait their turn.
        with self.workers.serving():
            return self._serve(request)

    def _serve(self, request: Request) -> Response:
        try:
            adapter = self.url_map.bind_to_environ(request.environ)
            endpoint, ids = adapter.match()
        except HTTPException:
            return _error_response(SandboxRestError("rest_no_route",
                                                    "No route was found matching the URL and request method.", 404))
        try:
            body = self._json_body(request)
            if endpoint == "wp_user":
                self._authenticate_wordpress(request)
            else:
                self._authenticate(request, endpoint)
            result = getattr(self, f"_{endpoint}")(request, body, **ids)
        except SandboxRestError as error:
            return _error_response(error)
        status, payload, headers = result if isinstance(result, tuple) else (200, result, {})
        return Response(php_json_dumps(payload), status=status, headers=headers,
                        content_type="application/json; charset=UTF-8")

    @staticmethod
    def _json_body(request: Request) -> Record:
        if request.method in ("GET", "DELETE") or not request.get_data():
            return {}
        if request.mimetype == "application/x-www-form-urlencoded":
            return request.form.to_dict()
        try:
            body = request.get_json(force=True)
        except BadRequest:
            raise SandboxRestError("rest_invalid_json", "Invalid JSON body passed.", 400) from None
        return body if isinstance(body, dict) else {}

    def _authenticate(self, request: Request, endpoint: str) -> None:
        https = request.scheme == "https"
        basic = None
        if request.authorization is not None and request.authorization.type == "basic":
            # werkzeug parses Basic credentials into both parts; "" and None alike count as no credentials.
            basic = (request.authorization.username or "", request.authorization.password or "")
        form = request.form.to_dict() if request.mimetype == "application/x-www-form-urlencoded" else {}
        credentials = self.shop.authenticator.authenticate(
            method=request.method, base_url=f"{request.scheme}://{request.host}", path=request.path,
            https=https, query=request.args.to_dict(), form=form, headers=request.headers, basic=basic)
        if credentials is None:
            code, message = _CANNOT.get(request.method, _CANNOT["GET"])
            if endpoint.endswith("_batch"):
                code = "woocommerce_rest_cannot_batch"
                message = "Sorry, you are not allowed to batch manipulate this resource."
            raise SandboxRestError(code, message, 401)
        if request.method != "GET" and credentials.permissions == "read":
            raise SandboxRestError("woocommerce_rest_authentication_error",
                                   "The API key provided does not have write permissions.", 401)

    def _authenticate_wordpress(self, request: Request) -> None:
        """Application passwords only: WordPress allows them over HTTP in a `local` environment."""
        auth = request.authorization
        allowed = request.scheme == "https" or self.shop.environment_type == "local"
        if auth is None or auth.type != "basic" or not allowed:
            raise SandboxRestError("rest_cannot_edit", "Sorry, you are not allowed to edit this user.", 401)
        # werkzeug parses Basic credentials into both a username and a password (either may be empty).
        expected = self.shop.app_passwords.get(auth.username or "")
        if expected is None:
            raise SandboxRestError("invalid_username", "Unknown username. Check again or try your email address.",
                                   401)
        if (auth.password or "").replace(" ", "") != expected.replace(" ", ""):
            raise SandboxRestError("incorrect_password",
                                   "The provided password is an invalid application password.", 401)

    # -- lists ----------------------------------------------------------------------------------

    @staticmethod
    def _link_query(request: Request, extra: Iterable[tuple[str, str]], page: int) -> str:
        """`add_query_arg`: the request's own query (OAuth parameters too, values encoded, keys not),
        the parameters WordPress filled in, then `page`."""
        pairs = [(key, value) for key, value in request.args.items(multi=True) if key != "page"]
        given = {key for key, _ in pairs}
        pairs += [(key, value) for key, value in extra if key.split("[")[0] not in given]
        pairs.append(("page", str(page)))
        return "&".join(f"{key}={urllib.parse.quote_plus(value)}" for key, value in pairs)

    def _page(self, request: Request, records: list[Record], render: Callable[[Record], Record],
              extra: Iterable[tuple[str, str]] = (("context", "view"),)) -> Answer:
        """Slices a list as WordPress does and sets X-WP-Total, X-WP-TotalPages and Link."""
        args = request.args
        problems = {}
        # Both are parsed below, or a problem is raised before either is used.
        per_page = page = 0
        try:
            per_page = int(args.get("per_page", DEFAULT_PER_PAGE))
        except ValueError:
            problems["per_page"] = "per_page is not of type integer."
        try:
            page = int(args.get("page", 1))
        except ValueError:
            problems["page"] = "page is not of type integer."
        if problems:
            raise invalid_params(problems)
        bounds: dict[str, str] = {}
        if not 1 <= per_page <= MAX_PER_PAGE:
            bounds["per_page"] = f"per_page must be between 1 (inclusive) and {MAX_PER_PAGE} (inclusive)"
        if page < 1:
            bounds["page"] = "page must be greater than or equal to 1"
        if bounds:
            # WordPress answers rest_invalid_param; rest_out_of_bounds is only inside data.details.
            raise SandboxRestError("rest_invalid_param", f"Invalid parameter(s): {', '.join(bounds)}", 400,
                                   {"params": dict(bounds),
                                    "details": {name: {"code": "rest_out_of_bounds", "message": message, "data": None}
                                                for name, message in bounds.items()}})
        total = len(records)
        total_pages = math.ceil(total / per_page) if total else 0
        selected = records[(page - 1) * per_page: page * per_page]
        if not selected:
            # WP_Query finds no rows past the end, so it reports the totals as 0 as well.
            total = total_pages = 0
        with self.shop.lock:
            items = [render(record) for record in selected]
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(total_pages)}
        links = []
        base = self._site_url(request) + request.path
        if page > 1:
            # Past the last page the page count is 0, so "prev" points at page=0, as WooCommerce's does.
            links.append(f'<{base}?{self._link_query(request, extra, min(page - 1, total_pages))}>; rel="prev"')
        if total_pages > page:
            links.append(f'<{base}?{self._link_query(request, extra, page + 1)}>; rel="next"')
        if links:
            headers["Link"] = ", ".join(links)
        return 200, items, headers

    # -- batches --------------------------------------------------------------------------------

    def _batch(self, body: Record, *, create: Callable[[Record], Record], update: Callable[[int, Any], Record],
               delete: Callable[[int, Any], Record], invalid_code: str) -> dict[str, list[Record]]:
        """Runs create, update, delete items in order; each answers alone; lenient as WooCommerce is."""
        items = {action: body.get(action) or [] for action in ("create", "update", "delete")}
        count = sum(len(v) if isinstance(v, list) else 1 for v in items.values())
        limit = self.shop.batch_limit
        if count > limit:
            raise SandboxRestError("woocommerce_rest_request_entity_too_large",
                                   f"Unable to accept more than {limit} items for this request.", 413)
        result: dict[str, list[Record]] = {}
        # create takes the item, update and delete its id and the item: the action says which.
        handlers: tuple[tuple[str, Callable[..., Record]], ...] = (("create", create), ("update", update),
                                                                   ("delete", delete))
        for action, handler in handlers:
            if not items[action]:
                continue
            answers = []
            for item in items[action]:
                self.shop.batch_item_pause()
                item_id = 0
                try:
                    if action == "create":
                        answers.append(handler(item if isinstance(item, dict) else {}))
                        continue
                    item_id = int(item.get("id") or 0) if isinstance(item, dict) else int(item)
                    if not item_id:
                        raise SandboxRestError(invalid_code, "Invalid ID.", 400)
                    answers.append(handler(item_id, item))
                except (TypeError, ValueError):
                    answers.append({"id": 0, "error": {"code": invalid_code, "message": "Invalid ID.",
                                                       "data": {"status": 400}}})
                except SandboxRestError as error:
                    answers.append({"id": item_id, "error": {"code": error.code, "message": error.message,
                                                             "data": dict({"status": error.status},
                                                                          **(error.data if isinstance(error.data, dict)
                                                                             else {}))}})
            result[action] = answers
        return result

    # -- products -------------------------------------------------------------------------------

    def _products(self, request: Request, body: Record) -> Answer:
        if request.method == "POST":
            self.shop.batch_item_pause()
            return 201, self.shop.create_product(body), {}
        return self._page(request, self.shop.list_products(request.args), self.shop.product_json)

    def _product(self, request: Request, body: Record, item_id: int) -> Answer:
        if request.method == "GET":
            return self.shop.get_product(item_id)
        if request.method == "DELETE":
            return self.shop.delete_product(item_id, force=_force(request.args))
        self.shop.batch_item_pause()
        return self.shop.update_product(item_id, body)

    def _products_batch(self, request: Request, body: Record) -> Answer:
        return self._batch(
            body, invalid_code="woocommerce_rest_product_invalid_id",
            create=lambda item: self.shop.create_product(item, lenient=True),
            update=lambda item_id, item: self.shop.update_product(item_id, item, lenient=True),
            delete=lambda item_id, item: self.shop.delete_product(item_id, force=True))

    def _categories(self, request: Request, body: Record) -> Answer:
        if request.method == "POST":
            return 201, self.shop.create_category(body), {}
        return self._page(request, self.shop.list_categories(request.args), self.shop.category_json)

    def _category(self, request: Request, body: Record, item_id: int) -> Answer:
        with self.shop.lock:
            category = self.shop.categories.get(item_id)
            if category is None:
                raise SandboxRestError("woocommerce_rest_term_invalid", "Resource does not exist.", 404)
            return self.shop.category_json(category)

    # -- customers ------------------------------------------------------------------------------

    def _customers(self, request: Request, body: Record) -> Answer:
        if request.method == "POST":
            self.shop.batch_item_pause()
            return 201, self.shop.create_customer(body), {}
        return self._page(request, self.shop.list_customers(request.args), self.shop.customer_json)

    def _customer(self, request: Request, body: Record, item_id: int) -> Answer:
        if request.method == "GET":
            return self.shop.get_customer(item_id)
        if request.method == "DELETE":
            return self.shop.delete_customer(item_id, force=_force(request.args))
        self.shop.batch_item_pause()
        return self.shop.update_customer(item_id, body)

    def _customers_batch(self, request: Request, body: Record) -> Answer:
        return self._batch(
            body, invalid_code="woocommerce_rest_invalid_id",
            create=lambda item: self.shop.create_customer(item, lenient=True),
            update=lambda item_id, item: self.shop.update_customer(item_id, item, lenient=True),
            delete=lambda item_id, item: self.shop.delete_customer(item_id, force=True))

    # -- orders ---------------------------------------------------------------------------------

    def _orders(self, request: Request, body: Record) -> Answer:
        if request.method == "POST":
            self.shop.batch_item_pause()
            return 201, self.shop.create_order(body), {}
        return self._page(request, self.shop.list_orders(request.args), self.shop.order_json,
                          extra=(("status[0]", "any"), ("dp", "2"), ("context", "view")))

    def _order(self, request: Request, body: Record, item_id: int) -> Answer:
        if request.method == "GET":
            return self.shop.get_order(item_id)
        if request.method == "DELETE":
            return self.shop.delete_order(item_id, force=_force(request.args))
        self.shop.batch_item_pause()
        return self.shop.update_order(item_id, body)

    def _orders_batch(self, request: Request, body: Record) -> Answer:
        return self._batch(
            body, invalid_code="woocommerce_rest_shop_order_invalid_id",
            create=lambda item: self.shop.create_order(item, lenient=True),
            update=lambda item_id, item: self.shop.update_order(item_id, item, lenient=True),
            delete=lambda item_id, item: self.shop.delete_order(item_id, force=True))

    def _order_notes(self, request: Request, body: Record, item_id: int) -> Answer:
        if request.method == "POST":
            return 201, self.shop.add_order_note(item_id, body), {}
        return self.shop.list_order_notes(item_id, request.args)

    def _order_refunds(self, request: Request, body: Record, item_id: int) -> Answer:
        if request.method == "POST":
            return 201, self.shop.create_refund(item_id, body), {}
        return self.shop.list_refunds(item_id)

    def _order_totals(self, request: Request, body: Record) -> Answer:
        return self.shop.order_status_totals()

    # -- shipping -------------------------------------------------------------------------------

    def _zones(self, request: Request, body: Record) -> Answer:
        return self.shop.list_zones()

    def _zone(self, request: Request, body: Record, item_id: int) -> Answer:
        return self.shop.get_zone(item_id)

    def _zone_methods(self, request: Request, body: Record, item_id: int) -> Answer:
        return self.shop.list_zone_methods(item_id)

    def _shipping_methods(self, request: Request, body: Record) -> Answer:
        return self.shop.list_shipping_methods()

    # -- settings and taxes ---------------------------------------------------------------------

    def _settings(self, request: Request, body: Record, group: str) -> Answer:
        return self.shop.list_settings(group)

    def _setting(self, request: Request, body: Record, group: str, name: str) -> Answer:
        if request.method == "GET":
            return self.shop.get_setting(group, name)
        return self.shop.update_setting(group, name, body)

    def _taxes(self, request: Request, body: Record) -> Answer:
        if request.method == "POST":
            return 201, self.shop.create_tax_rate(body), {}
        return self._page(request, self.shop.list_tax_rates(request.args), self.shop.tax_rate_json)

    def _tax(self, request: Request, body: Record, item_id: int) -> Answer:
        if request.method == "GET":
            return self.shop.get_tax_rate(item_id)
        if request.method == "DELETE":
            return self.shop.delete_tax_rate(item_id, force=_force(request.args))
        return self.shop.update_tax_rate(item_id, body)

    def _tax_classes(self, request: Request, body: Record) -> Answer:
        return self.shop.list_tax_classes()

    # -- webhooks -------------------------------------------------------------------------------

    def _webhooks(self, request: Request, body: Record) -> Answer:
        if request.method == "POST":
            return 201, self.shop.create_webhook(body), {}
        return self._page(request, self.shop.list_webhooks(request.args), self.shop.webhook_json)

    def _webhook(self, request: Request, body: Record, item_id: int) -> Answer:
        if request.method == "GET":
            return self.shop.get_webhook(item_id)
        if request.method == "DELETE":
            return self.shop.delete_webhook(item_id, force=_force(request.args))
        return self.shop.update_webhook(item_id, body)

    # -- WordPress users ------------------------------------------------------------------------

    def _wp_user(self, request: Request, body: Record, item_id: int) -> Answer:
        if request.method == "GET":
            with self.shop.lock:
                user = self.shop.users.get(item_id)
                if user is None:
                    raise SandboxRestError("rest_user_invalid_id", "Invalid user ID.", 404)
                return self.shop.wp_user_json(user)
        roles = body.get("roles")
        if roles is None and body.get("role"):
            roles = [body["role"]]
        return self.shop.set_user_roles(item_id, [str(r) for r in roles or []])

