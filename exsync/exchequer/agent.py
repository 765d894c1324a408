"""The Exchequer agent: writes to a real company go through Exchequer's own Toolkit, on its server.

    consumers (k8s, Linux)                           the agent (Windows service beside Exchequer)
    AgentToolkit.create_sales_document(...) ──▶ queue exchequer.commands ──▶ ToolkitAgent ──▶ Toolkit
           ◀────────── reply (direct reply-to, correlation id) ◀──────────────┘   (COM: comtoolkit.py,
                                                                                    or the emulator)

A command is a JSON object {"id", "operation", "args"} published persistent, with confirms, to the
durable quorum queue `exchequer.commands`. The agent takes one at a time (prefetch 1), performs it
through its Toolkit and answers {"id", "ok", "result"} or {"id", "ok": false, "error", "message"}
to the caller's reply-to; it acknowledges the command only after it answered, so a command whose
agent died (kill -9, a reboot) is delivered again to the next agent. That is safe because every
Toolkit operation is idempotent by its external key: the Toolkit looks for the document or account
first (`existing`) and returns it instead of saving twice.

`AgentToolkit` is the `Toolkit` the consumers use with `exchequer.write_backend: toolkit`: it keeps
exsync's own record of external keys (the `external_keys` state table) and sends the writes to the
agent. When the agent is down, its commands wait in the queue and the caller's wait ends with
AgentTimeoutError, a retryable error: the order message goes round the retry queues and, when it
comes back, its command finds the document the agent has saved meanwhile, or saves it then.
"""

import dataclasses
import datetime
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pika
import pika.exceptions

from exsync.bus.connection import Connection, open_connection
from exsync.bus.errors import BrokerUnavailable
from exsync.exchequer import errors as exchequer_errors
from exsync.exchequer.errors import AgentTimeoutError, ExchequerError, ToolkitError
from exsync.exchequer.models import AccountDetails, DocumentLine, SalesDocument, WriteResult
from exsync.metrics import Metrics
from exsync.schemas.config import DEFAULT_AGENT_REPLY_TIMEOUT_SECONDS as DEFAULT_REPLY_TIMEOUT_SECONDS

if TYPE_CHECKING:  # the toolkits the agent performs with, for annotations only (they import the ledger)
    from exsync.exchequer.comtoolkit import ComToolkit
    from exsync.exchequer.keys import KeyStore
    from exsync.exchequer.writer import ToolkitEmulator

__all__ = [
    "COMMANDS_QUEUE",
    "DEFAULT_REPLY_TIMEOUT_SECONDS",
    "OPERATIONS",
    "AgentToolkit",
    "ToolkitAgent",
    "declare_commands_queue",
    "decode_document",
    "encode_document",
    "perform",
]

log = logging.getLogger(__name__)

COMMANDS_QUEUE = "exchequer.commands"
DEFAULT_POLL_SECONDS = 0.2
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
OPERATIONS = ("create_account", "update_account", "create_sales_document")
# Errors the agent answers with that the caller raises again as themselves (a bad order stays bad).
_RAISED_AGAIN = ("InvalidDocumentError", "UnknownAccountError", "UnknownStockItemError", "CreditLimitError",
                 "ToolkitError", "NotADemoCompanyError")


def declare_commands_queue(channel: Any) -> None:
    """The commands queue: durable and quorum, like every queue of exsync's (bus/topology.py)."""
    channel.queue_declare(queue=COMMANDS_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})


def encode_document(document: SalesDocument) -> dict[str, Any]:
    return {"external_key": document.external_key, "doc_type": document.doc_type,
            "account_code": document.account_code, "date": document.date.isoformat(),
            "your_ref": document.your_ref, "long_your_ref": document.long_your_ref,
            "user_fields": {str(number): value for number, value in document.user_fields.items()},
            "lines": [dataclasses.asdict(line) for line in document.lines]}


def decode_document(data: dict[str, Any]) -> SalesDocument:
    return SalesDocument(external_key=data["external_key"], doc_type=data["doc_type"],
                         account_code=data["account_code"], date=datetime.date.fromisoformat(data["date"]),
                         your_ref=data.get("your_ref", ""), long_your_ref=data.get("long_your_ref", ""),
                         user_fields={int(number): value for number, value in (data.get("user_fields") or {}).items()},
                         lines=tuple(DocumentLine(**line) for line in data["lines"]))


def _details(data: dict[str, Any]) -> AccountDetails:
    return AccountDetails(**{**data, "address": tuple(data.get("address") or ()),
                             "user_defs": tuple(data.get("user_defs") or ())})


def perform(toolkit: "ComToolkit | ToolkitEmulator", operation: str, args: dict[str, Any]) -> dict[str, Any]:
    """Runs one command on a Toolkit; returns the JSON-able result."""
    if operation == "create_sales_document":
        result = toolkit.create_sales_document(decode_document(args["document"]))
        return {"reference": result.reference, "created": result.created}
    if operation == "create_account":
        result = toolkit.create_account(external_key=args["external_key"], details=_details(args["details"]),
                                        code=args.get("code"))
        return {"reference": result.reference, "created": result.created}
    if operation == "update_account":
        changes = dict(args["changes"])
        for field in ("address", "user_defs"):
            if field in changes:
                changes[field] = tuple(changes[field])
        return {"reference": toolkit.update_account(args["code"], changes)}
    raise ToolkitError(f"unknown command {operation!r}; known: {', '.join(OPERATIONS)}")


class ToolkitAgent:
    """Takes commands from the queue one at a time and performs them through `toolkit`."""

    def __init__(self, *, url: str, toolkit: "ComToolkit | ToolkitEmulator", metrics: Metrics | None = None,
                 connect: Callable[[str], Connection] = open_connection,
                 poll_seconds: float = DEFAULT_POLL_SECONDS) -> None:
        self.url = url
        self.toolkit = toolkit
        self.metrics = metrics or Metrics()
        self.connect = connect
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()

    def stop(self, *_signal_args: object) -> None:
        self._stop.set()

    def run(self) -> None:
        """Serves until stop(); reconnects when the broker goes away."""
        while not self._stop.is_set():
            try:
                with self.connect(self.url) as connection:
                    self._serve(connection.pika.channel())
            except (BrokerUnavailable, pika.exceptions.AMQPError) as error:
                log.warning("agent: broker unavailable (%s); retrying", error)
                self._stop.wait(1.0)

    def _serve(self, channel: Any) -> None:
        declare_commands_queue(channel)
        channel.basic_qos(prefetch_count=1)
        log.info("agent: serving %s", COMMANDS_QUEUE)
        for method, properties, body in channel.consume(COMMANDS_QUEUE, inactivity_timeout=self.poll_seconds):
            if self._stop.is_set():
                break
            if method is None:
                continue
            reply = self.handle(body)
            if properties.reply_to:
                # The reply goes before the ack: a crash in between repeats the command, and the
                # repeat finds what the first one saved.
                channel.basic_publish(exchange="", routing_key=properties.reply_to, body=json.dumps(reply),
                                      properties=pika.BasicProperties(correlation_id=properties.correlation_id,
                                                                      content_type="application/json"))
            channel.basic_ack(method.delivery_tag)
        channel.cancel()

    def handle(self, body: bytes | str) -> dict[str, Any]:
        """The reply to one command body (never raises: a failure is an answer)."""
        # Only a command that was performed and answered is timed: not a malformed one, nor an
        # unexpected error on its way out.
        with self.metrics.timed("exchequer_agent_command_duration_seconds", observe_errors=False) as timing:
            try:
                command = json.loads(body)
                operation = command["operation"]
            except (ValueError, KeyError, TypeError) as error:
                timing.skip()
                return {"id": None, "ok": False, "error": "ToolkitError", "message": f"malformed command: {error}"}
            timing.labels["operation"] = operation
            try:
                result = perform(self.toolkit, operation, command.get("args") or {})
                outcome = "created" if result.get("created") else "done"
                reply = {"id": command.get("id"), "ok": True, "result": result}
            except ExchequerError as error:
                outcome = "failed"
                log.warning("agent: %s %s failed: %s", operation, command.get("id"), error)
                reply = {"id": command.get("id"), "ok": False, "error": type(error).__name__, "message": str(error)}
            self.metrics.inc("exchequer_agent_commands", operation=operation, outcome=outcome)
        return reply


class AgentToolkit:
    """The Toolkit the consumers use when writes go through the agent (exchequer.write_backend: toolkit).

    `keys` is exsync's own external-key record: an object with existing_reference, keys_of,
    link_account and record (exsync.exchequer.keys.KeyStore), kept in the state database.
    """

    def __init__(self, *, url: str, keys: "KeyStore", reply_timeout_seconds: float = DEFAULT_REPLY_TIMEOUT_SECONDS,
                 metrics: Metrics | None = None, connect: Callable[[str], Connection] = open_connection) -> None:
        self.url = url
        self.keys = keys
        self.reply_timeout_seconds = reply_timeout_seconds
        self.metrics = metrics or Metrics()
        self.connect = connect
        self._connection: Connection | None = None
        self._channel: Any = None
        self._replies: dict[str, bytes] = {}
        self._waiting: set[str] = set()

    # --- exsync's own key record (no Exchequer write)

    def existing_reference(self, kind: str, external_key: str) -> str | None:
        return self.keys.existing_reference(kind, external_key)

    def keys_of(self, kind: str, reference: str, *, prefix: str = "") -> list[str]:
        return self.keys.keys_of(kind, reference, prefix=prefix)

    def link_account(self, *, external_key: str, code: str) -> str:
        return self.keys.link_account(external_key=external_key, code=code)

    # --- writes, through the agent

    def create_account(self, *, external_key: str, details: AccountDetails, code: str | None = None) -> WriteResult:
        existing = self.keys.existing_reference("account", external_key)
        if existing:
            return WriteResult(reference=existing, created=False)
        result = self._call("create_account", {"external_key": external_key, "code": code,
                                               "details": dataclasses.asdict(details)})
        self.keys.record("account", external_key, result["reference"])
        return WriteResult(reference=result["reference"], created=result["created"])

    def update_account(self, code: str, changes: dict[str, Any]) -> str:
        return self._call("update_account", {"code": code, "changes": dict(changes)})["reference"]

    def create_sales_document(self, document: SalesDocument) -> WriteResult:
        existing = self.keys.existing_reference("sales_document", document.external_key)
        if existing:
            return WriteResult(reference=existing, created=False)
        result = self._call("create_sales_document", {"document": encode_document(document)})
        self.keys.record("sales_document", document.external_key, result["reference"])
        return WriteResult(reference=result["reference"], created=result["created"])

    # --- the round trip

    def _open(self) -> Any:
        if self._channel is None or not self._channel.is_open:
            self.close()
            self._connection = self.connect(self.url)
            channel = self._connection.pika.channel()
            declare_commands_queue(channel)
            channel.confirm_delivery()
            channel.basic_consume(DIRECT_REPLY_TO, self._on_reply, auto_ack=True)
            self._channel = channel
        return self._channel

    def _on_reply(self, _channel: Any, _method: Any, properties: Any, body: bytes) -> None:
        # A late answer to a command this client gave up on (its retry asks again) is dropped.
        if properties.correlation_id in self._waiting:
            self._replies[properties.correlation_id] = body

    def _call(self, operation: str, args: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        command_id = str(uuid.uuid4())
        body = json.dumps({"id": command_id, "operation": operation, "args": args})
        self._waiting.add(command_id)
        try:
            channel = self._open()
            connection = self._connection
            assert connection is not None  # _open() has just opened it
            channel.basic_publish(exchange="", routing_key=COMMANDS_QUEUE, body=body, mandatory=True,
                                  properties=pika.BasicProperties(
                                      delivery_mode=2, correlation_id=command_id, reply_to=DIRECT_REPLY_TO,
                                      content_type="application/json", message_id=command_id))
            deadline = started + self.reply_timeout_seconds
            while command_id not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.metrics.inc("exchequer_agent_timeouts", operation=operation)
                    raise AgentTimeoutError(
                        f"no answer from the Exchequer agent to {operation} within {self.reply_timeout_seconds:g} s "
                        f"(the command waits in {COMMANDS_QUEUE}; the write is retried and is idempotent)")
                connection.pika.process_data_events(time_limit=min(left, DEFAULT_POLL_SECONDS))
        except (pika.exceptions.AMQPError, BrokerUnavailable) as error:
            self.close()
            raise AgentTimeoutError(f"cannot reach the Exchequer agent's queue: {error}") from error
        finally:
            self._waiting.discard(command_id)
        reply = json.loads(self._replies.pop(command_id))
        if reply.get("ok"):
            return reply["result"]
        name = reply.get("error") or "ToolkitError"
        error_class = getattr(exchequer_errors, name, None) if name in _RAISED_AGAIN else None
        raise (error_class or ToolkitError)(f"the Exchequer agent refused {operation}: {reply.get('message')}")

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except (pika.exceptions.AMQPError, BrokerUnavailable) as error:
                log.debug("closing the agent connection: %s", error)
        self._connection = self._channel = None
        self._replies.clear()
