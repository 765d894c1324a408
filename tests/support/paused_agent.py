"""An Exchequer agent process whose Toolkit stops after a save has committed and before the agent
answers: the moment a kill -9 is most likely to leave a command half done. A real process running
the real agent loop over RabbitMQ, for tests/exchequer/test_agent.py.

    python -m tests.support.paused_agent DSN AMQP_URL MARKER_PATH
"""

import pathlib
import sys
import time

from exsync.exchequer import ToolkitEmulator, connect
from exsync.exchequer.agent import ToolkitAgent


class PausingEmulator(ToolkitEmulator):
    def __init__(self, *, marker, **kwargs):
        super().__init__(**kwargs)
        self.marker = marker

    def create_sales_document(self, document):
        result = super().create_sales_document(document)
        self.marker.write_text(result.reference)
        time.sleep(3600)  # killed here
        return result


def main(dsn, url, marker):
    with connect(dsn) as database:
        ToolkitAgent(url=url, toolkit=PausingEmulator(database=database, marker=pathlib.Path(marker))).run()


if __name__ == "__main__":
    main(*sys.argv[1:4])
