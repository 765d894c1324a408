"""What a customer is on both sides: one view of the fields kept in step, read from and written to each.

A view is a dict of `FIELDS`. The shop's side is fitted to Exchequer's column widths before it
is compared, so a value Exchequer can only hold shortened does not look like a change forever.
E-mail addresses compare in lower case (Exchequer compares account e-mail case-insensitively, the
shop keeps them lower case). Address lines 1-4 are synced line by line; the fifth is not:
Exchequer keeps free text there ("United Kingdom", a county), the shop an ISO country code, so a
new account gets the shop's country code once and each side keeps its own after that.
"""

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from exsync.exchequer import AccountDetails
from exsync.exchequer.mapping import Mapping as ExchequerMapping
from exsync.exchequer.models import Account
from exsync.schemas.config import CUSTOMER_FIELDS

__all__ = [
    "ADDRESS_PARTS",
    "FIELDS",
    "AccountFitter",
    "Merge",
    "account_changes",
    "account_view",
    "billing_details",
    "merge",
    "placeholder_contact",
    "woo_changes",
    "woo_view",
]

FIELDS = CUSTOMER_FIELDS
# Exchequer's five address lines hold these billing fields, in this order.
ADDRESS_PARTS = ("address_1", "address_2", "city", "state", "country")
SYNCED_LINES = 4
DEFAULT_BAND = "A"
# A customer as both sides are compared: FIELDS -> text (or, for wholesale, a bool).
View = dict[str, Any]
# Cuts a text to an account column's width: fit(column, text).
Fit = Callable[[str, object], str]
_PLACEHOLDER = re.compile(r"^Web customer \d+$")


def _clean(text: object) -> str:
    return " ".join(str(text or "").split())


def placeholder_contact(woo_id: int | str) -> str:
    """The contact name of an account made for a shop customer who gave neither name nor company."""
    return f"Web customer {int(woo_id)}"


class AccountFitter:
    """Cuts text to the width of an account column, as the database's mapping declares it."""

    def __init__(self, *, mapping: ExchequerMapping) -> None:
        self._widths = {name: int(column.kind[4:]) for name, column in mapping.tables["accounts"].columns.items()
                        if column.kind.startswith("str:")}

    def __call__(self, column: str, text: object) -> str:
        text = _clean(text)
        width = self._widths.get(column)
        # A cut that ends on a space must not keep it: Exchequer's side is compared stripped.
        return text[:width].rstrip() if width else text


def billing_details(billing: Mapping[str, Any], fit: Fit, *, first_name: str | None = "", last_name: str | None = "",
                    email: str | None = "") -> AccountDetails:
    """AccountDetails from a shop billing address (an order's or a customer's), fitted to the columns."""
    contact = f"{first_name or billing.get('first_name') or ''} {last_name or billing.get('last_name') or ''}"
    return AccountDetails(
        company=fit("company", billing.get("company")),
        contact=fit("contact", contact),
        address=tuple(fit(f"address_{n}", billing.get(part)) for n, part in enumerate(ADDRESS_PARTS, start=1)),
        post_code=fit("post_code", billing.get("postcode")),
        email=fit("email", email or billing.get("email")).lower(),
        phone=fit("phone", billing.get("phone")))


def _view(details: AccountDetails, wholesale: bool) -> View:
    view: View = {"email": details.email, "contact": details.contact, "company": details.company,
            "post_code": details.post_code, "phone": details.phone, "wholesale": wholesale}
    view.update((f"address_{n}", line) for n, line in enumerate(details.address[:SYNCED_LINES], start=1))
    return view


def woo_view(customer: Mapping[str, Any], fit: Fit, *, wholesale_role: str) -> View:
    """The view of a wc/v3 customer."""
    details = billing_details(customer.get("billing") or {}, fit, first_name=customer.get("first_name"),
                              last_name=customer.get("last_name"), email=customer.get("email"))
    return _view(details, customer.get("role") == wholesale_role)


def account_view(account: Account, *, wholesale_band: str) -> View:
    """The view of an Exchequer account (a placeholder contact reads as no contact)."""
    contact = _clean(account.contact)
    return _view(AccountDetails(email=_clean(account.email).lower(), contact="" if _PLACEHOLDER.match(contact)
                                else contact, company=_clean(account.company),
                                address=tuple(_clean(line) for line in account.address),
                                post_code=_clean(account.post_code), phone=_clean(account.phone)),
                 account.price_band == wholesale_band)


def account_changes(view: Mapping[str, Any], fields: Iterable[str], *, account: Account,
                    wholesale_band: str) -> dict[str, Any]:
    """`update_account` changes that give the account these fields of the view."""
    changes: dict[str, Any] = {}
    address = list(account.address)
    for field in fields:
        if field == "wholesale":
            if view["wholesale"]:
                changes["price_band"] = wholesale_band
            elif account.price_band == wholesale_band:
                changes["price_band"] = DEFAULT_BAND
        elif field.startswith("address_"):
            address[int(field[-1]) - 1] = view[field]
            changes["address"] = tuple(address)
        else:
            changes[field] = view[field]
    return changes


def _split_name(contact: str) -> tuple[str, str]:
    first, _, last = contact.partition(" ")
    return first, last


def woo_changes(view: Mapping[str, Any], fields: Iterable[str]) -> tuple[dict[str, Any], bool | None]:
    """(wc/v3 customer changes, whether the customer should be wholesale or None to leave the role)
    that give the shop these fields of the view."""
    changes: dict[str, Any] = {}
    billing: dict[str, Any] = {}
    for field in fields:
        if field == "email":
            changes["email"] = billing["email"] = view["email"]
        elif field == "contact":
            first, last = _split_name(view["contact"])
            changes["first_name"] = billing["first_name"] = first
            changes["last_name"] = billing["last_name"] = last
        elif field.startswith("address_"):
            billing[ADDRESS_PARTS[int(field[-1]) - 1]] = view[field]
        elif field == "post_code":
            billing["postcode"] = view["post_code"]
        elif field in ("company", "phone"):
            billing[field] = view[field]
    if billing:
        changes["billing"] = billing
    return changes, view["wholesale"] if "wholesale" in fields else None


def _first_link_side(field: str, woo_value: object) -> str:
    """Who wins a field both sides filled differently before they were ever linked (policy newest):
    a login e-mail is a person's call; wholesale is never taken away from someone given it; for the
    rest, Exchequer (the books) holds the curated record."""
    if field == "email":
        return "manual"
    if field == "wholesale":
        return "woo" if woo_value else "exchequer"
    return "exchequer"


@dataclasses.dataclass(kw_only=True)
class Merge:
    """What a three-way merge decided: the agreed view, what each side must be given, the conflicts."""

    agreed: View
    to_woo: list[str]
    to_exchequer: list[str]
    conflicts: list[tuple[Any, ...]]  # (field, woo value, exchequer value, base value) left for a person
    # (field, woo value, exchequer value, base value, policy, winner): every field a policy decided
    # between two values, the loser's value overridden (winner `manual`: left for a person)
    decisions: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)


def merge(*, base: Mapping[str, Any] | None, woo: Mapping[str, Any], exchequer: Mapping[str, Any],
          policy_of: Callable[[str], str], newest_side: Callable[[], str]) -> Merge:
    """Merges the two views against `base`, the view both sides last agreed on (None: never synced).

    A field changed on one side only goes to the other. Without a base (a first link) an empty
    text field takes the other side's value, and a field both sides filled differently goes by its
    policy, except that `newest` means `_first_link_side` there: times say nothing about which side
    is right about a customer seen together for the first time. A field both sides changed
    differently is a conflict: `policy_of(field)` says `woo`, `exchequer`, `newest`
    (`newest_side()`: the side changed last, or `manual` when the two changes cannot be ordered,
    e.g. within the same second) or `manual`, which leaves both sides alone and the field out of
    the agreed view, so it stays a conflict until a person decides. Every such decision is in
    `decisions`, so no overridden value goes without a trace.
    """
    agreed: View = {}
    to_woo: list[str] = []
    to_exchequer: list[str] = []
    conflicts: list[tuple[Any, ...]] = []
    decisions: list[tuple[Any, ...]] = []
    base_view = base or {}  # read only where `known` says base holds the field
    for field in FIELDS:
        woo_value, exchequer_value = woo[field], exchequer[field]
        if woo_value == exchequer_value:
            agreed[field] = woo_value
            continue
        known = base is not None and field in base
        if known and woo_value == base_view[field] or not known and woo_value == "":
            winner = "exchequer"
        elif known and exchequer_value == base_view[field] or not known and exchequer_value == "":
            winner = "woo"
        else:
            policy = winner = policy_of(field)
            if winner == "newest":
                winner = newest_side() if known else _first_link_side(field, woo_value)
            decisions.append((field, woo_value, exchequer_value, base_view.get(field) if known else None, policy,
                              winner))
            if winner == "manual":
                conflicts.append((field, woo_value, exchequer_value, base_view.get(field) if known else None))
                if known:
                    agreed[field] = base_view[field]
                continue
        if winner == "woo":
            agreed[field] = woo_value
            to_exchequer.append(field)
        else:
            agreed[field] = exchequer_value
            to_woo.append(field)
    return Merge(agreed=agreed, to_woo=to_woo, to_exchequer=to_exchequer, conflicts=conflicts, decisions=decisions)
