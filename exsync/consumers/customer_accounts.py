"""Which Exchequer account a registered shop customer is: one rule for the orders and customers consumers.

The link is the external key `woo-customer:<id>` (kind account). A customer not yet linked is
linked to the account the customer sync made them from (it marks the customers it creates), else
to the customer account with the same e-mail that no other shop customer has (when matching by
e-mail is on), else gets a new account, so a customer's first order and first sync cannot give
them two accounts.
"""

import dataclasses
from collections.abc import Callable

from exsync.consumers.customer_mapping import placeholder_contact
from exsync.exchequer import UnknownAccountError
from exsync.exchequer.models import AccountDetails
from exsync.exchequer.reader import ExchequerReader
from exsync.exchequer.writer import KIND_ACCOUNT, Toolkit

__all__ = ["CUSTOMER_KEY_PREFIX", "account_for_shop_customer", "customer_key", "shop_customers_of"]

CUSTOMER_KEY_PREFIX = "woo-customer:"


def customer_key(customer_id: int | str) -> str:
    """The external key linking a registered shop customer to an Exchequer account."""
    return f"{CUSTOMER_KEY_PREFIX}{int(customer_id)}"


def shop_customers_of(backend: Toolkit, code: str) -> list[int]:
    """The ids of the shop customers linked to account `code`."""
    keys = backend.keys_of(KIND_ACCOUNT, code, prefix=CUSTOMER_KEY_PREFIX)
    return [int(key[len(CUSTOMER_KEY_PREFIX):]) for key in keys if key[len(CUSTOMER_KEY_PREFIX):].isdigit()]


def account_for_shop_customer(*, backend: Toolkit, reader: ExchequerReader, woo_id: int, details: AccountDetails,
                              match_by_email: bool, made_for: str | None = None,
                              still_linked: Callable[[int], bool] = lambda woo_id: True) -> tuple[str, bool]:
    """(code, created): shop customer `woo_id`'s account, linked by key, the account the customer
    was made from (`made_for`, when the customer sync created it in the shop), matched by e-mail, or
    made from `details` (InvalidDocumentError when it cannot be). An account whose only shop
    customers are no longer `still_linked` (deleted in the shop) can be matched again."""
    key = customer_key(woo_id)
    linked = backend.existing_reference(KIND_ACCOUNT, key)
    if linked:
        return linked, False
    def free(code: str) -> bool:
        return not any(still_linked(other) for other in shop_customers_of(backend, code))

    if made_for and free(made_for):
        try:
            if reader.account(made_for).cust_supp == "C":
                return backend.link_account(external_key=key, code=made_for), False
        except UnknownAccountError:
            pass
    if match_by_email and details.email:
        for account in reader.accounts_by_email(details.email):
            if account.cust_supp == "C" and free(account.code):
                # Another worker may link the key first: the key's account is the answer either way.
                return backend.link_account(external_key=key, code=account.code), False
    if not (details.company or details.contact):
        details = dataclasses.replace(details, contact=placeholder_contact(woo_id))
    result = backend.create_account(external_key=key, details=details)
    return result.reference, result.created
