"""A broker node lost: three RabbitMQ nodes clustered on this machine (the scenario's own), quorum
queues over the three, exsync's processes given every node's URL. One node is killed (SIGKILL) while
deliveries flow: every delivery answered 200 is imported, and the receiver and the orders consumer move
to another node by themselves. RabbitMQ clustering is how exsync grows past one broker machine.
"""

import random
import threading
import time

import pytest

from tests.reliability.support import Delivery, deliver_all, make_order, record_figures, stage, wait_for_documents
from tests.reliability.test_outages import recovery_seconds
from tests.support.rabbit import queue_depth
from tests.support.rabbit_cluster import rabbit_cluster

FIRST_ORDER_ID = 900001


def node_loss(running, cluster, *, per_second, seconds, kill_after_seconds):
    rng = random.Random(seconds)
    orders = [make_order(FIRST_ORDER_ID + n, running.codes, rng) for n in range(int(per_second * seconds))]
    deliveries = [Delivery.of(order, "order.created") for order in orders]
    lost_node = cluster.nodes[0]  # the first named: where every process connected first
    marks = {}

    def kill():
        time.sleep(kill_after_seconds)
        marks["killed"] = time.monotonic()
        cluster.kill(lost_node)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    deliver_all(running.base_url, deliveries, concurrency=64, per_second=per_second)
    thread.join()
    accepted = {d.order_id: order["total"] for d, order in zip(deliveries, orders) if d.status == 200}
    count, settled_seconds = wait_for_documents(running.dsn, accepted, amqp_url=running.amqp_url,
                                                timeout_seconds=300)
    after_kill = {d.order_id for d in deliveries if d.sent_at > marks["killed"] + 1 and d.status == 200}
    answers = {}
    for d in deliveries:
        answers[str(d.status)] = answers.get(str(d.status), 0) + 1
    return count, {
        "nodes": len(cluster.nodes), "per_second": per_second, "seconds": seconds,
        "killed_after_seconds": kill_after_seconds, "answers": answers, "lost": len(count.missing),
        "extra_documents": count.extra, "wrong_totals": len(count.wrong_total),
        "answered_200_after_kill": len(after_kill),
        "imported_after_kill": len(after_kill - set(count.missing)),
        "delivery_recovery_seconds": recovery_seconds(deliveries, marks["killed"]),
        "settled_seconds": round(settled_seconds, 1),
        "running_nodes_after": len(cluster.running_nodes(cluster.nodes[-1])),
        "parked_on_orders_import_dead": queue_depth(running.amqp_url, "orders.import.dead"),
    }


@pytest.mark.chaos
@pytest.mark.timeout(1200)
def test_chaos_a_broker_node_lost_while_deliveries_flow(pg_odbc_dsn, run_dir):
    with rabbit_cluster(run_dir / "cluster") as cluster, \
            stage(amqp_url=cluster.url, dsn=pg_odbc_dsn, directory=run_dir) as running:
        count, conditions = node_loss(running, cluster, per_second=20, seconds=30, kill_after_seconds=10)
        consumer_log = running.pipeline.log_text("orders")
    record_figures([("chaos_broker_node_loss_lost", conditions["lost"], "deliveries answered 200 not imported",
                     "0")], conditions={
        "scenario": "3 RabbitMQ nodes clustered on this machine, quorum queues over the three, EXSYNC_AMQP_URL "
                    "naming all three; deliveries at 20/s for 30 s; the node every process used first SIGKILLed "
                    "after 10 s", **conditions})
    assert count.wrong == 0, (count, conditions)
    # Both moved by themselves: deliveries after the loss were stored and imported.
    assert conditions["answered_200_after_kill"] > 0, conditions
    assert conditions["imported_after_kill"] == conditions["answered_200_after_kill"], conditions
    assert consumer_log.count(" consuming (") >= 2, "the consumer reconnected to another node"
