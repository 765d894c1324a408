"""The Exchequer agent over real RabbitMQ with the Toolkit emulator behind it: commands, replies,
refusals, idempotency, an agent that is down (the command waits in the queue), and an agent killed
(kill -9 of a real process) after its Toolkit saved and before it answered: no duplicate document."""

import os
import signal
import subprocess
import sys
import threading

import pika
import pytest

from exsync.exchequer import (
    ExchequerReader,
    ToolkitEmulator,
    UnknownStockItemError,
    connect,
    init_schema,
    seed,
)
from exsync.exchequer.agent import COMMANDS_QUEUE, AgentToolkit, ToolkitAgent
from exsync.exchequer.errors import AgentTimeoutError
from exsync.exchequer.keys import KeyStore
from tests.exchequer.factories import customer, order
from tests.support.waiting import wait_for


@pytest.fixture
def company(tmp_path):
    dsn = f"sqlite:///{tmp_path}/exchequer.db"
    with connect(dsn) as database:
        init_schema(database)
        seed(database, items=20, locations=1, boms=0, accounts=3)
        reader = ExchequerReader(database=database)
        code = next(item.code for item in reader.iter_stock_items() if item.type == "P")
        account = next(reader.iter_accounts()).code
    return dsn, code, account


@pytest.fixture
def purged(amqp_url):
    """The test vhost with an empty commands queue (a killed agent's command must not leak across tests)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.queue_declare(queue=COMMANDS_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_purge(COMMANDS_QUEUE)
    connection.close()
    return amqp_url


def _queued(url):
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return connection.channel().queue_declare(queue=COMMANDS_QUEUE, passive=True).method.message_count
    finally:
        connection.close()


class AgentThread:
    """The agent loop on a thread of the test process, with the emulator over its own connection."""

    def __init__(self, url, dsn):
        self.database = connect(dsn)
        self.agent = ToolkitAgent(url=url, toolkit=ToolkitEmulator(database=self.database))
        self.thread = threading.Thread(target=self.agent.run, daemon=True)
        self.thread.start()

    def stop(self):
        self.agent.stop()
        self.thread.join(30)
        self.database.close()


def _client(url, dsn, timeout_seconds=20.0):
    database = connect(dsn)
    return AgentToolkit(url=url, keys=KeyStore(state=database, company=database),
                        reply_timeout_seconds=timeout_seconds), database


def _documents_for(dsn, your_ref):
    with connect(dsn) as database, database.transaction(write=False) as cursor:
        return [row[0] for row in cursor.run("SELECT {documents.our_ref} FROM {documents} "
                                             "WHERE {documents.your_ref} = ?", (your_ref,)).fetchall()]


def test_commands_round_trip_through_the_agent(company, purged):
    dsn, code, account = company
    agent = AgentThread(purged, dsn)
    client, database = _client(purged, dsn)
    try:
        first = client.create_sales_document(order("woo-order:1", account, [(code, 2, 5.0, "MAI")], your_ref="1"))
        again = client.create_sales_document(order("woo-order:1", account, [(code, 2, 5.0, "MAI")], your_ref="1"))
        assert first.created and (again.reference, again.created) == (first.reference, False)
        stored = ExchequerReader(database=database).document(first.reference)
        assert [(line.stock_code, line.qty, line.stock_deduct_qty) for line in stored.lines] == [(code, 2, 2)]
        made = client.create_account(external_key="woo-customer:9", details=customer())
        assert made.created and client.existing_reference("account", "woo-customer:9") == made.reference
        assert client.update_account(made.reference, {"phone": "0113 000"}) == made.reference
        assert ExchequerReader(database=database).account(made.reference).phone == "0113 000"
        with pytest.raises(UnknownStockItemError, match="NO-SUCH"):
            client.create_sales_document(order("woo-order:2", account, [("NO-SUCH", 1, 1.0, "MAI")]))
        assert _documents_for(dsn, "1") == [first.reference]
    finally:
        client.close()
        database.close()
        agent.stop()


def test_with_the_agent_down_the_command_waits_and_a_retry_makes_no_second_document(company, purged):
    dsn, code, account = company
    client, database = _client(purged, dsn, timeout_seconds=1.0)
    document = order("woo-order:3", account, [(code, 1, 5.0, "MAI")], your_ref="3")
    try:
        with pytest.raises(AgentTimeoutError, match="waits in exchequer.commands"):
            client.create_sales_document(document)
        assert _queued(purged) == 1 and _documents_for(dsn, "3") == []
        agent = AgentThread(purged, dsn)  # the agent starts and works off the queue
        try:
            wait_for(lambda: _documents_for(dsn, "3"), "the queued command to be performed")
            client.reply_timeout_seconds = 20.0
            retried = client.create_sales_document(document)  # the consumer's retry of the same order
            assert not retried.created and _documents_for(dsn, "3") == [retried.reference]
        finally:
            agent.stop()
    finally:
        client.close()
        database.close()


def test_an_agent_killed_after_saving_and_before_answering_makes_no_duplicate(company, purged, tmp_path):
    dsn, code, account = company
    marker = tmp_path / "saved"
    env = {**os.environ, "EXSYNC_EXCHEQUER_DSN": dsn, "EXSYNC_AMQP_URL": purged}
    paused = subprocess.Popen([sys.executable, "-m", "tests.support.paused_agent", dsn, purged, str(marker)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client, database = _client(purged, dsn, timeout_seconds=2.0)
    document = order("woo-order:4", account, [(code, 3, 5.0, "MAI")], your_ref="4")
    restarted = None
    try:
        with pytest.raises(AgentTimeoutError):
            client.create_sales_document(document)
        saved = wait_for(lambda: marker.exists() and marker.read_text(), "the paused agent's save")
        os.kill(paused.pid, signal.SIGKILL)  # mid-command: saved, not answered, not acknowledged
        paused.wait(30)
        assert _documents_for(dsn, "4") == [saved]
        wait_for(lambda: _queued(purged) == 1, "the unacknowledged command back in the queue")

        restarted = subprocess.Popen([sys.executable, "-m", "exsync.cli", "exchequer", "agent", "--toolkit",
                                      "emulator"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(lambda: _queued(purged) == 0, "the restarted agent to take the command again")
        client.reply_timeout_seconds = 20.0
        retried = client.create_sales_document(document)
        assert (retried.reference, retried.created) == (saved, False)
        assert _documents_for(dsn, "4") == [saved], "one document, however often the command ran"
        item = ExchequerReader(database=database).stock_item(code)
        with database.transaction(write=False) as cursor:
            deducted = cursor.scalar("SELECT SUM({lines.stock_deduct_qty}) FROM {lines} WHERE {lines.our_ref} = ?",
                                     (saved,))
        assert deducted == 3 and item.allocated >= 3
    finally:
        client.close()
        database.close()
        if paused.poll() is None:
            paused.kill()
        if restarted is not None:
            restarted.send_signal(signal.SIGTERM)
            _, stderr = restarted.communicate(timeout=30)
            assert restarted.returncode == 0, stderr


def test_the_orders_consumer_writes_through_the_agent_when_configured(tmp_path, purged):
    """exchequer.write_backend: toolkit: the consumer sends a command; the agent's Toolkit saves the SOR."""
    from exsync.consumers.connections import use_broker
    from exsync.consumers.orders import OrdersConsumer
    from exsync.schemas.config import validate_config
    from tests.consumers.conftest import RecordingPublisher, company, event, order_body

    dsn = f"sqlite:///{tmp_path}/exchequer.db"
    codes = company(dsn)
    loaded, problems = validate_config({"exchequer": {"write_backend": "toolkit",
                                                      "agent": {"reply_timeout_seconds": 20}}})
    assert problems == []
    use_broker(purged)
    agent = AgentThread(purged, dsn)
    consumer = OrdersConsumer(exchequer_dsn=dsn, config=loaded, publisher=RecordingPublisher())
    try:
        body = order_body(lines=[(codes[0], 2, "20.00", "20.00", "4.00")])
        assert consumer.handle_event(event(body, "order.created")) == "imported"
        assert consumer.handle_event(event(body, "order.updated")) in ("stale", "already_imported")
        [reference] = _documents_for(dsn, "101")
        stored = ExchequerReader(database=agent.database).document(reference)
        assert stored.header.doc_type == "SOR" and stored.lines[0].stock_deduct_qty == 2
    finally:
        consumer.close()
        agent.stop()
        use_broker(None)


def test_the_agent_answers_every_command_and_never_raises(company):
    """The command layer on its own: results, refusals by name, malformed commands."""
    import json

    from exsync.exchequer.agent import encode_document

    dsn, code, account = company
    with connect(dsn) as database:
        agent = ToolkitAgent(url="amqp://unused/", toolkit=ToolkitEmulator(database=database))
        document = order("woo-order:7", account, [(code, 1, 2.0, "MAI")], your_ref="7")
        command = {"id": "c1", "operation": "create_sales_document", "args": {"document": encode_document(document)}}
        first = agent.handle(json.dumps(command))
        assert first["ok"] and first["result"]["created"] and first["id"] == "c1"
        assert agent.handle(json.dumps(command))["result"] == {"reference": first["result"]["reference"],
                                                                "created": False}
        refused = agent.handle(json.dumps({"id": "c2", "operation": "update_account",
                                           "args": {"code": "NOBODY", "changes": {"phone": "1"}}}))
        assert (refused["ok"], refused["error"]) == (False, "UnknownAccountError")
        assert agent.handle(b"{not json")["error"] == "ToolkitError"
        assert "unknown command" in agent.handle(json.dumps({"id": "c3", "operation": "drop_table"}))["message"]


def test_the_smoke_test_creates_one_quotation_through_the_agent_and_reads_it_back(company, purged, tmp_path):
    """What a site runs on its server, here with the emulator behind the agent: both real processes."""
    dsn, code, account = company
    config = tmp_path / "exsync.yaml"
    config.write_text("exchequer:\n  write_backend: toolkit\n  agent:\n    toolkit: emulator\n"
                      "    reply_timeout_seconds: 30\n")
    env = {**os.environ, "EXSYNC_EXCHEQUER_DSN": dsn, "EXSYNC_AMQP_URL": purged, "EXSYNC_CONFIG": str(config)}
    agent = subprocess.Popen([sys.executable, "-m", "exsync.cli", "exchequer", "agent"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        smoke = subprocess.run([sys.executable, "-m", "exsync.cli", "exchequer", "smoke-test", "--account", account,
                                "--stock", code, "--qty", "2", "--price", "3.5"], env=env, capture_output=True,
                               text=True, timeout=120)
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr
        assert "smoke test passed" in smoke.stdout and "via toolkit" in smoke.stdout
        reference = smoke.stdout.split()[0]
        with connect(dsn) as database:
            stored = ExchequerReader(database=database).document(reference)
        assert stored.header.doc_type == "SQU" and [(line.stock_code, line.qty) for line in stored.lines] == [
            (code, 2.0)]
        wrong = subprocess.run([sys.executable, "-m", "exsync.cli", "exchequer", "smoke-test", "--account", account,
                                "--stock", "NO-SUCH-ITEM"], env=env, capture_output=True, text=True, timeout=120)
        assert wrong.returncode != 0 and "NO-SUCH-ITEM" in wrong.stdout + wrong.stderr
    finally:
        agent.send_signal(signal.SIGTERM)
        _, stderr = agent.communicate(timeout=30)
    assert agent.returncode == 0, stderr
