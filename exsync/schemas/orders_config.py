"""The `orders:` section of the configuration file: which orders are imported and how."""

import decimal

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from exsync.schemas import sections
from exsync.schemas.section_schema import SectionSchema as _SectionSchema

__all__ = ["DEFAULT_IMPORT_STATUSES", "DEFAULT_ORDER_OVERDUE_AFTER_SECONDS", "DEFAULT_ROUNDING_MAX_DIFFERENCE",
           "OrdersSchema"]


DEFAULT_IMPORT_STATUSES = ("processing",)
DEFAULT_ROUNDING_MAX_DIFFERENCE = decimal.Decimal("0.05")
# a paid order not imported for this long is overdue (exsync orders status, exsync_orders_overdue)
DEFAULT_ORDER_OVERDUE_AFTER_SECONDS = 900
DEFAULT_GUEST_ACCOUNT = "WEBSAL"
DEFAULT_ROLE_META_KEY = "wwp_wholesale_role"
ORDER_ACTIONS = ("SOR", "SQU", "split")
CUSTOMER_ROLES = ("guest", "customer", "wholesale_customer")
_VAT_CODE = validate.Length(equal=1)


class OrderConditionsSchema(Schema):
    """What an order must match for a rule to apply; every condition given must hold."""

    payment_method = fields.List(fields.String(validate=validate.Length(min=1)), validate=validate.Length(min=1))
    role = fields.List(fields.String(validate=validate.OneOf(CUSTOMER_ROLES)), validate=validate.Length(min=1))
    min_total = fields.Decimal(places=2, as_string=False, validate=validate.Range(min=0))
    max_total = fields.Decimal(places=2, as_string=False, validate=validate.Range(min=0))
    shipping_method = fields.List(fields.String(validate=validate.Length(min=1)), validate=validate.Length(min=1))
    status = fields.List(fields.String(validate=validate.Length(min=1)), validate=validate.Length(min=1))
    meta = fields.Dict(keys=fields.String(validate=validate.Length(min=1)), values=fields.String())
    all_in_stock = fields.Boolean()

    @validates_schema
    def _total_range(self, data: dict, **kwargs: object) -> None:
        if "min_total" in data and "max_total" in data and data["min_total"] > data["max_total"]:
            raise ValidationError("must not be more than max_total", "min_total")


class OrderRuleSchema(_SectionSchema):
    section = sections.OrderRule

    name = fields.String(load_default="")
    when = fields.Nested(OrderConditionsSchema, load_default=dict)
    action = fields.String(required=True, validate=validate.OneOf(ORDER_ACTIONS))


class OrderVatSchema(_SectionSchema):
    section = sections.OrderVatConfig

    default = fields.String(load_default="S", validate=_VAT_CODE)
    untaxed = fields.String(load_default="Z", validate=_VAT_CODE)
    tax_classes = fields.Dict(keys=fields.String(), values=fields.String(validate=_VAT_CODE), load_default=dict)
    # a tax rate's id or rate code (tax_lines[].rate_code, e.g. GB-VAT-1) -> VAT code; before tax_classes
    tax_rates = fields.Dict(keys=fields.String(validate=validate.Length(min=1)),
                            values=fields.String(validate=_VAT_CODE), load_default=dict)


class ShippingMappingSchema(_SectionSchema):
    section = sections.ShippingMapping

    description = fields.String(required=True, validate=validate.Length(min=1, max=60))


class OrderShippingSchema(_SectionSchema):
    section = sections.OrderShippingConfig

    default_description = fields.String(load_default="Carriage", validate=validate.Length(min=1, max=60))
    # key: a method instance id (as `exsync shipping-methods` lists them) or a method id (flat_rate)
    methods = fields.Dict(keys=fields.String(validate=validate.Length(min=1)),
                          values=fields.Nested(ShippingMappingSchema), load_default=dict)


class OrderRoundingSchema(_SectionSchema):
    section = sections.OrderRoundingConfig

    description = fields.String(load_default="Rounding", validate=validate.Length(min=1, max=60))
    vat_code = fields.String(load_default="Z", validate=_VAT_CODE)
    # The most a rounding line may cover per order; an order whose lines are further from its
    # total is parked with both figures instead of "rounded".
    max_difference = fields.Decimal(load_default=DEFAULT_ROUNDING_MAX_DIFFERENCE, places=2, as_string=False,
                                    validate=validate.Range(min=0, max=100))


class OrderDispatchSchema(_SectionSchema):
    section = sections.OrderDispatchConfig

    # thUserField numbers of the delivery note (SDN) holding the carrier and the tracking number
    carrier_field = fields.Integer(load_default=1, validate=validate.Range(min=1, max=12))
    tracking_field = fields.Integer(load_default=2, validate=validate.Range(min=1, max=12))


class OrdersSchema(_SectionSchema):
    section = sections.OrdersConfig

    import_statuses = fields.List(fields.String(validate=validate.Length(min=1)),
                                  load_default=lambda: list(DEFAULT_IMPORT_STATUSES), validate=validate.Length(min=1))
    guest_account = fields.String(load_default=DEFAULT_GUEST_ACCOUNT, validate=validate.Length(min=1, max=6))
    role_meta_key = fields.String(load_default=DEFAULT_ROLE_META_KEY, validate=validate.Length(min=1))
    imported_status = fields.String(load_default=None, allow_none=True)
    complete_on_dispatch = fields.Boolean(load_default=True)
    credit_note_on_refund = fields.Boolean(load_default=False)
    parked_retry_seconds = fields.Float(load_default=60.0, validate=validate.Range(min=1))
    overdue_after_seconds = fields.Integer(load_default=DEFAULT_ORDER_OVERDUE_AFTER_SECONDS,
                                           validate=validate.Range(min=1))
    vat = fields.Nested(OrderVatSchema, load_default=lambda: OrderVatSchema().load({}))
    shipping = fields.Nested(OrderShippingSchema, load_default=lambda: OrderShippingSchema().load({}))
    rounding = fields.Nested(OrderRoundingSchema, load_default=lambda: OrderRoundingSchema().load({}))
    dispatch = fields.Nested(OrderDispatchSchema, load_default=lambda: OrderDispatchSchema().load({}))
    rules = fields.List(fields.Nested(OrderRuleSchema), load_default=lambda: [
        sections.OrderRule(name="default", when={}, action="SOR")])
