"""Logs a machine can read: JSON lines that parse and carry the ids as fields."""

import io
import json
import logging
import os

import pytest
import requests

from exsync import wiring
from exsync.bus import declare_topology, new_event
from exsync.bus.consumer import Message
from exsync.bus.middleware import LoggingMiddleware
from exsync.logs import configure_logging, lean_log_records, log_format
from tests.e2e.test_webhook_process import SECRET, running_webhook
from tests.support.woo import delivery_headers, fixture, woo_json


class Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def captured():
    """The root logger writing JSON to a buffer; restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("DEBUG", kind="json", stream=stream)
    yield stream
    for handler in list(root.handlers):
        if getattr(handler, "_exsync", False):
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_the_format_is_chosen_by_the_environment_else_by_the_terminal():
    assert log_format({"EXSYNC_LOG_FORMAT": "json"}, Tty()) == "json"
    assert log_format({"EXSYNC_LOG_FORMAT": "TEXT"}, io.StringIO()) == "text"
    assert log_format({}, Tty()) == "text"
    assert log_format({}, io.StringIO()) == "json", "a container's log is not a terminal: JSON"


def test_a_parked_message_logs_a_json_line_with_its_ids(captured):
    event = new_event(type="woo.order.created", source="https://shop.example/", subject=727, data={"id": 727},
                      wcdeliveryid="8f14e45f", wcwebhookid="3")
    message = Message(queue="orders.import", routing_key="order.created", body=json.dumps(event).encode(),
                      headers={"x-exsync-attempt": 5}, properties=None, delivery_tag=1, redelivered=False, event=event)
    LoggingMiddleware().after_process(message, outcome="parked", error=RuntimeError("no item ABC"))

    [line] = lines(captured)
    assert line["level"] == "ERROR" and line["logger"] == "exsync.bus.consumer" and line["time"]
    assert "parked on the dead queue: no item ABC" in line["message"]
    assert (line["event_id"], line["delivery_id"], line["webhook_id"], line["order_id"], line["queue"],
            line["attempt"], line["outcome"]) == (event["id"], "8f14e45f", "3", "727", "orders.import", 5, "parked")


def test_text_on_a_terminal_keeps_the_ids_readable():
    stream = Tty()
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        assert configure_logging("INFO", stream=stream) == "text"
        logging.getLogger("exsync.test").warning("order %s parked", 9, extra={"order_id": 9, "outcome": "parked"})
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    assert line.endswith("exsync.test: order 9 parked [order_id=9 outcome=parked]")


@pytest.mark.slow
def test_gunicorns_access_log_and_the_receivers_lines_are_json_with_the_delivery_ids(amqp_url, tmp_path):
    declare_topology(amqp_url, wiring.topology())
    body = woo_json(fixture("order_727.json"))
    headers = delivery_headers(body, secret=SECRET, topic="order.created", webhook_id=41)
    with running_webhook(amqp_url, tmp_path) as base_url:
        assert requests.post(f"{base_url}/webhooks/woocommerce", data=body, headers=headers, timeout=10).status_code \
            == 200
        refused = dict(headers, **{"X-WC-Webhook-Signature": "forged"})
        assert requests.post(f"{base_url}/webhooks/woocommerce", data=body, headers=refused, timeout=10).status_code \
            == 401
    # stdout and stderr of the process, as a container runtime collects them: every line parses.
    records = [json.loads(line) for line in (tmp_path / "gunicorn.log").read_text().splitlines() if line.strip()]
    access = [r for r in records if r.get("logger") == "gunicorn.access"]
    assert [(r["method"], r["path"], r["status"]) for r in access] == [
        ("POST", "/webhooks/woocommerce", 200), ("POST", "/webhooks/woocommerce", 401)]
    assert all(r["delivery_id"] == "8f14e45fceea167a5a36dedd4bea2543" and r["webhook_id"] == "41" for r in access)
    assert all(isinstance(r["duration_seconds"], float) for r in access)
    [refusal] = [r for r in records if r.get("outcome") == "unauthorized"]
    assert refusal["delivery_id"] == "8f14e45fceea167a5a36dedd4bea2543" and refusal["webhook_id"] == "41"
    assert any(r.get("logger") == "gunicorn.error" for r in records), "gunicorn's own lines too"


def test_lean_records_leave_every_field_exsync_prints(captured):
    lean_log_records()
    logging.getLogger("exsync.test").info("hello", extra={"order_id": "727"})
    line = lines(captured)[-1]
    assert line["message"] == "hello" and line["order_id"] == "727" and line["process"] == os.getpid()
    assert line["level"] == "INFO" and line["logger"] == "exsync.test" and line["time"]
    assert logging.logThreads is False  # restored after the test by tests/conftest.py
