"""WooCommerce webhook bodies: what exsync relies on, checked before an event goes on the bus.

The bodies are REST resources (GET /wc/v3/<resource>s/<id>). Only the fields exsync relies on are
checked; the whole raw body travels on the bus, so nothing unchecked is dropped.
"""

import decimal
import re

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

__all__ = [
    "CustomerSchema",
    "DeletedSchema",
    "Money",
    "OrderSchema",
    "ProductSchema",
    "TOPIC_SHAPE",
    "schema_for_topic",
    "validate_body",
]

# What a webhook topic looks like (`order.created`, `action.woocommerce_...`): checked by the
# receiver, and again when a parked delivery is replayed.
TOPIC_SHAPE = re.compile(r"^[a-z0-9_]+\.[a-z0-9_.\-]+$")


class Money(fields.Field):
    """A money amount as WooCommerce sends it: a decimal string ("12.50", "" for unset)."""

    def __init__(self, *, allow_blank=False, **kwargs):
        self.allow_blank = allow_blank
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise ValidationError("Not a money amount.")
        if value == "" and self.allow_blank:
            return None
        try:
            return decimal.Decimal(str(value))
        except decimal.InvalidOperation as error:
            raise ValidationError("Not a money amount.") from error


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


class LineItemSchema(_Open):
    id = fields.Integer(required=True)
    product_id = fields.Integer(load_default=0)
    variation_id = fields.Integer(load_default=0)
    sku = fields.String(allow_none=True, load_default="")
    quantity = fields.Float(required=True)
    price = fields.Float(allow_none=True)
    subtotal = Money(required=True)
    total = Money(required=True)
    total_tax = Money(load_default="0")


class ShippingLineSchema(_Open):
    id = fields.Integer(required=True)
    method_id = fields.String(load_default="")
    instance_id = fields.String(load_default="")
    method_title = fields.String(load_default="")
    total = Money(required=True)


class FeeLineSchema(_Open):
    id = fields.Integer(required=True)
    name = fields.String(load_default="")
    total = Money(required=True)


class CouponLineSchema(_Open):
    id = fields.Integer(required=True)
    code = fields.String(required=True)
    discount = Money(load_default="0")


class OrderSchema(_Open):
    id = fields.Integer(required=True, validate=validate.Range(min=1))
    number = fields.String(load_default="")
    status = fields.String(required=True, validate=validate.Length(min=1))
    currency = fields.String(load_default="")
    date_modified_gmt = fields.String(required=True, allow_none=True)
    customer_id = fields.Integer(load_default=0)
    billing = fields.Nested(AddressSchema, load_default=dict)
    shipping = fields.Nested(AddressSchema, load_default=dict)
    payment_method = fields.String(load_default="")
    prices_include_tax = fields.Boolean(load_default=False)
    total = Money(required=True)
    line_items = fields.List(fields.Nested(LineItemSchema), required=True)
    shipping_lines = fields.List(fields.Nested(ShippingLineSchema), load_default=list)
    fee_lines = fields.List(fields.Nested(FeeLineSchema), load_default=list)
    coupon_lines = fields.List(fields.Nested(CouponLineSchema), load_default=list)
    meta_data = fields.List(fields.Nested(MetaSchema), load_default=list)


class CustomerSchema(_Open):
    id = fields.Integer(required=True, validate=validate.Range(min=1))
    email = fields.String(required=True)
    first_name = fields.String(load_default="")
    last_name = fields.String(load_default="")
    role = fields.String(load_default="customer")
    date_modified_gmt = fields.String(required=True, allow_none=True)
    billing = fields.Nested(AddressSchema, load_default=dict)
    shipping = fields.Nested(AddressSchema, load_default=dict)
    meta_data = fields.List(fields.Nested(MetaSchema), load_default=list)


class ProductSchema(_Open):
    id = fields.Integer(required=True, validate=validate.Range(min=1))
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

    id = fields.Integer(required=True, validate=validate.Range(min=1))


# Made once: building a schema with nested fields costs more than validating a body with it.
_RESOURCE_SCHEMAS = {"order": OrderSchema(), "customer": CustomerSchema(), "product": ProductSchema()}
_DELETED_SCHEMA = DeletedSchema()


def schema_for_topic(topic):
    """The schema that checks a topic's body, or None for topics exsync passes on unchecked."""
    resource, _, event = topic.partition(".")
    if resource not in _RESOURCE_SCHEMAS:
        return None
    return _DELETED_SCHEMA if event == "deleted" else _RESOURCE_SCHEMAS[resource]


def validate_body(topic, body):
    """Returns the schema's error messages for a body under a topic ({} when it is valid)."""
    schema = schema_for_topic(topic)
    if schema is None:
        return {}
    return schema.validate(body)
