"""A worker process for the SIGTERM test: each message is logged as started, then done, 2 s apart."""

import sys
import time

from exsync import wiring
from exsync.bus import Worker
from exsync.logs import configure_logging


def main(url, log_path):
    configure_logging("INFO")

    def handler(message):
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"started {message.event['subject']}\n")
        time.sleep(2)
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"done {message.event['subject']}\n")

    Worker(url=url, queue="orders.import", handler=handler, topology=wiring.topology()).run()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
