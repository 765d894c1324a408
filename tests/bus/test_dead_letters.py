"""Parked messages seen, replayed and dropped on a real RabbitMQ, through the `exsync` command."""

import json
import os
import subprocess
import sys

import prometheus_client
import pytest

from exsync import wiring
from exsync.bus import INVALID_QUEUE, DeadLetters, PermanentError, Publisher, new_event
from exsync.bus.consumer import ATTEMPT_HEADER, ERROR_HEADER, HISTORY_HEADER
from exsync.errors import ExsyncError
from exsync.metrics import PrometheusMetrics
from tests.bus.test_consumer import Running
from tests.support.rabbit import queue_depth, read_messages
from tests.support.waiting import wait_for


def _purge(url, queue):
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        connection.channel().queue_purge(queue)
    finally:
        connection.close()

TOPOLOGY = wiring.topology()


def exsync(*args, amqp_url, tmp_path):
    """Runs the real command line, as an operator would; returns (exit code, stdout, stderr)."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("EXSYNC_")}
    database = f"sqlite:///{tmp_path / 'state.db'}"
    environment.update(EXSYNC_AMQP_URL=amqp_url, EXSYNC_STATE_DSN=database, EXSYNC_EXCHEQUER_DSN=database,
                       EXSYNC_LOG_FORMAT="json")
    result = subprocess.run([sys.executable, "-m", "exsync.cli", *args], env=environment, capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    return result.returncode, result.stdout, result.stderr


def publish_order(url, subject):
    event = new_event(type="woo.order.created", source="test", subject=subject, data={"id": subject})
    with Publisher(url=url, topology=TOPOLOGY) as publisher:
        publisher.publish(exchange="woo", routing_key="order.created", event=event)
    return event["id"]


def test_a_parked_message_is_seen_in_status_and_the_list_then_replayed_and_handled(amqp_url, tmp_path):
    fixed = []
    handled = []
    registry = prometheus_client.CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)

    def handler(message):
        if not fixed:
            raise PermanentError(f"no item for order {message.event['subject']} in Exchequer")
        handled.append(message)

    with Running(url=amqp_url, queue="orders.import", handler=handler, topology=TOPOLOGY, metrics=metrics):
        event_id = publish_order(amqp_url, 1001)
        wait_for(lambda: queue_depth(amqp_url, "orders.import.dead") == 1, "the order to be parked")
        assert registry.get_sample_value("exsync_bus_connected", {"client": "consumer"}) == 1

        code, out, _ = exsync("status", "--json", amqp_url=amqp_url, tmp_path=tmp_path)
        assert code == 1, "a parked message needs a person"
        status = json.loads(out)
        [orders] = [q for q in status["queues"] if q["name"] == "orders.import"]
        assert orders["dead"] == 1 and orders["consumers"] == 1 and orders["ready"] == 0
        assert "1 message(s) parked on orders.import.dead" in status["needs_attention"]
        code, text, _ = exsync("status", amqp_url=amqp_url, tmp_path=tmp_path)
        assert code == 1 and "needs a person:" in text and "orders.import.dead" in text

        code, out, _ = exsync("dead-letters", "list", "orders.import", "--json", amqp_url=amqp_url, tmp_path=tmp_path)
        assert code == 0
        [letter] = json.loads(out)
        assert letter["id"] == event_id and letter["queue"] == "orders.import.dead"
        assert letter["subject"] == "1001" and letter["type"] == "woo.order.created"
        assert letter["attempts"] == 1
        assert letter["last_error"] == "PermanentError: no item for order 1001 in Exchequer"
        assert letter["failed_at"]
        # Listing reads without losing: the message is still there, once.
        assert queue_depth(amqp_url, "orders.import.dead") == 1

        fixed.append(True)
        code, out, _ = exsync("dead-letters", "replay", "orders.import.dead", "--id", event_id,
                              amqp_url=amqp_url, tmp_path=tmp_path)
        assert code == 0, out
        assert f"replayed {event_id}" in out
        wait_for(lambda: handled, "the replayed order to be handled")
        assert queue_depth(amqp_url, "orders.import.dead") == 0

        # The woo-writer's queue hears of every order event too (its stock checks); no writer runs
        # here, so what it holds is purged before the last look.
        _purge(amqp_url, "woo.write")
        code, out, _ = exsync("status", "--json", amqp_url=amqp_url, tmp_path=tmp_path)
        assert code == 0 and json.loads(out)["needs_attention"] == []

    [message] = handled
    # Attempt 1 again, the failure it had kept in the history header.
    assert message.attempt == 1 and ATTEMPT_HEADER not in message.headers and ERROR_HEADER not in message.headers
    [entry] = message.headers[HISTORY_HEADER]
    assert entry["queue"] == "orders.import.dead" and entry["attempts"] == 1
    assert entry["last_error"] == "PermanentError: no item for order 1001 in Exchequer"
    assert registry.get_sample_value("exsync_dead_letters_replayed_total",
                                     {"queue": "orders.import", "outcome": "ok"}) == 1


def test_a_replayed_message_that_fails_again_is_retried_not_parked_at_once(amqp_url):
    """What shovelling back got wrong: the attempt count is reset, so a failure is retried."""
    letters = DeadLetters(url=amqp_url, topology=TOPOLOGY)
    attempts = []

    def handler(message):
        attempts.append(message.attempt)
        raise RuntimeError("still broken")

    topology = wiring.topology(retry_delays_seconds=(1,), max_attempts=2)
    with Running(url=amqp_url, queue="orders.import", handler=handler, topology=topology):
        publish_order(amqp_url, 7)
        wait_for(lambda: queue_depth(amqp_url, "orders.import.dead") == 1, "two attempts and the park")
        letters.replay("orders.import", ids=None)
        wait_for(lambda: len(attempts) == 4 and queue_depth(amqp_url, "orders.import.dead") == 1,
                 "two more attempts after the replay")
    assert attempts == [1, 2, 1, 2]
    [letter] = letters.list("orders.import")
    assert letter.attempts == 2 and letter.replays == 1


def test_list_keeps_every_message_and_drop_removes_only_the_named_one(amqp_url, tmp_path):
    with Running(url=amqp_url, queue="orders.import", handler=lambda m: (_ for _ in ()).throw(PermanentError("no")),
                 topology=TOPOLOGY):
        ids = [publish_order(amqp_url, n) for n in (1, 2, 3)]
        wait_for(lambda: queue_depth(amqp_url, "orders.import.dead") == 3, "three parked")
    letters = DeadLetters(url=amqp_url, topology=TOPOLOGY)
    for _ in range(3):  # listed again and again, nothing is lost or duplicated (no requeue counting)
        assert sorted(letter.id for letter in letters.list("orders.import.dead")) == sorted(ids)

    code, _, err = exsync("dead-letters", "drop", "orders.import", "--id", ids[1], amqp_url=amqp_url,
                          tmp_path=tmp_path)
    assert code == 2 and "--yes" in err, "no terminal to ask: refuses rather than deletes"
    assert queue_depth(amqp_url, "orders.import.dead") == 3

    code, out, _ = exsync("dead-letters", "drop", "orders.import", "--id", ids[1], "--yes", amqp_url=amqp_url,
                          tmp_path=tmp_path)
    assert code == 0 and f"dropped {ids[1]}" in out
    assert sorted(letter.id for letter in letters.list("orders.import")) == sorted([ids[0], ids[2]])

    with pytest.raises(ExsyncError, match="no message nope"):
        letters.drop("orders.import", ids=["nope"])
    with pytest.raises(ExsyncError, match="no parked queue"):
        letters.list("orders.nothing")


def park_invalid(url, topic, body, errors):
    event = new_event(type="woo.invalid", source="https://shop.test", subject=body.get("id"),
                      data={"topic": topic, "errors": errors, "body": body}, wcdeliveryid="d-1", wcwebhookid="9")
    with Publisher(url=url, topology=TOPOLOGY) as publisher:
        publisher.publish(exchange="woo", routing_key=f"invalid.{topic}", event=event)
    return event["id"]


def test_woo_invalid_is_validated_again_and_only_what_passes_now_is_replayed(amqp_url):
    # Parked under an older, stricter schema; valid under today's.
    now_valid = park_invalid(amqp_url, "customer.updated", {"id": 5, "email": "a@example.com", "date_modified_gmt": "2026-01-02T03:04:05"},
                             {"billing": ["Missing data for required field."]})
    still_invalid = park_invalid(amqp_url, "order.created", {"id": "not a number"}, {"id": ["Not a valid integer."]})
    letters = DeadLetters(url=amqp_url, topology=TOPOLOGY)
    listed = {letter.id: letter for letter in letters.list(INVALID_QUEUE)}
    assert listed[now_valid].type == "woo.invalid" and "billing" in listed[now_valid].last_error

    replayed, refused = letters.replay(INVALID_QUEUE, ids=None)
    assert [letter.id for letter in replayed] == [now_valid]
    assert [letter.id for letter in refused] == [still_invalid]
    # As the receiver would have published it: its topic, its body, the delivery's ids.
    [(event, properties)] = read_messages(amqp_url, "customers.import", count=1)
    assert event["id"] == now_valid and event["type"] == "woo.customer.updated" and event["data"]["id"] == 5
    assert event["wcdeliveryid"] == "d-1" and event["subject"] == "5"
    assert properties.headers[HISTORY_HEADER][0]["queue"] == INVALID_QUEUE
    # The one still failing stays parked, with today's errors.
    [left] = letters.list(INVALID_QUEUE)
    assert left.id == still_invalid and "line_items" in left.last_error, "the errors are today's, not the ones parked"
