"""A faithful stand-in for a WooCommerce shop, served over real HTTP for tests, the demo and benchmarks."""

from exsync.woo.sandbox.delivery import (
    USER_AGENT,
    DeliveryRecord,
    sign_body,
    wp_specialchars_decode,
)
from exsync.woo.sandbox.faults import Fault, Faults, Storm
from exsync.woo.sandbox.phpjson import php_json_dumps
from exsync.woo.sandbox.seed import (
    place_order,
    seed_catalogue,
    seed_customers,
    seed_shipping,
    seed_taxes,
)
from exsync.woo.sandbox.server import SandboxServer
from exsync.woo.sandbox.shop import SandboxShop
from exsync.woo.sandbox.workers import WorkerPool

__all__ = [
    "USER_AGENT",
    "DeliveryRecord",
    "Fault",
    "Faults",
    "Storm",
    "WorkerPool",
    "SandboxServer",
    "SandboxShop",
    "php_json_dumps",
    "place_order",
    "seed_catalogue",
    "seed_customers",
    "seed_shipping",
    "seed_taxes",
    "sign_body",
    "wp_specialchars_decode",
]
