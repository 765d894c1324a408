"""The shop's side of the customer sync: reading a shop customer, finding one by e-mail, creating
one for an account, and writing what a merge sends the shop (what the shop cannot take stays
pending, agreed at the shop's value, so Exchequer's stays a change to send).

Rules of the sync that concern the shop alone live here; the merge and the leases stay in
exsync.consumers.customers.
"""

import logging
import secrets
from collections.abc import Callable
from typing import Any

from exsync.bus import PermanentError
from exsync.consumers.customer_mapping import FIELDS, woo_changes
from exsync.metrics import Metrics
from exsync.woo import WooApiError, WooBadRequest, WooClient, WooNotFound

__all__ = ["EMAIL_EDITABLE_ROLES", "EXSYNC_ACCOUNT_META", "ShopCustomers", "made_for", "refused"]

# The sync's one logger, as before its shop side had a module of its own.
log = logging.getLogger("exsync.consumers.customers")

_EMAIL_TAKEN = "registration-error-email-exists"
_NO_SUCH_CUSTOMER = "woocommerce_rest_invalid_id"
# WooCommerce 9.5+ lets REST change the e-mail of these roles only.
EMAIL_EDITABLE_ROLES = ("customer", "subscriber")
EXSYNC_ACCOUNT_META = "_exsync_account"


def made_for(customer: dict) -> str | None:
    """The account code a shop customer was created for by the export, from its meta (or None)."""
    for meta in customer.get("meta_data") or []:
        if isinstance(meta, dict) and meta.get("key") == EXSYNC_ACCOUNT_META and meta.get("value"):
            return str(meta["value"])
    return None


def refused(what: str, error: WooApiError) -> Exception:
    """A 400 will not pass by itself: park it with the shop's reason. Anything else (401/403 after
    a key or password change, 404 from a hidden route, 5xx) is retried until someone fixes it."""
    if isinstance(error, WooBadRequest):
        return PermanentError(f"{what}: the shop refused the change: {error}")
    return error


def _pending(result: Any, field: str, woo: dict) -> None:
    """Leaves `field` as the shop has it: agreed at that value, so Exchequer's stays a change to send."""
    result.to_woo.remove(field)
    result.agreed[field] = woo[field]


class ShopCustomers:
    """The shop's customers as the sync reads and writes them. Changing a role needs a WordPress
    user and application password (`wp_username`, `wp_application_password`)."""

    def __init__(self, *, client: WooClient, wholesale_role: str, metrics: Metrics,
                 wp_username: str | None = None, wp_application_password: str | None = None) -> None:
        self.client = client
        self.wholesale_role = wholesale_role
        self.metrics = metrics
        self.wp_username = wp_username
        self.wp_application_password = wp_application_password

    def get(self, woo_id: int) -> dict | None:
        """The shop customer, or None when the shop says there is no such customer (a missing route,
        a hidden API, is not a deletion: that error goes up and the event is retried)."""
        try:
            return self.client.get_customer(woo_id)
        except WooNotFound as error:
            if error.code == _NO_SUCH_CUSTOMER:
                return None
            raise

    def by_email(self, email: str) -> dict | None:
        for customer in self.client.iter_customers(role="all", params={"email": email}):
            if str(customer.get("email") or "").lower() == email:
                return customer
        return None

    def create(self, code: str, view: dict) -> tuple[dict, bool]:
        """(customer, created): a new shop customer made from account `code`'s view, or the one that
        registered with its e-mail meanwhile."""
        changes, _ = woo_changes(view, [field for field in FIELDS if field != "wholesale"])
        # Shops that do not generate passwords refuse a customer without one; the customer can reset it.
        changes["password"] = secrets.token_urlsafe(24)
        # The import consumer links this customer to this account whatever e-mails match (see customer_accounts).
        changes["meta_data"] = [{"key": EXSYNC_ACCOUNT_META, "value": code}]
        try:
            return self.client.create_customer(changes), True
        except WooApiError as error:
            if error.code == _EMAIL_TAKEN:
                customer = self.by_email(view["email"])
                if customer is not None:
                    return customer, False
            raise refused(f"cannot create a shop customer for account {code}", error) from error

    def write(self, customer: dict, woo: dict, result: Any) -> None:
        """Gives the shop the fields the merge sent its way; what it cannot take stays pending."""
        woo_id = int(customer["id"])
        if "email" in result.to_woo:
            if not result.agreed["email"]:
                # A shop customer must have an e-mail: an account that lost its own does not take the shop's away.
                _pending(result, "email", woo)
            elif customer.get("role") not in EMAIL_EDITABLE_ROLES:
                self._email_refused(woo_id, woo, result, f"the shop lets REST change the e-mail of "
                                                        f"{', '.join(EMAIL_EDITABLE_ROLES)} only")
        changes, wholesale = woo_changes(result.agreed, result.to_woo)
        try:
            if changes:
                self._update(woo_id, changes, woo, result, lambda: woo_changes(result.agreed, result.to_woo)[0])
            if wholesale is not None:
                self._set_role(woo_id, wholesale, woo, result)
        except WooApiError as error:
            raise refused(f"shop customer {woo_id}", error) from error
        for field in result.to_woo:
            self.metrics.inc("customer_fields_synced", side="woo", field=field)

    def _update(self, woo_id: int, changes: dict, woo: dict, result: Any, remaining: Callable[[], dict]) -> None:
        try:
            self.client.update_customer(woo_id, changes)
        except WooBadRequest as error:
            if "email" not in changes:
                raise
            # Most likely the e-mail (another user has it): that field waits for a person, the
            # rest goes now; if the rest is refused too, that error stands.
            self._email_refused(woo_id, woo, result, str(error))
            rest = remaining()
            if rest:
                self.client.update_customer(woo_id, rest)

    def _email_refused(self, woo_id: int, woo: dict, result: Any, reason: str) -> None:
        log.warning("customers: the shop does not take e-mail %r for customer %s (%s); left for a person, and only "
                    "`exsync customers resolve %s email --take woo` can settle it", result.agreed["email"], woo_id,
                    reason, woo_id)
        result.conflicts.append(("email", woo["email"], result.agreed["email"], woo["email"]))
        _pending(result, "email", woo)

    def _set_role(self, woo_id: int, wholesale: bool, woo: dict, result: Any) -> None:
        if not (self.wp_username and self.wp_application_password):
            _pending(result, "wholesale", woo)
            log.warning("customers: shop customer %s should %s wholesale, but changing a role needs "
                        "EXSYNC_WP_USERNAME and EXSYNC_WP_APPLICATION_PASSWORD", woo_id,
                        "become" if wholesale else "no longer be")
            self.metrics.inc("customer_roles_skipped")
            return
        role = self.wholesale_role if wholesale else "customer"
        self.client.set_user_roles(woo_id, [role], username=self.wp_username,
                                   application_password=self.wp_application_password)
