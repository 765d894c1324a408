"""WooCommerce webhook bodies: what exsync relies on, checked before an event goes on the bus.

The bodies are REST resources (GET /wc/v3/<resource>s/<id>). Only the fields exsync relies on are
checked; the whole raw body travels on the bus, so nothing unchecked is dropped.
"""

import decimal
import re
from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from exsync.schemas.compiled import compile_check

__all__ = [
    "MAX_AMOUNT",
    "MAX_ID",
    "MAX_QUANTITY",
    "CustomerSchema",
    "DeletedSchema",
    "Id",
    "Money",
    "OrderSchema",
    "ProductSchema",
    "Quantity",
    "TOPIC_SHAPE",
    "amount_problem",
    "currency_places",
    "schema_for_topic",
    "validate_body",
]

# No web order comes near these; a body beyond them is a mistake or an attack, never money to book.
MAX_AMOUNT = decimal.Decimal("100000000")
MAX_QUANTITY = 1_000_000
# Ids are stored in 64-bit columns (WordPress's own ids are BIGINT UNSIGNED).
MAX_ID = 2**63 - 1
DEFAULT_CURRENCY_PLACES = 2
# ISO 4217 minor units where they are not 2.
CURRENCY_PLACES = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
                     "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def currency_places(currency: str | None) -> int:
    """The decimal places money is written with in `currency` (2 unless ISO 4217 says otherwise)."""
    return CURRENCY_PLACES.get(str(currency or "").upper(), DEFAULT_CURRENCY_PLACES)


def amount_problem(value: decimal.Decimal, *, places: int | None = None,
                   minimum: decimal.Decimal | int = -MAX_AMOUNT) -> str | None:
    """Why a Decimal cannot be money (None when it can): not finite, out of bounds, too many places."""
    if not value.is_finite():
        return f"{value} is not a finite amount"
    if value < minimum or value > MAX_AMOUNT:
        return f"{value} is outside {minimum} to {MAX_AMOUNT}"
    # A finite value's exponent is an int (only NaN and infinities have a letter there).
    exponent = value.as_tuple().exponent
    if places is not None and isinstance(exponent, int) and exponent < -places:
        return f"{value} has more than {places} decimal places"
    return None

# What a webhook topic looks like (`order.created`, `action.woocommerce_...`): checked by the
# receiver, and again when a parked delivery is replayed.
TOPIC_SHAPE = re.compile(r"^[a-z0-9_]+\.[a-z0-9_.\-]+$")


class Money(fields.Field):
    """A money amount as WooCommerce sends it: a decimal string ("12.50", "" for unset).

    Finite and within MAX_AMOUNT here; the places the currency allows are checked by the order
    (they depend on its `currency`). `detail` marks an amount WooCommerce does not round (a line's
    `taxes[].total`, its `price`): bounded, never checked for places.
    """

    def __init__(self, *, allow_blank: bool = False, minimum: decimal.Decimal | int = -MAX_AMOUNT, detail: bool = False,
                 **kwargs: Any) -> None:
        self.allow_blank = allow_blank
        self.minimum = minimum
        self.detail = detail
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> decimal.Decimal | None:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValidationError("Not a money amount.")
        if value == "" and self.allow_blank:
            return None
        try:
            amount = decimal.Decimal(str(value).strip())
        except decimal.InvalidOperation as error:
            raise ValidationError("Not a money amount.") from error
        problem = amount_problem(amount, minimum=self.minimum)
        if problem:
            raise ValidationError(f"Not a money amount: {problem}.")
        return amount


def _whole(value: object, *, minimum: int, maximum: int, what: str) -> int:
    # A float is never a whole number here, even 800006.0: WooCommerce writes integers as integers,
    # and a float id truncated would land on another order's id.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"Not a whole number: {value!r}.")
    if not minimum <= value <= maximum:
        raise ValidationError(f"{what} must be from {minimum} to {maximum}, not {value}.")
    return value


class Id(fields.Field):
    """A WooCommerce id: a JSON integer from `minimum` (1, or 0 for "none") to MAX_ID."""

    def __init__(self, *, minimum: int = 1, **kwargs: Any) -> None:
        self.minimum = minimum
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> int:
        return _whole(value, minimum=self.minimum, maximum=MAX_ID, what="An id")


class Quantity(fields.Field):
    """A line's quantity: a positive JSON integer up to MAX_QUANTITY."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> int:
        return _whole(value, minimum=1, maximum=MAX_QUANTITY, what="A quantity")


class _Open(Schema):
    class Meta:
        unknown = EXCLUDE


class AddressSchema(_Open):
    first_name = fields.String(load_default="")
    last_name = fields.String(load_default="")
    company = fields.String(load_default="")
    email = fields.String(allow_none=True, load_default=None)
    postcode = fields.String(load_default="")
    country = fields.String(load_default="")


class MetaSchema(_Open):
    key = fields.String(required=True)
    value = fields.Raw(allow_none=True)


class TaxSchema(_Open):
    """One tax charged on a line: WooCommerce leaves its `total` unrounded ("10.434")."""

    id = Id(required=True)
    total = Money(load_default="0", detail=True)
    # Shipping lines' taxes carry `"subtotal": ""` (WooCommerce has no pre-discount shipping tax).
    subtotal = Money(load_default="0", detail=True, allow_blank=True)


class LineItemSchema(_Open):
    id = Id(required=True)
    product_id = Id(minimum=0, load_default=0)
    variation_id = Id(minimum=0, load_default=0)
    sku = fields.String(allow_none=True, load_default="")
    quantity = Quantity(required=True)
    price = Money(allow_none=True, detail=True, minimum=0)
    subtotal = Money(required=True, minimum=0)
    total = Money(required=True, minimum=0)
    total_tax = Money(load_default="0", minimum=0)
    taxes = fields.List(fields.Nested(TaxSchema), load_default=list)


class ShippingLineSchema(_Open):
    id = Id(required=True)
    method_id = fields.String(load_default="")
    instance_id = fields.String(load_default="")
    method_title = fields.String(load_default="")
    total = Money(required=True, minimum=0)
    total_tax = Money(load_default="0", minimum=0)
    taxes = fields.List(fields.Nested(TaxSchema), load_default=list)


class FeeLineSchema(_Open):
    """A fee: negative ones are discounts, which WooCommerce allows."""

    id = Id(required=True)
    name = fields.String(load_default="")
    total = Money(required=True)
    total_tax = Money(load_default="0")
    taxes = fields.List(fields.Nested(TaxSchema), load_default=list)


class CouponLineSchema(_Open):
    id = Id(required=True)
    code = fields.String(required=True)
    discount = Money(load_default="0", minimum=0)


class RefundSchema(_Open):
    """A refund listed in an order: WooCommerce writes its total negative."""

    id = Id(required=True)
    total = Money(required=True)


# The order's money written to the currency's places (what `detail` fields are not).
_PART_MONEY = {"line_items": ("subtotal", "total", "total_tax"), "shipping_lines": ("total", "total_tax"),
               "fee_lines": ("total", "total_tax"), "coupon_lines": ("discount",), "refunds": ("total",)}


class OrderSchema(_Open):
    id = Id(required=True)
    number = fields.String(load_default="")
    status = fields.String(required=True, validate=validate.Length(min=1))
    currency = fields.String(load_default="")
    date_modified_gmt = fields.String(required=True, allow_none=True)
    customer_id = Id(minimum=0, load_default=0)
    billing = fields.Nested(AddressSchema, load_default=dict)
    shipping = fields.Nested(AddressSchema, load_default=dict)
    payment_method = fields.String(load_default="")
    prices_include_tax = fields.Boolean(load_default=False)
    total = Money(required=True, minimum=0)
    shipping_total = Money(load_default="0", minimum=0)
    total_tax = Money(load_default="0")
    line_items = fields.List(fields.Nested(LineItemSchema), required=True)
    shipping_lines = fields.List(fields.Nested(ShippingLineSchema), load_default=list)
    fee_lines = fields.List(fields.Nested(FeeLineSchema), load_default=list)
    coupon_lines = fields.List(fields.Nested(CouponLineSchema), load_default=list)
    refunds = fields.List(fields.Nested(RefundSchema), load_default=list)
    meta_data = fields.List(fields.Nested(MetaSchema), load_default=list)

    @validates_schema
    def _currency_places(self, data: dict[str, Any], **kwargs: Any) -> None:
        """Every amount the order writes as money has at most its currency's places."""
        places = currency_places(data.get("currency"))
        problems: dict[str, list[str]] = {}
        for name in ("total", "shipping_total", "total_tax"):
            problem = isinstance(data.get(name), decimal.Decimal) and amount_problem(data[name], places=places)
            if problem:
                problems[name] = [f"Not a money amount in {data.get('currency') or 'the currency'}: {problem}."]
        for part, names in _PART_MONEY.items():
            for index, line in enumerate(data.get(part) or []):
                for name in names:
                    # Defaults ("0") arrive undeserialised: only amounts the body wrote are checked.
                    problem = isinstance(line.get(name), decimal.Decimal) and amount_problem(line[name], places=places)
                    if problem:
                        problems[f"{part}.{index}.{name}"] = [f"Not a money amount: {problem}."]
        if problems:
            raise ValidationError(problems)


class CustomerSchema(_Open):
    id = Id(required=True)
    email = fields.String(required=True)
    first_name = fields.String(load_default="")
    last_name = fields.String(load_default="")
    role = fields.String(load_default="customer")
    date_modified_gmt = fields.String(required=True, allow_none=True)
    billing = fields.Nested(AddressSchema, load_default=dict)
    shipping = fields.Nested(AddressSchema, load_default=dict)
    meta_data = fields.List(fields.Nested(MetaSchema), load_default=list)


class ProductSchema(_Open):
    id = Id(required=True)
    sku = fields.String(load_default="")
    type = fields.String(load_default="simple")
    regular_price = Money(allow_blank=True, load_default="")
    manage_stock = fields.Boolean(load_default=False)
    stock_quantity = fields.Integer(allow_none=True, load_default=None)
    stock_status = fields.String(load_default="instock")
    date_modified_gmt = fields.String(required=True, allow_none=True)
    meta_data = fields.List(fields.Nested(MetaSchema), load_default=list)


class DeletedSchema(_Open):
    """A deleted resource: WooCommerce sends only its id."""

    id = Id(required=True)


# Made once: building a schema with nested fields costs more than validating a body with it.
_RESOURCE_SCHEMAS = {"order": OrderSchema(), "customer": CustomerSchema(), "product": ProductSchema()}
_DELETED_SCHEMA = DeletedSchema()
# Each schema compiled into a check that answers "certainly valid" at a fraction of marshmallow's cost
# (the receiver checks every delivery); anything it is not sure of goes to marshmallow, which decides.
_CHECKS = {id(schema): compile_check(schema) for schema in (*_RESOURCE_SCHEMAS.values(), _DELETED_SCHEMA)}


def schema_for_topic(topic: str) -> Schema | None:
    """The schema that checks a topic's body, or None for topics exsync passes on unchecked."""
    resource, _, event = topic.partition(".")
    if resource not in _RESOURCE_SCHEMAS:
        return None
    return _DELETED_SCHEMA if event == "deleted" else _RESOURCE_SCHEMAS[resource]


def validate_body(topic: str, body: Any) -> dict[str, Any]:
    """Returns the schema's error messages for a body under a topic ({} when it is valid)."""
    schema = schema_for_topic(topic)
    if schema is None:
        return {}
    check = _CHECKS.get(id(schema))
    if check is not None and check(body):
        return {}
    return schema.validate(body)
