"""The compiled checks never call valid what marshmallow calls invalid (marshmallow stays the authority)."""

import copy
import random

import pytest
from marshmallow import Schema, fields, post_load, validate

from exsync.schemas.compiled import compile_check
from exsync.schemas.woo import CustomerSchema, DeletedSchema, OrderSchema, ProductSchema
from tests.support.woo import fixture

CUSTOMER = {"id": 26, "email": "joe@example.com", "first_name": "Joe", "role": "customer",
            "date_modified_gmt": "2026-01-02T03:04:05", "billing": {"first_name": "Joe", "email": "joe@example.com",
                                                                    "postcode": "AB1 2CD", "country": "GB"},
            "shipping": {}, "meta_data": [{"id": 1, "key": "vat", "value": "GB123"}]}
PRODUCT = {"id": 94, "sku": "WIDGET-1", "type": "simple", "regular_price": "12.50", "manage_stock": True,
           "stock_quantity": 7, "stock_status": "instock", "date_modified_gmt": "2026-01-02T03:04:05",
           "meta_data": []}
# Values a body may carry where another was expected: every JSON type, and the edges of exsync's fields.
ODD_VALUES = (None, True, False, 0, 1, -1, 2**63, 2**63 - 1, 1.5, 800006.0, float("inf"), "", " ", "0", "12.50",
              "12.505", "-3.00", "abc", "NaN", "Infinity", "1e9", "1E+2", "true", "yes", "1", [], {}, [{}], [1],
              {"id": 1}, [{"id": 1, "total": "1.00"}], "JPY", "BHD")


def _paths(value, prefix=()):
    """Every path to a value inside nested dicts and lists."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _mutated(body, rng):
    body = copy.deepcopy(body)
    for _ in range(rng.choice((1, 1, 2, 3))):
        paths = [p for p in _paths(body) if p]
        if not paths:
            break
        path = rng.choice(paths)
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        if rng.random() < 0.2:
            if isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent.pop(path[-1])
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(ODD_VALUES))
    if rng.random() < 0.2:
        body["currency"] = rng.choice(("JPY", "BHD", "", "GBP", None, 3))
    return body


@pytest.mark.parametrize("schema, body", [
    (OrderSchema(), fixture("order_727.json")),
    (CustomerSchema(), CUSTOMER),
    (ProductSchema(), PRODUCT),
    (DeletedSchema(), {"id": 727}),
])
def test_a_compiled_check_calls_valid_only_what_marshmallow_calls_valid(schema, body):
    check = compile_check(schema)
    assert schema.validate(body) == {}
    assert check(body) is True  # the usual body takes the fast path
    rng = random.Random(1613)
    agreed = 0
    for _ in range(1500):
        changed = _mutated(body, rng)
        errors = schema.validate(changed)
        if check(changed):
            assert errors == {}, changed
        agreed += check(changed) == (errors == {})
    # Where they differ the check only passed the decision on (a "true" for a boolean, say).
    assert agreed > 1400


def test_a_body_that_is_no_object_is_left_to_marshmallow():
    check = compile_check(OrderSchema())
    for body in (None, [], "order", 727, [fixture("order_727.json")]):
        assert check(body) is False


def test_a_schema_with_what_the_compiler_does_not_model_is_not_compiled():
    class Loaded(Schema):
        name = fields.String(validate=validate.Length(min=1))

        @post_load
        def made(self, data, **kwargs):
            return data

    assert compile_check(Loaded()) is None
