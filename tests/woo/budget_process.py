"""A process for the shop-budget test: waits for a start time, then lists products `count` times
through a client made as every exsync process makes it (`WooClient.from_settings`)."""

import sys
import time

from exsync.config import load_settings
from exsync.woo import WooClient


def main(start_at, count):
    with WooClient.from_settings(load_settings()) as client:
        time.sleep(max(0.0, start_at - time.time()))
        for _ in range(count):
            client.list_products_page(per_page=1)


if __name__ == "__main__":
    main(float(sys.argv[1]), int(sys.argv[2]))
