"""What a customer is on both sides: one view of the fields kept in step, read from and written to each.

A view is a dict of `FIELDS`. The shop's side is fitted to Exchequer's column widths before it
is compared, so a value Exchequer can only hold shortened does not look like a change forever.
E-mail addresses compare in lower case (Exchequer compares account e-mail case-insensitively, the
shop keeps them lower case).
"""

import dataclasses

from exsync.exchequer import AccountDetails

__all__ = [
    "FIELDS",
    "AccountFitter",
    "account_changes",
    "account_view",
    "billing_details",
    "details_from_view",
    "merge",
    "Merge",
    "woo_changes",
    "woo_view",
]

FIELDS = ("email", "contact", "company", "address", "post_code", "phone", "wholesale")
# Exchequer's five address lines hold these billing fields, in this order.
ADDRESS_PARTS = ("address_1", "address_2", "city", "state", "country")
DEFAULT_BAND = "A"


def _clean(text):
    return " ".join(str(text or "").split())


class AccountFitter:
    """Cuts text to the width of an account column, as the database's mapping declares it."""

    def __init__(self, names_mapping):
        self._widths = {name: int(column.kind[4:]) for name, column in names_mapping.tables["accounts"].columns.items()
                        if column.kind.startswith("str:")}

    def __call__(self, column, text):
        text = _clean(text)
        width = self._widths.get(column)
        return text[:width] if width else text


def billing_details(billing, fit, *, first_name="", last_name="", email=""):
    """AccountDetails from a shop billing address (an order's or a customer's), fitted to the columns."""
    contact = f"{first_name or billing.get('first_name') or ''} {last_name or billing.get('last_name') or ''}"
    return AccountDetails(
        company=fit("company", billing.get("company")),
        contact=fit("contact", contact),
        address=tuple(fit(f"address_{n}", billing.get(part)) for n, part in enumerate(ADDRESS_PARTS, start=1)),
        post_code=fit("post_code", billing.get("postcode")),
        email=fit("email", email or billing.get("email")).lower(),
        phone=fit("phone", billing.get("phone")))


def woo_view(customer, fit, *, wholesale_role):
    """The view of a wc/v3 customer."""
    details = billing_details(customer.get("billing") or {}, fit, first_name=customer.get("first_name"),
                              last_name=customer.get("last_name"), email=customer.get("email"))
    return {"email": details.email, "contact": details.contact, "company": details.company,
            "address": details.address, "post_code": details.post_code, "phone": details.phone,
            "wholesale": customer.get("role") == wholesale_role}


def account_view(account, *, wholesale_band):
    """The view of an Exchequer account."""
    return {"email": _clean(account.email).lower(), "contact": _clean(account.contact),
            "company": _clean(account.company), "address": tuple(_clean(line) for line in account.address),
            "post_code": _clean(account.post_code), "phone": _clean(account.phone),
            "wholesale": account.price_band == wholesale_band}


def details_from_view(view, *, wholesale_band):
    """AccountDetails for a new account made from a view."""
    return AccountDetails(company=view["company"], contact=view["contact"], address=view["address"],
                          post_code=view["post_code"], email=view["email"], phone=view["phone"],
                          price_band=wholesale_band if view["wholesale"] else DEFAULT_BAND)


def account_changes(view, fields, *, account, wholesale_band):
    """`update_account` changes that give the account these fields of the view."""
    changes = {}
    for field in fields:
        if field == "wholesale":
            if view["wholesale"]:
                changes["price_band"] = wholesale_band
            elif account.price_band == wholesale_band:
                changes["price_band"] = DEFAULT_BAND
        else:
            changes[field] = view[field]
    return changes


def _split_name(contact):
    first, _, last = contact.partition(" ")
    return first, last


def woo_changes(view, fields):
    """(wc/v3 customer changes, whether the customer should be wholesale or None to leave the role)
    that give the shop these fields of the view."""
    changes, billing = {}, {}
    for field in fields:
        if field == "email":
            changes["email"] = billing["email"] = view["email"]
        elif field == "contact":
            first, last = _split_name(view["contact"])
            changes["first_name"] = billing["first_name"] = first
            changes["last_name"] = billing["last_name"] = last
        elif field == "company":
            billing["company"] = view["company"]
        elif field == "address":
            billing.update(zip(ADDRESS_PARTS, view["address"], strict=True))
        elif field == "post_code":
            billing["postcode"] = view["post_code"]
        elif field == "phone":
            billing["phone"] = view["phone"]
    if billing:
        changes["billing"] = billing
    return changes, view["wholesale"] if "wholesale" in fields else None


@dataclasses.dataclass(kw_only=True)
class Merge:
    """What a three-way merge decided: the agreed view, what each side must be given, the conflicts."""

    agreed: dict
    to_woo: list
    to_exchequer: list
    conflicts: list  # (field, woo value, exchequer value, base value) left for a person


def _empty(value):
    return value in ("", False, None) or (isinstance(value, tuple) and not any(value))


def merge(*, base, woo, exchequer, policy_of, newest_side):
    """Merges the two views against `base`, the view both sides last agreed on (None: never synced).

    A field changed on one side only goes to the other. Without a base (a first link) an empty
    field takes the other side's value. A field both sides changed differently is a conflict:
    `policy_of(field)` says `woo`, `exchequer`, `newest` (`newest_side()`: the side changed last)
    or `manual`, which leaves both sides alone and the field out of the agreed view, so it stays a
    conflict until a person decides.
    """
    agreed, to_woo, to_exchequer, conflicts = {}, [], [], []
    for field in FIELDS:
        woo_value, exchequer_value = woo[field], exchequer[field]
        if woo_value == exchequer_value:
            agreed[field] = woo_value
            continue
        known = base is not None and field in base
        if known and woo_value == base[field] or not known and _empty(woo_value):
            winner = "exchequer"
        elif known and exchequer_value == base[field] or not known and _empty(exchequer_value):
            winner = "woo"
        else:
            winner = policy_of(field)
            if winner == "newest":
                winner = newest_side()
            if winner == "manual":
                conflicts.append((field, woo_value, exchequer_value, base.get(field) if known else None))
                if known:
                    agreed[field] = base[field]
                continue
        if winner == "woo":
            agreed[field] = woo_value
            to_exchequer.append(field)
        else:
            agreed[field] = exchequer_value
            to_woo.append(field)
    return Merge(agreed=agreed, to_woo=to_woo, to_exchequer=to_exchequer, conflicts=conflicts)
