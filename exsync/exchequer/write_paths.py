"""Which Toolkit does the writing: chosen by `exchequer.write_backend` (the consumers' side) and
`exchequer.agent.toolkit` (the agent's side). The one place that builds them."""

from exsync.exchequer.agent import AgentToolkit
from exsync.exchequer.comtoolkit import ComToolkit
from exsync.exchequer.db import Database
from exsync.exchequer.errors import MappingError
from exsync.exchequer.keys import KeyStore
from exsync.exchequer.options import ExchequerOptions
from exsync.exchequer.writer import Toolkit, ToolkitEmulator
from exsync.metrics import Metrics

__all__ = ["agent_side_toolkit", "consumer_toolkit"]


def consumer_toolkit(*, options: ExchequerOptions, company: Database, state: Database, amqp_url: str | None = None,
                     metrics: Metrics | None = None) -> Toolkit:
    """The Toolkit a consumer writes through: the emulator (demo company), or the agent's client."""
    if options.write_backend == "toolkit":
        if not amqp_url:
            raise MappingError("exchequer.write_backend is toolkit but no broker URL reaches the consumer "
                               "(EXSYNC_AMQP_URL)")
        return AgentToolkit(url=amqp_url, keys=KeyStore(state=state, company=company),
                            reply_timeout_seconds=options.agent_reply_timeout_seconds, metrics=metrics)
    return ToolkitEmulator(database=company, vat_codes=options.vat_codes, default_location=options.default_location,
                           account_codes=options.account_codes, metrics=metrics)


def agent_side_toolkit(*, options: ExchequerOptions, company: Database,
                       metrics: Metrics | None = None) -> ComToolkit | ToolkitEmulator:
    """The Toolkit the agent performs commands with: Exchequer's COM Toolkit, or the emulator."""
    if options.agent_toolkit == "com":
        if not options.agent_data_directory:
            raise MappingError("exchequer.agent.data_directory must name the company's data directory for the "
                               "COM Toolkit")
        return ComToolkit(data_directory=options.agent_data_directory, database=company,
                          account_key_field=options.agent_account_key_field, account_codes=options.account_codes)
    return ToolkitEmulator(database=company, default_location=options.default_location,
                           account_codes=options.account_codes, metrics=metrics)
