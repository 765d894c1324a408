"""The configuration as typed, frozen values: what `exsync.schemas.config` loads the YAML file into.

Each class is one section of the file (`bus:`, `shop:`, `orders.vat:`...), with the file's own key
names as attributes. None has defaults of its own: every default is the schema's `load_default`,
so an empty file and a missing key mean the same thing wherever they are read.

Lists and maps inside a section (retry delays, VAT codes, tables) stay lists and dicts, as the file
gives them; an order rule's `when` stays a dict because a condition left out means "any".
"""

import dataclasses
import decimal
from typing import Any, ClassVar

__all__ = [
    "AccountCodeConfig",
    "BusConfig",
    "CaptureConfig",
    "Config",
    "CustomerConflictsConfig",
    "CustomersConfig",
    "ExchequerAgentConfig",
    "ExchequerConfig",
    "HealthConfig",
    "OrderDispatchConfig",
    "OrderRoundingConfig",
    "OrderRule",
    "OrderShippingConfig",
    "OrderVatConfig",
    "OrdersConfig",
    "ProductsConfig",
    "Section",
    "ShippingMapping",
    "ShopConfig",
    "ShopReconcileConfig",
    "ShopWebhooksConfig",
    "WebhookConfig",
]



class Section:
    """A loaded section; `section["key"]` reads `section.key`, so the file's dotted paths
    (`config["bus"]["max_attempts"]`) still read what they name."""

    # Every section is a dataclass; declared here so `dataclasses.fields(self)` type-checks.
    __dataclass_fields__: ClassVar[dict[str, "dataclasses.Field[Any]"]]

    def __getitem__(self, key: str) -> Any:
        if not isinstance(key, str) or key not in {field.name for field in dataclasses.fields(self)}:
            raise KeyError(key)
        return getattr(self, key)


@dataclasses.dataclass(frozen=True, kw_only=True)
class BusConfig(Section):
    prefetch: int
    retry_delays_seconds: list[int]
    max_attempts: int
    handler_threads: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class WebhookConfig(Section):
    max_body_bytes: int
    max_json_depth: int
    delivery_timeout_seconds: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class AccountCodeConfig(Section):
    pattern: str
    source: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExchequerAgentConfig(Section):
    toolkit: str
    data_directory: str | None
    reply_timeout_seconds: float
    account_key_field: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExchequerConfig(Section):
    edition: str
    company: str
    table_prefix: str | None
    state_schema: str
    locations: str | list[str]
    default_location: str
    category_field: str
    web_flag_field: str
    web_flag_value: str
    account_code: AccountCodeConfig
    vat_codes: dict[str, float]
    tables: dict[str, str]
    columns: dict[str, str]
    write_backend: str
    agent: ExchequerAgentConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShopWebhooksConfig(Section):
    delivery_url: str | None
    topics: list[str]
    name_prefix: str
    api_version: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShopReconcileConfig(Section):
    interval_seconds: int
    overlap_seconds: int
    initial_lookback_seconds: int
    customer_roles: list[str]
    register_webhooks: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShopConfig(Section):
    requests_per_second: float
    timeout_seconds: float
    max_attempts: int
    max_concurrent_requests: int
    verify_tls: bool
    ca_bundle: str | None
    oauth_signature_method: str
    webhooks: ShopWebhooksConfig
    reconcile: ShopReconcileConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderRule(Section):
    name: str
    when: dict[str, Any]
    action: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderVatConfig(Section):
    default: str
    untaxed: str
    tax_classes: dict[str, str]
    tax_rates: dict[str, str]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShippingMapping(Section):
    description: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderShippingConfig(Section):
    default_description: str
    methods: dict[str, ShippingMapping]


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderRoundingConfig(Section):
    description: str
    vat_code: str
    max_difference: decimal.Decimal


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderDispatchConfig(Section):
    carrier_field: int
    tracking_field: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrdersConfig(Section):
    import_statuses: list[str]
    guest_account: str
    role_meta_key: str
    imported_status: str | None
    complete_on_dispatch: bool
    credit_note_on_refund: bool
    parked_retry_seconds: float
    overdue_after_seconds: int
    vat: OrderVatConfig
    shipping: OrderShippingConfig
    rounding: OrderRoundingConfig
    dispatch: OrderDispatchConfig
    rules: list[OrderRule]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CaptureConfig(Section):
    interval_seconds: float
    event_items: int
    lease_seconds: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProductsConfig(Section):
    flush_items: int
    max_item_attempts: int
    item_retry_seconds: float
    stock_check_delay_seconds: float
    stock_audit_interval_seconds: float | None
    lease_seconds: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class CustomerConflictsConfig(Section):
    default: str
    # field -> policy, for the fields whose policy is not `default`
    fields: dict[str, str]

    def policy_of(self, field: str) -> str:
        return self.fields.get(field, self.default)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CustomersConfig(Section):
    enabled: bool
    export_accounts: str
    match_by_email: bool
    wholesale_band: str
    wholesale_role: str
    conflicts: CustomerConflictsConfig
    event_items: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class HealthConfig(Section):
    stall_seconds: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(Section):
    """The whole file."""

    bus: BusConfig
    webhook: WebhookConfig
    exchequer: ExchequerConfig
    shop: ShopConfig
    capture: CaptureConfig
    products: ProductsConfig
    orders: OrdersConfig
    customers: CustomersConfig
    health: HealthConfig
