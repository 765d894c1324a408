"""The order rules of the configuration: which document an order becomes (SOR, SQU or a split).

Rules are evaluated in order and the first whose conditions all hold decides; an order no rule
matches becomes a sales order. "All lines in free stock" is asked only of rules that name it,
because it costs a read per line.
"""

import dataclasses
import decimal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from exsync.schemas.sections import OrderRule

__all__ = ["CUSTOMER", "DEFAULT_ACTION", "GUEST", "OrderFacts", "RuleDecision", "choose", "customer_role"]

DEFAULT_ACTION = "SOR"
GUEST = "guest"
CUSTOMER = "customer"


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderFacts:
    """What rules look at; `all_in_stock` is a callable, evaluated only when a rule asks."""

    payment_method: str
    role: str
    total: decimal.Decimal
    shipping_methods: frozenset[str]
    status: str
    meta: dict[str, Any]
    all_in_stock: Callable[[], bool]


@dataclasses.dataclass(frozen=True, kw_only=True)
class RuleDecision:
    """The action chosen and the rule that chose it (its name, or its position)."""

    action: str
    rule: str


def customer_role(order: Mapping[str, Any], *, role_meta_key: str,
                  known: Callable[[int], str] = lambda customer_id: CUSTOMER) -> str:
    """guest for customer_id 0; otherwise the role the order's meta records (Wholesale Suite writes
    it), else `known(customer_id)`: the role exsync knows the customer by (a shop without the
    plugin records no role on its orders)."""
    customer_id = int(order.get("customer_id") or 0)
    if not customer_id:
        return GUEST
    meta = order_meta(order)
    return str(meta.get(role_meta_key) or known(customer_id))


def order_meta(order: Mapping[str, Any]) -> dict[str, Any]:
    """The order's meta_data as {key: value} (the last entry of a repeated key wins)."""
    return {str(entry.get("key")): entry.get("value") for entry in order.get("meta_data") or []
            if isinstance(entry, dict) and entry.get("key")}


def _matches(conditions: Mapping[str, Any], facts: OrderFacts) -> bool:
    if "payment_method" in conditions and facts.payment_method not in conditions["payment_method"]:
        return False
    if "role" in conditions and facts.role not in conditions["role"]:
        return False
    if "min_total" in conditions and facts.total < decimal.Decimal(conditions["min_total"]):
        return False
    if "max_total" in conditions and facts.total > decimal.Decimal(conditions["max_total"]):
        return False
    if "shipping_method" in conditions and not facts.shipping_methods & set(conditions["shipping_method"]):
        return False
    if "status" in conditions and facts.status not in conditions["status"]:
        return False
    for key, value in (conditions.get("meta") or {}).items():
        if str(facts.meta.get(key, "")) != value:
            return False
    if "all_in_stock" in conditions and bool(facts.all_in_stock()) != conditions["all_in_stock"]:
        return False
    return True


def choose(rules: Sequence[OrderRule], facts: OrderFacts) -> RuleDecision:
    """The first rule whose conditions hold decides; none: a sales order."""
    for position, rule in enumerate(rules):
        if _matches(rule.when, facts):
            return RuleDecision(action=rule.action, rule=rule.name or f"rules[{position}]")
    return RuleDecision(action=DEFAULT_ACTION, rule="default")
