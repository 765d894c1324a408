"""A process for the shop-budget test: waits for a start time, then lists products `count` times
through a client made as every exsync process makes it (`exsync.wiring.woo_client`)."""

import sys
import time

from exsync import wiring
from exsync.config import load_settings


def main(start_at, count):
    with wiring.woo_client(load_settings()) as client:
        time.sleep(max(0.0, start_at - time.time()))
        for _ in range(count):
            client.list_products_page(per_page=1)


if __name__ == "__main__":
    main(float(sys.argv[1]), int(sys.argv[2]))
