"""A faithful stand-in for a WooCommerce shop, served over real HTTP for tests, the demo and benchmarks."""

from exsync.sandbox.delivery import (
    USER_AGENT,
    DeliveryRecord,
    sign_body,
    wp_specialchars_decode,
)
from exsync.sandbox.errors import SandboxRestError
from exsync.sandbox.faults import Fault, Faults, Storm
from exsync.sandbox.phpjson import php_json_dumps
from exsync.sandbox.seed import (
    place_order,
    seed_catalogue,
    seed_customers,
    seed_shipping,
    seed_taxes,
)
from exsync.sandbox.server import SandboxServer
from exsync.sandbox.shop import SandboxShop
from exsync.sandbox.workers import WorkerPool

__all__ = [
    "USER_AGENT",
    "DeliveryRecord",
    "Fault",
    "Faults",
    "Storm",
    "SandboxRestError",
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
