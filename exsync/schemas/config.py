"""The YAML configuration file: rules and mappings, validated before anything runs."""

from collections.abc import Iterator
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from exsync.schemas import sections
from exsync.schemas.orders_config import (
    DEFAULT_ROUNDING_MAX_DIFFERENCE,
    OrdersSchema,
)
from exsync.schemas.section_schema import SectionSchema as _SectionSchema

__all__ = ["ConfigSchema", "default_config", "validate_config", "DEFAULT_DELIVERY_TIMEOUT_SECONDS",
           "DEFAULT_MAX_JSON_DEPTH", "DEFAULT_ROUNDING_MAX_DIFFERENCE"]

DEFAULT_RETRY_DELAYS_SECONDS = (5, 30, 300)
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_PREFETCH = 10
DEFAULT_HANDLER_THREADS = 4
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
DEFAULT_MAX_JSON_DEPTH = 64
DEFAULT_DELIVERY_TIMEOUT_SECONDS = 5.0


class BusSchema(_SectionSchema):
    section = sections.BusConfig

    prefetch = fields.Integer(load_default=DEFAULT_PREFETCH, validate=validate.Range(min=1, max=1000))
    retry_delays_seconds = fields.List(
        fields.Integer(validate=validate.Range(min=1)),
        load_default=list(DEFAULT_RETRY_DELAYS_SECONDS),
        validate=validate.Length(min=1),
    )
    max_attempts = fields.Integer(load_default=DEFAULT_MAX_ATTEMPTS, validate=validate.Range(min=1))
    # handlers at once in one consumer process, for consumers that are safe to run on several threads
    handler_threads = fields.Integer(load_default=DEFAULT_HANDLER_THREADS, validate=validate.Range(min=1, max=64))


class WebhookSchema(_SectionSchema):
    section = sections.WebhookConfig

    max_body_bytes = fields.Integer(
        load_default=DEFAULT_MAX_BODY_BYTES, validate=validate.Range(min=1024)
    )
    # A WooCommerce body nests a few levels; far deeper is an attack on the parser.
    max_json_depth = fields.Integer(load_default=DEFAULT_MAX_JSON_DEPTH, validate=validate.Range(min=8, max=512))
    # How long one delivery may wait for its broker confirm before it is answered 503: well under
    # WooCommerce's own delivery timeout (60 s), so a stalled broker does not hold every slot.
    delivery_timeout_seconds = fields.Float(load_default=DEFAULT_DELIVERY_TIMEOUT_SECONDS,
                                            validate=validate.Range(min=0.1, max=50))


class LocationsField(fields.Field):
    """`all`, or a list of 3-character location codes."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: object) -> str | list[str]:
        if value == "all":
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) and 1 <= len(v) <= 3 for v in value):
            return list(value)
        raise ValidationError("must be 'all' or a non-empty list of location codes (up to 3 characters)")


DEFAULT_ACCOUNT_CODE_PATTERN = "LLLLNN"
DEFAULT_ACCOUNT_CODE_SOURCE = "company"


class AccountCodeSchema(_SectionSchema):
    section = sections.AccountCodeConfig

    pattern = fields.String(load_default=DEFAULT_ACCOUNT_CODE_PATTERN, validate=validate.Regexp(r"^L+N+$"))
    source = fields.String(load_default=DEFAULT_ACCOUNT_CODE_SOURCE, validate=validate.OneOf(["company", "surname"]))


_STOCK_USER_FIELDS = [f"stUserField{n}" for n in range(1, 11)]
DEFAULT_AGENT_REPLY_TIMEOUT_SECONDS = 30.0
DEFAULT_AGENT_ACCOUNT_KEY_FIELD = "acUserDef10"
DEFAULT_EDITION = "sql"
DEFAULT_COMPANY = "ZZZZ01"
DEFAULT_STATE_SCHEMA = "exsync"
DEFAULT_LOCATION = "MAI"
DEFAULT_CATEGORY_FIELD = "stUserField1"
DEFAULT_WEB_FLAG_FIELD = "stUserField2"
DEFAULT_WEB_FLAG_VALUE = "Y"
DEFAULT_VAT_CODES = {"S": 20.0, "Z": 0.0, "E": 0.0, "5": 5.0}


class ExchequerAgentSchema(_SectionSchema):
    """The Exchequer agent (exsync exchequer agent), the write path to a real company."""
    section = sections.ExchequerAgentConfig

    toolkit = fields.String(load_default="com", validate=validate.OneOf(["com", "emulator"]))
    data_directory = fields.String(load_default=None, allow_none=True)
    reply_timeout_seconds = fields.Float(load_default=DEFAULT_AGENT_REPLY_TIMEOUT_SECONDS,
                                         validate=validate.Range(min=0.1, max=3600))
    account_key_field = fields.String(load_default=DEFAULT_AGENT_ACCOUNT_KEY_FIELD,
                                      validate=validate.OneOf([f"acUserDef{n}" for n in range(1, 11)]))


class ExchequerSchema(_SectionSchema):
    section = sections.ExchequerConfig

    edition = fields.String(load_default=DEFAULT_EDITION, validate=validate.OneOf(["sql"]))
    company = fields.String(load_default=DEFAULT_COMPANY, validate=validate.Length(min=1, max=30))
    table_prefix = fields.String(load_default=None, allow_none=True)
    state_schema = fields.String(load_default=DEFAULT_STATE_SCHEMA, validate=validate.Length(min=1, max=30))
    locations = LocationsField(load_default="all")
    default_location = fields.String(load_default=DEFAULT_LOCATION, validate=validate.Length(min=1, max=3))
    category_field = fields.String(load_default=DEFAULT_CATEGORY_FIELD, validate=validate.OneOf(_STOCK_USER_FIELDS))
    # A stock user field holding web_flag_value, or Exchequer's own eBusiness flag stUseForEbus (1 on).
    web_flag_field = fields.String(load_default=DEFAULT_WEB_FLAG_FIELD,
                                   validate=validate.OneOf([*_STOCK_USER_FIELDS, "stUseForEbus"]))
    web_flag_value = fields.String(load_default=DEFAULT_WEB_FLAG_VALUE)
    account_code = fields.Nested(AccountCodeSchema, load_default=lambda: AccountCodeSchema().load({}))
    vat_codes = fields.Dict(keys=fields.String(validate=validate.Length(equal=1)),
                            values=fields.Float(validate=validate.Range(min=0, max=100)),
                            load_default=lambda: dict(DEFAULT_VAT_CODES))
    tables = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    columns = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    # emulator: exsync writes the demo company itself (refused anywhere else); toolkit: writes are
    # commands to the Exchequer agent, which saves them through Exchequer's Toolkit.
    write_backend = fields.String(load_default="emulator", validate=validate.OneOf(["emulator", "toolkit"]))
    agent = fields.Nested(ExchequerAgentSchema, load_default=lambda: ExchequerAgentSchema().load({}))


DEFAULT_SHOP_REQUESTS_PER_SECOND = 5.0
DEFAULT_SHOP_TIMEOUT_SECONDS = 30.0
DEFAULT_SHOP_MAX_ATTEMPTS = 5
# product batches the woo-writer keeps in flight at most (a host serves several PHP requests at once)
DEFAULT_SHOP_MAX_CONCURRENT_REQUESTS = 2
DEFAULT_WEBHOOK_TOPICS = ("order.created", "order.updated", "order.deleted", "customer.created",
                          "customer.updated", "customer.deleted")
DEFAULT_WEBHOOK_NAME_PREFIX = "exsync:"
DEFAULT_WEBHOOK_API_VERSION = "wp_api_v3"
DEFAULT_RECONCILE_INTERVAL_SECONDS = 60
DEFAULT_RECONCILE_OVERLAP_SECONDS = 120
DEFAULT_RECONCILE_INITIAL_LOOKBACK_SECONDS = 24 * 3600
DEFAULT_CUSTOMER_ROLES = ("customer", "wholesale_customer")
_WEBHOOK_TOPIC = r"^((order|customer|product|coupon)\.(created|updated|deleted|restored)|action\.[A-Za-z0-9_\-]+)$"


class ShopWebhooksSchema(_SectionSchema):
    section = sections.ShopWebhooksConfig

    delivery_url = fields.Url(load_default=None, allow_none=True, require_tld=False, schemes={"http", "https"})
    topics = fields.List(fields.String(validate=validate.Regexp(_WEBHOOK_TOPIC)),
                         load_default=list(DEFAULT_WEBHOOK_TOPICS), validate=validate.Length(min=1))
    name_prefix = fields.String(load_default=DEFAULT_WEBHOOK_NAME_PREFIX, validate=validate.Length(min=1, max=40))
    api_version = fields.String(load_default=DEFAULT_WEBHOOK_API_VERSION,
                                validate=validate.OneOf(["wp_api_v3", "wp_api_v2"]))


class ShopReconcileSchema(_SectionSchema):
    section = sections.ShopReconcileConfig

    interval_seconds = fields.Integer(load_default=DEFAULT_RECONCILE_INTERVAL_SECONDS, validate=validate.Range(min=1))
    overlap_seconds = fields.Integer(load_default=DEFAULT_RECONCILE_OVERLAP_SECONDS, validate=validate.Range(min=0))
    initial_lookback_seconds = fields.Integer(load_default=DEFAULT_RECONCILE_INITIAL_LOOKBACK_SECONDS,
                                              validate=validate.Range(min=0))
    customer_roles = fields.List(fields.String(validate=validate.Length(min=1)),
                                 load_default=lambda: list(DEFAULT_CUSTOMER_ROLES))
    register_webhooks = fields.Boolean(load_default=True)


class ShopSchema(_SectionSchema):
    section = sections.ShopConfig

    # the whole deployment's budget for the shop: every process takes its tokens from one row in the
    # state database (exsync.woo.ratelimit says why shared rather than divided by replicas)
    requests_per_second = fields.Float(load_default=DEFAULT_SHOP_REQUESTS_PER_SECOND,
                                       validate=validate.Range(min=0.01, max=1000))
    timeout_seconds = fields.Float(load_default=DEFAULT_SHOP_TIMEOUT_SECONDS, validate=validate.Range(min=1))
    max_attempts = fields.Integer(load_default=DEFAULT_SHOP_MAX_ATTEMPTS, validate=validate.Range(min=1, max=20))
    max_concurrent_requests = fields.Integer(load_default=DEFAULT_SHOP_MAX_CONCURRENT_REQUESTS,
                                             validate=validate.Range(min=1, max=32))
    verify_tls = fields.Boolean(load_default=True)
    ca_bundle = fields.String(load_default=None, allow_none=True)
    oauth_signature_method = fields.String(load_default="HMAC-SHA256",
                                           validate=validate.OneOf(["HMAC-SHA256", "HMAC-SHA1"]))
    webhooks = fields.Nested(ShopWebhooksSchema, load_default=lambda: ShopWebhooksSchema().load({}))
    reconcile = fields.Nested(ShopReconcileSchema, load_default=lambda: ShopReconcileSchema().load({}))




DEFAULT_CAPTURE_INTERVAL_SECONDS = 15.0
DEFAULT_CAPTURE_EVENT_ITEMS = 500
DEFAULT_CAPTURE_LEASE_SECONDS = 120.0
DEFAULT_PRODUCTS_FLUSH_ITEMS = 100
DEFAULT_PRODUCTS_MAX_ITEM_ATTEMPTS = 5
DEFAULT_PRODUCTS_ITEM_RETRY_SECONDS = 30.0
# An order event's SKUs are checked this long after it: time for a paid order to be imported (its
# SOR allocates the stock), so the check does not see Exchequer before the allocation.
DEFAULT_STOCK_CHECK_DELAY_SECONDS = 5.0
DEFAULT_STOCK_AUDIT_INTERVAL_SECONDS = 900.0
DEFAULT_WRITER_LEASE_SECONDS = 120.0


class CaptureSchema(_SectionSchema):
    section = sections.CaptureConfig

    interval_seconds = fields.Float(load_default=DEFAULT_CAPTURE_INTERVAL_SECONDS,
                                    validate=validate.Range(min=0.1))
    event_items = fields.Integer(load_default=DEFAULT_CAPTURE_EVENT_ITEMS, validate=validate.Range(min=1, max=10000))
    lease_seconds = fields.Float(load_default=DEFAULT_CAPTURE_LEASE_SECONDS, validate=validate.Range(min=1))


class ProductsSchema(_SectionSchema):
    section = sections.ProductsConfig

    flush_items = fields.Integer(load_default=DEFAULT_PRODUCTS_FLUSH_ITEMS, validate=validate.Range(min=1))
    max_item_attempts = fields.Integer(load_default=DEFAULT_PRODUCTS_MAX_ITEM_ATTEMPTS,
                                       validate=validate.Range(min=1, max=100))
    item_retry_seconds = fields.Float(load_default=DEFAULT_PRODUCTS_ITEM_RETRY_SECONDS, validate=validate.Range(min=0))
    stock_check_delay_seconds = fields.Float(load_default=DEFAULT_STOCK_CHECK_DELAY_SECONDS,
                                             validate=validate.Range(min=0, max=3600))
    # every product's stock in the shop compared with Exchequer's and corrected; null: never
    stock_audit_interval_seconds = fields.Float(load_default=DEFAULT_STOCK_AUDIT_INTERVAL_SECONDS, allow_none=True,
                                                validate=validate.Range(min=1))
    # the writer's lease (one writer of the shop's products); a crashed holder's passes after this
    lease_seconds = fields.Float(load_default=DEFAULT_WRITER_LEASE_SECONDS, validate=validate.Range(min=1))


CUSTOMER_FIELDS = ("email", "contact", "company", "address_1", "address_2", "address_3", "address_4", "post_code",
                   "phone", "wholesale")
CONFLICT_POLICIES = ("woo", "exchequer", "newest", "manual")
EXPORT_ACCOUNTS = ("all", "linked")
DEFAULT_CUSTOMER_EVENT_ITEMS = 100


class CustomerConflictsSchema(_SectionSchema):
    """Who wins a field changed on both sides since the last sync: the shop, Exchequer, the side
    changed last, or a person (`manual` parks the field until `exsync customers resolve`)."""

    section = sections.CustomerConflictsConfig

    default = fields.String(load_default="newest", validate=validate.OneOf(CONFLICT_POLICIES))
    fields_ = fields.Dict(data_key="fields", attribute="fields", keys=fields.String(validate=validate.OneOf(
        CUSTOMER_FIELDS)), values=fields.String(validate=validate.OneOf(CONFLICT_POLICIES)), load_default=dict)


class CustomersSchema(_SectionSchema):
    section = sections.CustomersConfig

    # off: capture publishes no account changes and the customer consumers drop what they receive
    enabled = fields.Boolean(load_default=True)
    # which Exchequer customer accounts the shop gets: only those linked to a shop customer (edits),
    # or every one with an e-mail address (new ones become shop customers)
    # `all` makes every account a WordPress user, and WooCommerce sends each its new-account e-mail
    export_accounts = fields.String(load_default="linked", validate=validate.OneOf(EXPORT_ACCOUNTS))
    # a new shop customer is linked to an existing account with the same e-mail before one is created
    match_by_email = fields.Boolean(load_default=True)
    # band A is where a customer who stops being wholesale goes, so it cannot also mean wholesale
    wholesale_band = fields.String(load_default="B", validate=validate.OneOf(list("BCDEFGH")))
    wholesale_role = fields.String(load_default="wholesale_customer", validate=validate.Length(min=1))
    conflicts = fields.Nested(CustomerConflictsSchema, load_default=lambda: CustomerConflictsSchema().load({}))
    event_items = fields.Integer(load_default=DEFAULT_CUSTOMER_EVENT_ITEMS, validate=validate.Range(min=1, max=1000))


DEFAULT_HEALTH_STALL_SECONDS = 300.0


class HealthSchema(_SectionSchema):
    section = sections.HealthConfig

    # /healthz fails once a process loop (consume, capture, reconcile) has not come back, or one
    # message's handler has run, for this long; the liveness probe then restarts the pod.
    stall_seconds = fields.Float(load_default=DEFAULT_HEALTH_STALL_SECONDS, validate=validate.Range(min=1))


class ConfigSchema(_SectionSchema):
    section = sections.Config

    bus = fields.Nested(BusSchema, load_default=lambda: BusSchema().load({}))
    webhook = fields.Nested(WebhookSchema, load_default=lambda: WebhookSchema().load({}))
    exchequer = fields.Nested(ExchequerSchema, load_default=lambda: ExchequerSchema().load({}))
    shop = fields.Nested(ShopSchema, load_default=lambda: ShopSchema().load({}))
    capture = fields.Nested(CaptureSchema, load_default=lambda: CaptureSchema().load({}))
    products = fields.Nested(ProductsSchema, load_default=lambda: ProductsSchema().load({}))
    orders = fields.Nested(OrdersSchema, load_default=lambda: OrdersSchema().load({}))
    customers = fields.Nested(CustomersSchema, load_default=lambda: CustomersSchema().load({}))
    health = fields.Nested(HealthSchema, load_default=lambda: HealthSchema().load({}))

    @validates_schema
    def _order_vat_codes(self, data: dict, **kwargs: object) -> None:
        """The order mapping's VAT codes must be ones exchequer.vat_codes gives a rate (rounding: 0%)."""
        rates = data["exchequer"].vat_codes
        vat, rounding = data["orders"].vat, data["orders"].rounding
        problems = {}
        for where, code in (("vat.default", vat.default), ("vat.untaxed", vat.untaxed),
                            ("rounding.vat_code", rounding.vat_code),
                            *((f"vat.tax_classes.{k}", v) for k, v in vat.tax_classes.items()),
                            *((f"vat.tax_rates.{k}", v) for k, v in vat.tax_rates.items())):
            if code not in rates:
                problems[where] = [f"VAT code {code!r} is not one of exchequer.vat_codes"]
        if rounding.vat_code in rates and rates[rounding.vat_code] != 0:
            problems["rounding.vat_code"] = ["must be a VAT code with a 0% rate"]
        if problems:
            raise ValidationError({"orders": problems})

    @validates_schema
    def _wholesale_role_synced(self, data: dict, **kwargs: object) -> None:
        """Wholesale customers must be among the roles synced, or the wholesale role would unlink them."""
        role, roles = data["customers"].wholesale_role, data["shop"].reconcile.customer_roles
        if role not in roles:
            raise ValidationError({"customers": {"wholesale_role": [
                f"{role!r} is not one of shop.reconcile.customer_roles ({', '.join(roles)})"]}})


def _flatten(messages: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Turns marshmallow's nested error dict into (dotted.path, message) pairs."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            if isinstance(key, int):
                yield from _flatten(value, f"{prefix}[{key}]")
            else:
                yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        for message in messages:
            yield prefix or "<root>", message
    else:
        for index, value in enumerate(messages):
            yield from _flatten(value, f"{prefix}[{index}]")


def default_config() -> sections.Config:
    """The configuration an empty file gives: every section with the schema's defaults."""
    # marshmallow types load() as Any: the schema's post_load builds the Config.
    config: sections.Config = ConfigSchema().load({})
    return config


def validate_config(raw: object) -> tuple[sections.Config | None, list[tuple[str, str]]]:
    """Returns (config, problems): the loaded config, or None with every problem found."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return None, [("<root>", "the configuration must be a mapping")]
    try:
        return ConfigSchema().load(raw), []
    except ValidationError as error:
        return None, sorted(_flatten(error.messages))
