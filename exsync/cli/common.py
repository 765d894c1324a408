"""What several commands share: health endpoints, the databases a process checks, printing."""

import argparse
import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING

from exsync import wiring
from exsync.config import Settings
from exsync.metrics import Metrics
from exsync.woo.registrar import WebhookAction

if TYPE_CHECKING:  # imported where used, as the other commands' modules are
    from exsync.health import Liveness, Readiness

__all__ = ["databases", "health", "print_webhook_actions", "shop_metrics", "wait_for_signal"]


def shop_metrics(args: argparse.Namespace) -> Metrics:
    from exsync.metrics import Metrics, default_metrics

    return default_metrics() if getattr(args, "metrics_port", None) else Metrics()


def health(settings: Settings, args: argparse.Namespace, *, amqp: bool = False,
            dsns: Iterable[tuple[str, str]] = ()) -> "tuple[Liveness, Readiness]":
    """The process's Liveness and Readiness, served with its metrics on --metrics-port when given.

    Readiness checks the broker (`amqp`) and each database in `dsns` on connections of its own,
    kept between probes: the process's own connections belong to its loop's thread.
    """
    from exsync.bus import open_connection
    from exsync.exchequer import ping
    from exsync.health import HeldCheck, Liveness, Readiness, serve_health

    liveness = Liveness(stall_seconds=settings.config.health.stall_seconds)
    readiness = Readiness()
    if amqp:
        readiness.add("broker", HeldCheck(open=lambda: open_connection(settings.endpoint("EXSYNC_AMQP_URL")),
                                          probe=lambda connection: connection.check(),
                                          close=lambda connection: connection.close()))
    for name, dsn in dsns:
        readiness.add(name, HeldCheck(open=functools.partial(wiring.connect_to, settings, dsn),
                                      probe=ping, close=lambda database: database.close()))
    if getattr(args, "metrics_port", None):
        shop_metrics(args)  # registers exsync's metrics before the first scrape
        serve_health(args.metrics_port, liveness=liveness, readiness=readiness)
    return liveness, readiness


def databases(settings: Settings, *, exchequer: bool = True) -> list[tuple[str, str]]:
    """(check name, DSN) of the databases a process uses: the company's (if `exchequer`) and the state's."""
    dsns = [("database", settings.endpoint("EXSYNC_EXCHEQUER_DSN"))] if exchequer else []
    if not exchequer or settings.state_dsn != settings.exchequer_dsn:
        dsns.append(("state-database", settings.endpoint("EXSYNC_STATE_DSN")))
    return dsns


def print_webhook_actions(actions: Iterable[WebhookAction]) -> None:
    for action in actions:
        changes = f" ({', '.join(action.changes)})" if action.changes else ""
        print(f"{action.action:<11} webhook {action.webhook_id} {action.topic}{changes}")


def wait_for_signal() -> None:
    """Blocks until SIGTERM or Ctrl-C, for commands that serve on background threads."""
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass

