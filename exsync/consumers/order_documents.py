"""What a shop order becomes in Exchequer: the rules' plan (SOR, SQU or split), the account, the documents.

`OrderDocuments.documents()` maps the order's lines, decides the plan (rules over the order's
facts, free stock read only when a rule needs it; a plan that depended on stock is stored first, so
a retry after a crash writes the same documents) and the account (the registered customer's,
created when missing; a guest's by e-mail; the guest account), and returns the SalesDocuments the
orders consumer writes. `Parked` says the order cannot be imported yet, with the reason.
"""

import dataclasses
import datetime
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from exsync.consumers.customer_accounts import account_for_shop_customer
from exsync.consumers.customer_mapping import AccountFitter, billing_details
from exsync.consumers.order_mapping import PRODUCT, MappedLine, OrderMapping, money
from exsync.consumers.order_rules import CUSTOMER, OrderFacts, choose, customer_role, order_meta
from exsync.exchequer import AccountDetails, DocumentLine, InvalidDocumentError, SalesDocument, UnknownAccountError
from exsync.exchequer.options import ExchequerOptions
from exsync.schemas.sections import OrdersConfig
from exsync.state.links import LinkStore
from exsync.woo import WooClient, WooError, WooNotFound

if TYPE_CHECKING:
    # For the annotations only: the orders consumer, which imports this module, defines the
    # connections (stores and caches) a thread plans its orders over.
    from exsync.consumers.orders import _Connections

__all__ = [
    "DEFAULT_ROLE_CACHE_ENTRIES",
    "GUEST_ACCOUNT_COMPANY",
    "ORDER_KEY_PREFIX",
    "QUOTE_KEY_SUFFIX",
    "SHIPPING_TITLES_SECONDS",
    "OrderDocuments",
    "Parked",
    "ShopRoles",
    "order_key",
]

ORDER_KEY_PREFIX = "woo-order:"
QUOTE_KEY_SUFFIX = ":quote"
GUEST_ACCOUNT_COMPANY = "Web sales (guest orders)"
SHIPPING_TITLES_SECONDS = 60.0
DEFAULT_ROLE_CACHE_ENTRIES = 10_000


def order_key(order_id: int | str) -> str:
    """The external key of the document an order becomes (its quotation part adds `:quote`)."""
    return f"{ORDER_KEY_PREFIX}{int(order_id)}"


class Parked(Exception):
    """The order cannot be imported yet; its reason goes in tracking."""


class ShopRoles:
    """A registered customer's role when the order's meta does not name it: as the customer sync
    last agreed it with the shop (the link's snapshot), else one read of the shop customer, kept
    `cache_seconds` (thread-safe)."""

    def __init__(self, *, client: "WooClient | None", wholesale_role: str, cache_seconds: float,
                 clock: Callable[[], float], entries: int = DEFAULT_ROLE_CACHE_ENTRIES) -> None:
        self.client = client
        self.wholesale_role = wholesale_role
        self.cache_seconds = cache_seconds
        self.clock = clock
        self.entries = entries
        self._cache: dict[int, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def role(self, links: LinkStore, customer_id: int) -> str:
        link = links.get(customer_id)
        if link is not None and link.snapshot and "wholesale" in link.snapshot:
            return self.wholesale_role if link.snapshot["wholesale"] else CUSTOMER
        if self.client is None:
            return CUSTOMER
        now = self.clock()
        with self._lock:
            cached = self._cache.get(customer_id)
        if cached is not None and now - cached[1] < self.cache_seconds:
            return cached[0]
        try:
            role = str(self.client.get_customer(customer_id).get("role") or CUSTOMER)
        except WooNotFound:
            role = CUSTOMER  # deleted in the shop: an ordinary customer as far as rules go
        except WooError as error:
            # A rule on the role cannot be decided: wait (parked, retried) rather than guess.
            raise Parked(f"the role of shop customer {customer_id} is unknown: {error}") from error
        with self._lock:
            if len(self._cache) >= self.entries:
                self._cache.clear()
            self._cache[customer_id] = (role, now)
        return role


class OrderDocuments:
    """Plans and builds an order's documents over one thread's connections (see the module's text)."""

    def __init__(self, *, options: OrdersConfig, mapping: OrderMapping, exchequer_options: ExchequerOptions,
                 fit: AccountFitter,
                 roles: ShopRoles, clock: Callable[[], float], match_by_email: bool, wholesale_role: str,
                 wholesale_band: str) -> None:
        self.options = options
        self.mapping = mapping
        self.exchequer_options = exchequer_options
        self._fit = fit
        self._roles = roles
        self.clock = clock
        self.match_by_email = match_by_email
        self.wholesale_role = wholesale_role
        self.wholesale_band = wholesale_band

    @staticmethod
    def _require_skus(mapped: Sequence[MappedLine]) -> None:
        """Parked names the first product line without a SKU; whether each SKU is a stock item the
        writer checks inside its transaction (UnknownStockItemError), saving a read per order."""
        for number, line in enumerate(mapped, start=1):
            if line.kind == PRODUCT and not line.stock_code:
                raise Parked(f"line {number} ({line.description}) has no SKU")

    def unknown_skus(self, connections: "_Connections", order: dict[str, Any]) -> list[str]:
        """The order's SKUs that are no stock item, in line order."""
        codes = list(dict.fromkeys(str(item.get("sku") or "").strip() for item in order.get("line_items") or []))
        codes = [code for code in codes if code]
        if not codes:
            return []
        marks = ", ".join("?" for _ in codes)
        with connections.exchequer.transaction(write=False) as cursor:
            known = {row[0] for row in cursor.run(
                f"SELECT {{stock.code}} FROM {{stock}} WHERE {{stock.code}} IN ({marks})", codes).fetchall()}
        return [code for code in codes if code not in known]

    def _in_free_stock(self, connections: "_Connections", lines: Sequence[MappedLine]) -> list[bool]:
        """Whether each product line is covered by free stock, lines of one item counted together."""
        if connections.stock_rules is None:
            connections.stock_rules = connections.reader.stock_rules(self.exchequer_options.locations)
        left: dict[str, float] = {}
        for line in lines:
            if line.stock_code not in left:
                left[line.stock_code] = connections.stock_rules.free(connections.reader.stock_item(line.stock_code))
        covered: list[bool] = []
        for line in lines:
            enough = left[line.stock_code] >= float(line.qty)
            left[line.stock_code] -= float(line.qty)
            covered.append(enough)
        return covered

    def _plan(self, connections: "_Connections", order_id: int, order: dict[str, Any], mapped: Sequence[MappedLine],
              role: str) -> str:
        """"SOR", "SQU", or "split:<indexes of product lines in free stock>".

        A plan that depended on stock is stored first (the first stored wins), so a retry after a
        crash writes the same documents even if stock has moved since.
        """
        products = [line for line in mapped if line.kind == PRODUCT]
        covered: list[bool] | None = None

        def covered_lines() -> list[bool]:
            nonlocal covered
            if covered is None:
                covered = self._in_free_stock(connections, products)
            return covered

        def all_in_stock() -> bool:
            return all(covered_lines())

        facts = OrderFacts(
            payment_method=str(order.get("payment_method") or ""),
            role=role,
            total=money(order.get("total")),
            shipping_methods=frozenset(str(value) for line in order.get("shipping_lines") or []
                                       for value in (line.get("method_id"), line.get("instance_id")) if value),
            status=str(order.get("status") or ""), meta=order_meta(order), all_in_stock=all_in_stock)
        decision = choose(self.options.rules, facts)
        if decision.action != "split":
            plan = decision.action
        else:
            plan = "split:" + ",".join(str(index) for index, ok in enumerate(covered_lines()) if ok)
        if covered is None:
            return plan
        return connections.orders.claim_plan(order_id, plan)

    def documents(self, connections: "_Connections", order_id: int, order: dict[str, Any]) -> list[SalesDocument]:
        """The sales documents the order becomes (one, or an SOR and an SQU when split); Parked when
        it cannot be imported yet."""
        mapped = self.mapping.lines(order, shipping_titles=self._shipping_titles(connections))
        if not mapped:
            raise Parked("the order has no lines to import")
        self._require_skus(mapped)
        role = self._role(connections, order)
        plan = self._plan(connections, order_id, order, mapped, role)
        account = self._account(connections, order, role)
        products = [line for line in mapped if line.kind == PRODUCT]
        others = [line for line in mapped if line.kind != PRODUCT]
        if plan.startswith("split:"):
            chosen = {int(index) for index in plan[len("split:"):].split(",") if index}
            ordered = [line for index, line in enumerate(products) if index in chosen]
            quoted = [line for index, line in enumerate(products) if index not in chosen]
        elif plan == "SQU":
            ordered, quoted = [], products
        else:
            ordered, quoted = products, []
        # Carriage, fees and the rounding go with the sales order when there is one.
        parts = []
        if ordered or (not quoted and plan != "SQU"):
            parts.append(("SOR", order_key(order_id), ordered + others))
            if quoted:
                parts.append(("SQU", order_key(order_id) + QUOTE_KEY_SUFFIX, quoted))
        else:
            parts.append(("SQU", order_key(order_id), quoted + others))
        total = money(order.get("total"))
        documents = []
        for doc_type, key, lines in parts[1:]:
            document_lines = tuple(line.document_line() for line in lines)
            total -= self.mapping.total_of(document_lines)
            documents.append(self._document(order, doc_type=doc_type, key=key, account=account, lines=document_lines))
        head_type, head_key, head_lines = parts[0]
        documents.insert(0, self._document(order, doc_type=head_type, key=head_key, account=account,
                                           lines=self.mapping.document_lines(head_lines, target_total=total)))
        return documents

    def _shipping_titles(self, connections: "_Connections") -> dict[str, str]:
        """Imported shipping method titles by instance id, read again every SHIPPING_TITLES_SECONDS."""
        if connections.shipping_titles is None or self.clock() - connections.shipping_titles[0] >= \
                SHIPPING_TITLES_SECONDS:
            titles = {method.instance_id: method.title for method in connections.shipping.all()}
            connections.shipping_titles = (self.clock(), titles)
        return connections.shipping_titles[1]

    def _document(self, order: dict[str, Any], *, doc_type: str, key: str, account: str,
                  lines: tuple[DocumentLine, ...]) -> SalesDocument:
        number = str(order.get("number") or order["id"])
        created = str(order.get("date_created_gmt") or "")[:10]
        try:
            date = datetime.date.fromisoformat(created)
        except ValueError:
            date = datetime.datetime.now(datetime.timezone.utc).date()
        if not lines:
            raise Parked(f"the {doc_type} part has no lines")
        return SalesDocument(external_key=key, doc_type=doc_type, account_code=account, date=date,
                             lines=lines, your_ref=number[:10], long_your_ref=f"WOO-{number}"[:20])

    # --- accounts

    def _role(self, connections: "_Connections", order: dict[str, Any]) -> str:
        """The customer's role for rules and a new account's band: the order's role meta (Wholesale
        Suite), else the role exsync knows (customer link, or a cached read of the shop customer)."""
        return customer_role(order, role_meta_key=self.options.role_meta_key,
                             known=lambda customer_id: self._roles.role(connections.links, customer_id))

    def _account(self, connections: "_Connections", order: dict[str, Any], role: str) -> str:
        """The account the order goes on: the registered customer's (created when missing), a
        guest's by e-mail, or the configured guest account."""
        billing = order.get("billing") or {}
        customer_id = int(order.get("customer_id") or 0)
        if customer_id:
            details = billing_details(billing, self._fit)
            if role == self.wholesale_role:
                details = dataclasses.replace(details, price_band=self.wholesale_band)
            try:
                return account_for_shop_customer(
                    backend=connections.backend, reader=connections.reader, woo_id=customer_id,
                    details=details, match_by_email=self.match_by_email)[0]
            except InvalidDocumentError as error:
                raise Parked(f"cannot create an account for customer {customer_id}: {error}") from error
        email = str(billing.get("email") or "").strip()
        if email:
            matches = [account for account in connections.reader.accounts_by_email(email) if account.cust_supp == "C"]
            if matches:
                return matches[0].code
        return self._guest_account(connections)

    def _guest_account(self, connections: "_Connections") -> str:
        if connections.guest_account is None:
            code = self.options.guest_account.upper()
            try:
                connections.guest_account = connections.reader.account(code).code
            except UnknownAccountError:
                connections.guest_account = connections.backend.create_account(
                    external_key=f"guest-account:{code}", code=code,
                    details=AccountDetails(company=GUEST_ACCOUNT_COMPANY)).reference
        return connections.guest_account
