"""The sandbox is tested over HTTP with the shop-side fixtures of tests/woo (a served shop, a client, a receiver)."""

from tests.woo.conftest import client, credentials, metrics, receiver, sandbox, shop  # noqa: F401
