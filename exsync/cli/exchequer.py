"""`exsync exchequer ...`: the demo company's tables and data, the Exchequer agent, its smoke test."""

import argparse
import dataclasses

from exsync import wiring
from exsync.config import Settings

__all__ = [
    "cmd_exchequer_init",
    "cmd_exchequer_seed",
    "cmd_exchequer_agent",
    "cmd_exchequer_smoke_test",
]


def cmd_exchequer_init(settings: Settings, args: argparse.Namespace) -> int:
    from exsync.exchequer import init_schema

    with wiring.company_database(settings) as database:
        init_schema(database)
        print(f"tables ready in {database!r}")
    return 0


def cmd_exchequer_seed(settings: Settings, args: argparse.Namespace) -> int:
    import time

    from exsync.exchequer import init_schema, options_for, seed

    options = options_for(settings.config)
    with wiring.company_database(settings) as database:
        init_schema(database)
        started = time.monotonic()
        chosen = {} if args.seed is None else {"seed_value": args.seed}
        summary = seed(database, items=args.items, locations=args.locations, boms=args.boms,
                       accounts=args.accounts, account_codes=options.account_codes, **chosen)
        elapsed_seconds = time.monotonic() - started
    print(f"seeded {summary.stock_rows} stock rows, {summary.stock_location_rows} stock-location rows, "
          f"{summary.bom_rows} BOM components, {summary.accounts} accounts, {summary.locations} locations, "
          f"{summary.backlog_orders} open sales orders carrying the allocations in {elapsed_seconds:.1f} s")
    return 0


def cmd_exchequer_agent(settings: Settings, args: argparse.Namespace) -> int:
    """Serves Exchequer write commands from the queue through the configured Toolkit until SIGTERM."""
    import signal

    from exsync.exchequer import options_for
    from exsync.exchequer.agent import ToolkitAgent
    from exsync.exchequer.write_paths import agent_side_toolkit
    from exsync.metrics import default_metrics

    options = options_for(settings.config)
    if args.toolkit:
        options = dataclasses.replace(options, agent_toolkit=args.toolkit)
    metrics = default_metrics()
    with wiring.company_database(settings) as database:
        toolkit = agent_side_toolkit(options=options, company=database, metrics=metrics)
        agent = ToolkitAgent(url=settings.endpoint("EXSYNC_AMQP_URL"), toolkit=toolkit, metrics=metrics)
        signal.signal(signal.SIGTERM, agent.stop)
        signal.signal(signal.SIGINT, agent.stop)
        print(f"exchequer agent: {options.agent_toolkit} toolkit on {database!r}", flush=True)
        agent.run()
    return 0


def cmd_exchequer_smoke_test(settings: Settings, args: argparse.Namespace) -> int:
    """Creates one quotation through the configured write path and reads it back: what a site runs on
    its Exchequer server to see the agent, the Toolkit and the company agree."""
    import datetime
    import uuid

    from exsync.exchequer import DocumentLine, ExchequerReader, SalesDocument, options_for
    from exsync.exchequer.write_paths import consumer_toolkit

    options = options_for(settings.config)
    key = f"smoke-test:{uuid.uuid4().hex[:12]}"
    document = SalesDocument(
        external_key=key, doc_type="SQU", account_code=args.account, date=datetime.date.today(),
        your_ref="SMOKE", long_your_ref=f"SMOKE-{key[-12:]}",
        lines=(DocumentLine(stock_code=args.stock, description=f"exsync smoke test {args.stock}", qty=args.qty,
                            unit_net_price=args.price, vat_code=args.vat_code, location=args.location or ""),))
    with wiring.company_database(settings) as database:
        toolkit = consumer_toolkit(options=options, company=database, state=database, amqp_url=settings.amqp_url)
        try:
            result = toolkit.create_sales_document(document)
        finally:
            close = getattr(toolkit, "close", None)
            if close is not None:
                close()
        stored = ExchequerReader(database=database).document(result.reference)
    lines = [(line.stock_code, line.qty, line.net_value, line.vat_code) for line in stored.lines]
    print(f"{result.reference} ({'created' if result.created else 'already there'}) via {options.write_backend}: "
          f"account {stored.header.account_code}, your ref {stored.header.long_your_ref}, lines {lines}")
    expected = [(args.stock.upper(), float(args.qty), float(args.price), args.vat_code)]
    if stored.header.doc_type != "SQU" or stored.header.long_your_ref != document.long_your_ref or lines != expected:
        print("smoke test FAILED: the quotation read back is not the one sent")
        return 1
    print("smoke test passed: the quotation was saved and reads back as sent")
    return 0
