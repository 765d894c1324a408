"""`exsync consume NAME`: runs one consumer's handler on its queue under the bus's Worker.

Which consumer runs on which queue is declared by the consumer modules (`QUEUE`) and put
together in `exsync.wiring`; this module runs what it is given until SIGTERM.
"""

from typing import Any

from exsync.bus import BrokerUnavailable, Worker

__all__ = ["run_consumer"]


def run_consumer(*, worker: Worker, consumer: Any, readiness: Any = None) -> int:
    """Runs `worker` (whose handler is `consumer.handle`) until SIGTERM, then closes the consumer;
    `readiness` (exsync.health, optional) learns whether it is consuming."""
    if readiness is not None:
        def consuming() -> None:
            if not worker.consuming:
                raise BrokerUnavailable(f"not consuming {worker.queue}")

        readiness.add("broker", consuming)
    try:
        worker.run()
    finally:
        close = getattr(consumer, "close", None)
        if close is not None:
            close()
    return 0
