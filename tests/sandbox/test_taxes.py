"""Taxes in the sandbox over HTTP, as a WooCommerce 8.9 shop with taxes on calculates them."""

import decimal

import pytest

from exsync.sandbox import place_order, seed_catalogue, seed_taxes
from exsync.woo import WooBadRequest, WooNotFound

D = decimal.Decimal


def _enable_taxes(client, *, rate="20.0000", prices_include_tax="no"):
    """The way a shop manager turns taxes on: the setting, then a rate."""
    setting = client.request("PUT", "settings/general/woocommerce_calc_taxes", json={"value": "yes"}).body
    assert (setting["id"], setting["value"], setting["type"]) == ("woocommerce_calc_taxes", "yes", "checkbox")
    client.request("PUT", "settings/tax/woocommerce_prices_include_tax", json={"value": prices_include_tax})
    created = client.request("POST", "taxes", json={"country": "GB", "rate": rate, "name": "VAT", "priority": 1,
                                                    "shipping": True, "class": "standard"})
    assert created.status == 201
    return created.body


def _uk_order(client, lines, shipping_total=None):
    body = {"status": "processing", "billing": {"country": "GB", "email": "buyer@example.test"},
            "shipping": {"country": "GB"}, "line_items": [{"sku": sku, "quantity": qty} for sku, qty in lines]}
    if shipping_total is not None:
        body["shipping_lines"] = [{"method_id": "flat_rate", "instance_id": "1", "method_title": "Standard",
                                   "total": shipping_total}]
    return client.create_order(body)


def test_no_taxes_until_a_shop_manager_turns_them_on(client, shop):
    seed_catalogue(shop, count=1, regular_price="52.17")
    before = _uk_order(client, [("SKU-0001", 1)])
    assert (before["total_tax"], before["tax_lines"], before["line_items"][0]["taxes"]) == ("0.00", [], [])
    # A rate alone does nothing while the setting is off.
    client.request("POST", "taxes", json={"country": "GB", "rate": "20", "name": "VAT"})
    assert _uk_order(client, [("SKU-0001", 1)])["total_tax"] == "0.00"
    client.request("PUT", "settings/general/woocommerce_calc_taxes", json={"value": "yes"})
    assert _uk_order(client, [("SKU-0001", 1)])["total_tax"] == "10.43"


def test_a_taxed_order_carries_unrounded_line_taxes_rounded_totals_and_tax_lines(client, shop):
    rate = _enable_taxes(client)
    assert (rate["rate"], rate["class"], rate["shipping"]) == ("20.0000", "standard", True)
    seed_catalogue(shop, count=2, regular_price="52.17")
    order = _uk_order(client, [("SKU-0001", 1), ("SKU-0002", 3)], shipping_total="4.95")
    first, second = order["line_items"]
    assert first["taxes"] == [{"id": rate["id"], "total": "10.434", "subtotal": "10.434"}]
    assert (first["total"], first["total_tax"]) == ("52.17", "10.43")
    assert second["taxes"][0]["total"] == "31.302" and second["total_tax"] == "31.30"
    [shipping] = order["shipping_lines"]
    assert (shipping["total"], shipping["total_tax"]) == ("4.95", "0.99")
    assert shipping["taxes"][0]["id"] == rate["id"]
    [tax_line] = order["tax_lines"]
    assert {k: tax_line[k] for k in ("rate_id", "rate_code", "label", "tax_total", "shipping_tax_total")} == {
        "rate_id": rate["id"], "rate_code": "GB-VAT-1", "label": "VAT", "tax_total": "41.73",
        "shipping_tax_total": "0.99"}
    assert (order["cart_tax"], order["shipping_tax"], order["total_tax"]) == ("41.73", "0.99", "42.72")
    lines = sum(D(item["total"]) + D(item["total_tax"]) for item in order["line_items"])
    assert D(order["total"]) == lines + D(shipping["total"]) + D(shipping["total_tax"]) == D("256.35")
    assert order["prices_include_tax"] is False


def test_prices_entered_with_tax(client, shop):
    _enable_taxes(client, prices_include_tax="yes")
    seed_catalogue(shop, count=1, regular_price="12.00")
    # Through REST the tax comes off the price unrounded and is charged again on what is left.
    order = _uk_order(client, [("SKU-0001", 1)])
    item = order["line_items"][0]
    assert (item["total"], item["total_tax"], order["total"]) == ("10.00", "2.00", "12.00")
    assert order["prices_include_tax"] is True
    shop.update_product(item["product_id"], {"regular_price": "9.99"})
    # A checkout keeps the price paid: the penny-rounded tax comes off it.
    checkout = place_order(shop, lines=[("SKU-0001", 1)])
    item = checkout["line_items"][0]
    assert (item["total"], item["total_tax"], item["taxes"][0]["total"], checkout["total"]) == (
        "8.32", "1.67", "1.665", "9.99")


def test_the_rate_follows_the_shipping_address_and_the_tax_class(client, shop):
    _enable_taxes(client)
    client.request("POST", "taxes", json={"country": "GB", "rate": "5", "name": "VAT", "class": "reduced-rate"})
    products = seed_catalogue(shop, count=2, regular_price="10.00")
    client.update_product(products[1]["id"], {"tax_class": "reduced-rate"})
    order = _uk_order(client, [("SKU-0001", 1), ("SKU-0002", 1)])
    assert [item["total_tax"] for item in order["line_items"]] == ["2.00", "0.50"]
    # Both rates are GB-VAT-1 (country, name, priority): only the rate tells them apart.
    assert sorted((t["rate_code"], t["rate_percent"], t["tax_total"]) for t in order["tax_lines"]) == [
        ("GB-VAT-1", 5.0, "0.50"), ("GB-VAT-1", 20.0, "2.00")]
    abroad = client.create_order({"billing": {"country": "GB"}, "shipping": {"country": "US"},
                                  "line_items": [{"sku": "SKU-0001", "quantity": 1}]})
    assert (abroad["total_tax"], abroad["tax_lines"]) == ("0.00", [])


def test_settings_and_rates_refuse_what_woocommerce_refuses(client):
    with pytest.raises(WooBadRequest) as raised:
        client.request("PUT", "settings/general/woocommerce_calc_taxes", json={"value": "maybe"})
    assert raised.value.code == "rest_setting_value_invalid"
    with pytest.raises(WooNotFound):
        client.request("GET", "settings/general/no_such_option")
    with pytest.raises(WooBadRequest) as raised:
        client.request("POST", "taxes", json={"country": "GB", "rate": "20", "class": "luxury"})
    assert raised.value.code == "rest_invalid_param"
    assert [c["slug"] for c in client.get("taxes/classes")] == ["standard", "reduced-rate", "zero-rate"]
    assert client.get("settings/general/woocommerce_calc_taxes")["value"] == "no"


def test_seed_taxes_is_the_demo_shop_s_gb_vat(shop):
    rate = seed_taxes(shop)
    assert shop.taxes_enabled and shop.setting("woocommerce_prices_include_tax") == "no"
    assert shop.get_tax_rate(rate["id"])["rate"] == "20.0000"
