"""The order rules: every condition, first match wins, and bad rules reported with their path."""

import decimal

import pytest

from exsync.cli import main
from exsync.consumers.order_rules import OrderFacts, choose, customer_role
from exsync.schemas.config import validate_config
from tests.consumers.conftest import event, order_body


def facts(**overrides):
    values = {"payment_method": "bacs", "role": "guest", "total": decimal.Decimal("50.00"),
              "shipping_methods": frozenset({"flat_rate", "3"}), "status": "processing", "meta": {},
              "all_in_stock": lambda: True}
    values.update(overrides)
    return OrderFacts(**values)


def rules(*entries):
    config, problems = validate_config({"orders": {"rules": list(entries)}})
    assert problems == []
    return config["orders"]["rules"]


@pytest.mark.parametrize(("when", "matching", "other"), [
    ({"payment_method": ["cod"]}, {"payment_method": "cod"}, {"payment_method": "bacs"}),
    ({"role": ["wholesale_customer"]}, {"role": "wholesale_customer"}, {"role": "customer"}),
    ({"min_total": 100}, {"total": decimal.Decimal("100.00")}, {"total": decimal.Decimal("99.99")}),
    ({"max_total": 10}, {"total": decimal.Decimal("10.00")}, {"total": decimal.Decimal("10.01")}),
    ({"shipping_method": ["local_pickup"]}, {"shipping_methods": frozenset({"local_pickup", "7"})}, {}),
    ({"shipping_method": ["3"]}, {}, {"shipping_methods": frozenset({"flat_rate", "4"})}),
    ({"status": ["on-hold"]}, {"status": "on-hold"}, {}),
    ({"meta": {"_trade_order": "yes"}}, {"meta": {"_trade_order": "yes"}}, {"meta": {"_trade_order": "no"}}),
    ({"all_in_stock": False}, {"all_in_stock": lambda: False}, {}),
])
def test_each_condition_decides_its_rule(when, matching, other):
    configured = rules({"name": "special", "when": when, "action": "SQU"}, {"when": {}, "action": "SOR"})
    assert choose(configured, facts(**matching)).action == "SQU"
    assert choose(configured, facts(**matching)).rule == "special"
    assert choose(configured, facts(**other)).action == "SOR"


def test_first_match_wins_and_no_match_means_a_sales_order():
    configured = rules({"when": {"role": ["guest"]}, "action": "split"},
                       {"when": {"role": ["guest"], "min_total": 1}, "action": "SQU"})
    decision = choose(configured, facts())
    assert (decision.action, decision.rule) == ("split", "rules[0]")
    assert choose(configured, facts(role="customer")).action == "SOR"


def test_stock_is_read_only_for_rules_that_ask():
    asked = []
    configured = rules({"when": {"payment_method": ["cod"], "all_in_stock": True}, "action": "SQU"})
    choose(configured, facts(all_in_stock=lambda: asked.append(1) or True))
    assert asked == []  # payment_method failed first


def test_role_comes_from_the_order_meta_else_customer_or_guest():
    wholesale = order_body(lines=[], customer_id=5, meta=[("wwp_wholesale_role", "wholesale_customer")])
    assert customer_role(wholesale, role_meta_key="wwp_wholesale_role") == "wholesale_customer"
    assert customer_role(order_body(lines=[], customer_id=5), role_meta_key="wwp_wholesale_role") == "customer"
    assert customer_role(order_body(lines=[]), role_meta_key="wwp_wholesale_role") == "guest"


def test_rules_choose_the_document_type_in_the_consumer(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, publisher = make_consumer(dsn, rules=[
        {"when": {"role": ["wholesale_customer"]}, "action": "SQU"},
        {"when": {"all_in_stock": True}, "action": "SOR"},
        {"action": "SQU"}])
    wholesale = order_body(401, lines=[(codes[0], 1, "5.00", "5.00", "1.00")], customer_id=3,
                           meta=[("wwp_wholesale_role", "wholesale_customer")])
    in_stock = order_body(402, lines=[(codes[0], 1, "5.00", "5.00", "1.00")])
    short = order_body(403, lines=[(codes[0], 100000, "5.00", "5.00", "1.00")])
    for body in (wholesale, in_stock, short):
        consumer.handle_event(event(body))
    references = [sent["data"]["references"] for _, _, sent in publisher.published]
    assert [[ref[:3] for ref in refs] for refs in references] == [["SQU"], ["SOR"], ["SQU"]]


def test_bad_rules_are_reported_with_their_path(tmp_path, capsys):
    path = tmp_path / "exsync.yaml"
    path.write_text("orders:\n  rules:\n    - action: SOR\n    - when: {role: [boss], min_total: -1}\n"
                    "      action: invoice\n", encoding="utf-8")
    assert main(["check-config", "--path", str(path)]) == 1
    output = capsys.readouterr().out
    assert f"{path}:orders.rules[1].action: Must be one of: SOR, SQU, split." in output
    assert f"{path}:orders.rules[1].when.role[0]: Must be one of: guest, customer, wholesale_customer." in output
    assert f"{path}:orders.rules[1].when.min_total:" in output


def test_min_total_above_max_total_is_refused():
    _, problems = validate_config({"orders": {"rules": [{"when": {"min_total": 10, "max_total": 5},
                                                         "action": "SOR"}]}})
    assert problems == [("orders.rules[0].when.min_total", "must not be more than max_total")]


def test_order_vat_codes_must_be_exchequer_vat_codes():
    _, problems = validate_config({"exchequer": {"vat_codes": {"S": 20.0, "Z": 0.0}},
                                   "orders": {"vat": {"tax_classes": {"reduced-rate": "5"}},
                                              "rounding": {"vat_code": "S"}}})
    assert problems == [("orders.rounding.vat_code", "must be a VAT code with a 0% rate"),
                        ("orders.vat.tax_classes.reduced-rate", "VAT code '5' is not one of exchequer.vat_codes")]
