"""The receiver's tests share test_app's `bus` fixture (a vhost with the topology and a probe queue)."""

from tests.webhooks.test_app import bus  # noqa: F401 - a fixture, found by name
