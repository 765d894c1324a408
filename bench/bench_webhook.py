"""The receiver against a bare gunicorn+Flask endpoint: same workers, same load, one run.

Keys: webhook_throughput_ratio (receiver requests/s ÷ bare requests/s at saturation, information),
webhook_p99_added_seconds (at saturation, goal <= 10 ms), webhook_paced_p99_added_seconds (the same
at one paced rate both servers can sustain: at saturation each p99 is mostly its own queueing; the
median of PACED_RUNS runs, goal <= 10 ms in at least PACED_RUNS_GOAL of them, the count recorded) and
webhook_gevent_gain_ratio (the receiver on gevent workers ÷ the same receiver on gthread workers,
the measure behind exsync's worker class), and webhook_cpu_ratio_to_floor: the receiver's CPU per
delivery (its processes plus the broker's) ÷ the floor of durability measured in the same run, the
bare endpoint's CPU per request plus the CPU per message (publisher plus broker) of a raw pika
publisher with confirms into the same quorum queue at the same concurrency (goal <= 1.25).
webhook_cpu_ratio_to_floor_at_same_rate is the same ratio with the floor's parts paced to the
receiver's rate (and, in its conditions, all three at the paced rate): every server's CPU per request
here rises as its rate falls, so a floor measured at several times the receiver's rate is not one
the receiver could reach at its own. Beside them exsync's SharedPublisher is measured as the raw
publisher is, its threads sharing one connection.
webhook_throughput_ratio is information with no goal: on two cores shared with RabbitMQ and wrk it
measures the broker's share of the machine, not the receiver.
Each server's CPU per request and the broker's per message are recorded with them, read from
/proc around the measured run, so where the time goes is on record beside the ratio, and the CPU
the hypervisor took from the machine meanwhile (machine_steal_seconds). The queues are emptied
between parts and the broker's memory read as each part starts: a quorum queue keeps its log's
entries in memory until the log rolls over (512 MiB), and the broker's CPU per message, and with
it every figure here that involves it, moves with that. Beside the paced p99 the broker's own
publish-to-confirm latency at the paced rate is recorded: every answer waits for a confirm, so its
p99 is a part of the receiver's that no receiver removes.
"""

import contextlib
import functools
import json
import os
import pathlib
import statistics
import sys
import threading
import time

from bench.results import record
from bench.support import (
    bench_vhost,
    broker_memory_bytes,
    broker_pid,
    cpu_seconds,
    free_port,
    machine_steal_seconds,
    process_tree,
    purge_queues,
    run_wrk,
    server,
)
from exsync import wiring
from exsync.bus import WOO_EXCHANGE, new_event
from exsync.bus.publisher import encode_event, message_properties
from exsync.config import DEFAULT_WEBHOOK_CONNECTIONS
from exsync.sandbox import php_json_dumps
from exsync.webhooks.serve import gunicorn_command
from exsync.webhooks.signature import compute_signature

WORKERS = 2
WORKER_CONNECTIONS = DEFAULT_WEBHOOK_CONNECTIONS
GTHREAD_THREADS = 8
CONNECTIONS = 16
WARM_UP_SECONDS = 2
DURATION_SECONDS = 10
# 16 connections each pausing 80 ms on average after an answer: about 190 deliveries/s, far above a shop's
# webhook rate and well below what either server sustains here.
PACED_PAUSE_MS = 80
# The paced comparison is repeated (bare, then receiver, side by side each time): its goal is to hold
# in at least PACED_RUNS_GOAL of PACED_RUNS runs, as a p99 of 2,000 requests moves with the machine.
PACED_RUNS = 10
PACED_RUNS_GOAL = 9
PACED_P99_ADDED_GOAL_SECONDS = 0.010
SECRET = "bench-secret"
ORDER = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "woo" / "order_727.json"


def _servers(amqp_url):
    """(name, command, environment) of each server measured, all on WORKERS workers."""
    receiver_env = {"EXSYNC_AMQP_URL": amqp_url, "EXSYNC_WEBHOOK_SECRETS": SECRET,
                    "EXSYNC_WEBHOOK_WORKERS": str(WORKERS), "EXSYNC_WEBHOOK_CONNECTIONS": str(WORKER_CONNECTIONS),
                    "EXSYNC_LOG_LEVEL": "WARNING"}
    bare = [sys.executable, "-m", "gunicorn", "-w", str(WORKERS), "-k", "gevent",
            "--worker-connections", str(WORKER_CONNECTIONS), "bench.bare_app:app"]
    # gunicorn's command line overrides its config module: the same receiver, on threads.
    *gunicorn, app = gunicorn_command()
    gthread = [*gunicorn, "-k", "gthread", "--threads", str(GTHREAD_THREADS), app]
    return (
        ("bare", bare, {}),
        ("receiver", [sys.executable, "-m", "exsync.cli", "webhook"], receiver_env),
        ("receiver_gthread", gthread, receiver_env),
    )


def _measure(command, env, *, body, headers, broker):
    port = free_port()
    env = {**env, "EXSYNC_BIND": f"127.0.0.1:{port}"}
    if "bench.bare_app:app" in command:
        command = command + ["-b", f"127.0.0.1:{port}"]
    with server(command, port=port, env=env) as process:
        url = f"http://127.0.0.1:{port}/webhooks/woocommerce"
        run_wrk(url, body=body, headers=headers, connections=CONNECTIONS, duration_seconds=WARM_UP_SECONDS)
        pids = process_tree(process.pid)
        figures = _with_cpu(url, pids, broker, body=body, headers=headers, connections=CONNECTIONS,
                            duration_seconds=DURATION_SECONDS)
        paced = dict(body=body, headers=headers, connections=CONNECTIONS, pause_ms=PACED_PAUSE_MS)
        run_wrk(url, duration_seconds=WARM_UP_SECONDS, **paced)  # the saturated run's backlog drains first
        figures["paced"] = _with_cpu(url, pids, broker, duration_seconds=DURATION_SECONDS, **paced)
    return figures


def _with_cpu(url, pids, broker, **load):
    """run_wrk's figures with the server's and the broker's CPU per request over the run."""
    server_before, broker_before = cpu_seconds(pids), cpu_seconds([broker] if broker else [])
    steal_before = machine_steal_seconds()
    figures = run_wrk(url, **load)
    figures["machine_steal_seconds"] = round(machine_steal_seconds() - steal_before, 2)
    requests = figures["requests"]
    figures["server_cpu_ms_per_request"] = round((cpu_seconds(pids) - server_before) / requests * 1000, 3)
    figures["broker_cpu_ms_per_request"] = round((cpu_seconds([broker] if broker else []) - broker_before)
                                                 / requests * 1000, 3)
    return figures


def _bare_at_rate(command, *, rate_per_second, body, headers, broker):
    """The bare endpoint's figures paced to about `rate_per_second` (each connection pausing for
    its share of the interval, less the bare endpoint's own answer time, about 1 ms at these rates):
    its CPU per request rises as the rate falls, as every server's here does."""
    port = free_port()
    pause_ms = max(1, round(CONNECTIONS / rate_per_second * 1000 - 1))
    with server(command + ["-b", f"127.0.0.1:{port}"], port=port) as process:
        url = f"http://127.0.0.1:{port}/webhooks/woocommerce"
        load = dict(body=body, headers=headers, connections=CONNECTIONS, pause_ms=pause_ms)
        run_wrk(url, duration_seconds=WARM_UP_SECONDS, **load)
        figures = _with_cpu(url, process_tree(process.pid), broker, duration_seconds=DURATION_SECONDS, **load)
    return {**figures, "pause_ms": pause_ms}


def _raw_publisher(amqp_url, *, body, broker, rate_per_second=None, shared=False):
    """The publishing half of the floor: CONNECTIONS threads, each on its own connection and channel
    in confirm mode, publishing the receiver's message (the same envelope bytes, persistent,
    mandatory) to the same exchange and routing key, one confirm at a time, for DURATION_SECONDS;
    as fast as confirms come, or, with `rate_per_second`, paced to that rate in all.

    Returns its CPU per message and the broker's, read as the servers' are (process_time covers
    every thread of this process; nothing else runs in it meanwhile), and the p50 and p99 of
    publish-to-confirm: a delivery's answer waits for its confirm, so at a paced rate this is the
    part of the receiver's paced p99 that no receiver can remove.

    With `shared`, the threads publish through one exsync SharedPublisher instead (the receiver's
    and the consumers' publisher, on threads): exsync's publishing against raw pika's, alone.
    """
    import pika

    from exsync.bus import SharedPublisher

    event = new_event(type="woo.order.created", source="https://shop.example/", subject="727",
                      data=json.loads(body))
    message, properties = encode_event(event), message_properties(event)
    stop, counts, ready = threading.Event(), [0] * CONNECTIONS, threading.Barrier(CONNECTIONS + 1)
    measuring, latencies = threading.Event(), [[] for _ in range(CONNECTIONS)]  # each thread its own list
    interval_seconds = CONNECTIONS / rate_per_second if rate_per_second else 0.0

    shared_publisher = SharedPublisher(url=amqp_url) if shared else None

    def publish(slot):
        if shared_publisher is not None:
            send = lambda: shared_publisher.publish(exchange=WOO_EXCHANGE, routing_key="order.created",  # noqa: E731
                                                    event=event)
            connection = None
        else:
            connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
            channel = connection.channel()
            channel.confirm_delivery()
            send = lambda: channel.basic_publish(WOO_EXCHANGE, "order.created", message, properties,  # noqa: E731
                                                 mandatory=True)
        ready.wait()
        next_at = time.monotonic() + slot * interval_seconds / CONNECTIONS
        try:
            while not stop.is_set():
                if interval_seconds:
                    stop.wait(max(0.0, next_at - time.monotonic()))
                    next_at += interval_seconds
                started = time.perf_counter()
                send()
                if measuring.is_set():
                    latencies[slot].append(time.perf_counter() - started)
                counts[slot] += 1
        finally:
            if connection is not None:
                connection.close()

    threads = [threading.Thread(target=publish, args=(slot,), daemon=True) for slot in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    ready.wait()
    time.sleep(WARM_UP_SECONDS)
    counted_from, own_before = sum(counts), time.process_time()
    broker_before = cpu_seconds([broker] if broker else [])
    measuring.set()
    time.sleep(DURATION_SECONDS)
    messages = sum(counts) - counted_from
    own_cpu, broker_cpu = time.process_time() - own_before, cpu_seconds([broker] if broker else []) - broker_before
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    if shared_publisher is not None:
        shared_publisher.close()
    quantiles = statistics.quantiles([each for slot in latencies for each in slot], n=100)
    return {"messages": messages, "messages_per_second": round(messages / DURATION_SECONDS, 1),
            "publisher_cpu_ms_per_message": round(own_cpu / messages * 1000, 3),
            "broker_cpu_ms_per_message": round(broker_cpu / messages * 1000, 3),
            "confirm_p50_seconds": round(quantiles[49], 5), "confirm_p99_seconds": round(quantiles[98], 5)}


def _paced_runs(servers, *, body, headers):
    """The paced p99 of the bare endpoint and of the receiver in each of PACED_RUNS runs, both
    servers up throughout and measured one after the other each time."""
    paced = dict(body=body, headers=headers, connections=CONNECTIONS, pause_ms=PACED_PAUSE_MS)
    with contextlib.ExitStack() as stack:
        urls = {}
        for name, command, env in servers:
            port = free_port()
            env = {**env, "EXSYNC_BIND": f"127.0.0.1:{port}"}
            if "bench.bare_app:app" in command:
                command = command + ["-b", f"127.0.0.1:{port}"]
            stack.enter_context(server(command, port=port, env=env))
            urls[name] = f"http://127.0.0.1:{port}/webhooks/woocommerce"
            run_wrk(urls[name], duration_seconds=WARM_UP_SECONDS, **paced)
        runs = []
        for _ in range(PACED_RUNS):
            figures = {name: run_wrk(url, duration_seconds=DURATION_SECONDS, **paced) for name, url in urls.items()}
            errors = figures["receiver"]["non_2xx"]
            if errors:
                raise RuntimeError(f"the receiver answered {errors} paced requests with an error")
            runs.append({name: figures[name]["p99_seconds"] for name in urls})
    return runs


def _settled(topology):
    """Between parts: the queues emptied, so no part publishes behind another's backlog, a second
    for the broker to settle, and the broker's memory as the next part finds it."""
    purge_queues(topology)
    time.sleep(1)
    return broker_memory_bytes()


def run():
    body = php_json_dumps(json.loads(ORDER.read_text()))
    headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Topic": "order.created",
        "X-WC-Webhook-Source": "https://shop.example/",
        "X-WC-Webhook-Signature": compute_signature(body, SECRET),
        "X-WC-Webhook-ID": "1",
        # As a shop sends every delivery (../shared/woocommerce.md, "Seen on a real shop"): one
        # connection each, so every server here pays a connection's accept and close per request,
        # the bare endpoint too (with keep-alive it alone was spared them: the receiver closes
        # after each answer, as WooCommerce asks).
        "Connection": "close",
    }
    broker = broker_pid()
    figures = {}
    topology = wiring.topology()
    with bench_vhost(topology) as amqp_url:
        def part(name, measure):
            memory = _settled(topology)
            figures[name] = {**measure(), "broker_memory_bytes_at_start": memory}
            print(f"{name}: {figures[name]}", flush=True)

        for name, command, env in _servers(amqp_url):
            part(name, functools.partial(_measure, command, env, body=body, headers=headers, broker=broker))
        part("raw_publisher", lambda: _raw_publisher(amqp_url, body=body, broker=broker))
        receiver_rate = figures["receiver"]["requests_per_second"]
        # The broker's CPU per message falls as the rate rises (it writes and confirms in batches):
        # the same publisher paced to the receiver's rate shows how much of the gap is the rate alone.
        part("raw_publisher_at_receiver_rate",
             lambda: _raw_publisher(amqp_url, body=body, broker=broker, rate_per_second=receiver_rate))
        # The bare endpoint's CPU per request rises as the rate falls too: the floor's other half at
        # the receiver's rate, so that every part of the comparison runs at one rate.
        bare_command = next(command for name, command, _ in _servers(amqp_url) if name == "bare")
        part("bare_at_receiver_rate", lambda: _bare_at_rate(bare_command, rate_per_second=receiver_rate, body=body,
                                                            headers=headers, broker=broker))
        part("shared_publisher", lambda: _raw_publisher(amqp_url, body=body, broker=broker, shared=True))
        part("shared_publisher_at_receiver_rate",
             lambda: _raw_publisher(amqp_url, body=body, broker=broker, rate_per_second=receiver_rate, shared=True))
        paced_memory = _settled(topology)
        paced_runs = _paced_runs([each for each in _servers(amqp_url) if each[0] in ("bare", "receiver")],
                                 body=body, headers=headers)
        print(f"paced runs (p99 seconds): {paced_runs}", flush=True)
        # At the rate the paced runs reached (the receiver's, in the last run).
        paced_rate = figures["receiver"]["paced"]["requests_per_second"]
        part("raw_confirm_at_paced_rate",
             lambda: _raw_publisher(amqp_url, body=body, broker=broker, rate_per_second=paced_rate))
        raw_confirm = figures["raw_confirm_at_paced_rate"]
    bare, receiver, gthread = figures["bare"], figures["receiver"], figures["receiver_gthread"]
    for name in ("receiver", "receiver_gthread"):
        errors = sum(figures[name][key] + figures[name]["paced"][key] for key in ("non_2xx", "socket_errors"))
        if errors:
            raise RuntimeError(f"{name} answered {errors} requests with an error or a failed connection")
    conditions = {"load_average_1m_at_end": round(os.getloadavg()[0], 2),
                  "workers": WORKERS, "worker_class": "gevent", "worker_connections": WORKER_CONNECTIONS,
                  "connections": CONNECTIONS, "duration_seconds": DURATION_SECONDS, "load_generator": "wrk",
                  "broker_on_this_machine": broker is not None,
                  "broker_cpu_counts": "all the broker did during the run, whoever asked",
                  "bare": bare, "receiver": receiver}
    record("webhook_throughput_ratio", value=round(receiver["requests_per_second"] / bare["requests_per_second"], 3),
           unit="ratio", goal="none (information: on two cores it measures the broker's share)",
           conditions=conditions)
    raw = figures["raw_publisher"]
    floor_ms = (bare["server_cpu_ms_per_request"] + raw["publisher_cpu_ms_per_message"]
                + raw["broker_cpu_ms_per_message"])
    receiver_ms = receiver["server_cpu_ms_per_request"] + receiver["broker_cpu_ms_per_request"]
    paced = figures["raw_publisher_at_receiver_rate"]
    paced_floor_ms = (bare["server_cpu_ms_per_request"] + paced["publisher_cpu_ms_per_message"]
                      + paced["broker_cpu_ms_per_message"])
    record("webhook_cpu_ratio_to_floor", value=round(receiver_ms / floor_ms, 3), unit="ratio", goal="<= 1.25",
           conditions={**conditions, "raw_publisher": raw, "floor_cpu_ms_per_delivery": round(floor_ms, 3),
                       "receiver_cpu_ms_per_delivery": round(receiver_ms, 3),
                       "raw_publisher_at_receiver_rate": paced,
                       "ratio_to_floor_with_publisher_at_receiver_rate": round(receiver_ms / paced_floor_ms, 3),
                       "floor": "bare endpoint CPU per request + raw pika publisher (confirms, same exchange, "
                                "routing key, quorum queue and concurrency) CPU per message, publisher + broker"})
    # The same ratio with every part at one rate: the floor's bare endpoint and raw publisher paced
    # to the receiver's saturated rate, and all three at the paced rate of the p99 runs.
    at_rate = figures["bare_at_receiver_rate"]
    same_rate_floor_ms = (at_rate["server_cpu_ms_per_request"] + paced["publisher_cpu_ms_per_message"]
                          + paced["broker_cpu_ms_per_message"])
    receiver_paced_ms = receiver["paced"]["server_cpu_ms_per_request"] + receiver["paced"]["broker_cpu_ms_per_request"]
    paced_floor_ms = (bare["paced"]["server_cpu_ms_per_request"] + raw_confirm["publisher_cpu_ms_per_message"]
                      + raw_confirm["broker_cpu_ms_per_message"])
    record("webhook_cpu_ratio_to_floor_at_same_rate", value=round(receiver_ms / same_rate_floor_ms, 3), unit="ratio",
           goal="<= 1.25 (webhook_cpu_ratio_to_floor's goal, the floor's parts at the receiver's rate)",
           conditions={**conditions, "receiver_cpu_ms_per_delivery": round(receiver_ms, 3),
                       "floor_cpu_ms_per_delivery": round(same_rate_floor_ms, 3),
                       "bare_at_receiver_rate": at_rate, "raw_publisher_at_receiver_rate": paced,
                       "at_paced_rate": {"ratio": round(receiver_paced_ms / paced_floor_ms, 3),
                                         "receiver_cpu_ms_per_delivery": round(receiver_paced_ms, 3),
                                         "floor_cpu_ms_per_delivery": round(paced_floor_ms, 3),
                                         "raw_publisher": raw_confirm},
                       "shared_publisher": figures["shared_publisher"],
                       "shared_publisher_at_receiver_rate": figures["shared_publisher_at_receiver_rate"],
                       "shared_publisher_is": f"exsync's SharedPublisher shared by {CONNECTIONS} threads on one "
                                              f"connection, beside the raw publisher's {CONNECTIONS} connections"})
    record("webhook_p99_added_seconds", value=round(receiver["p99_seconds"] - bare["p99_seconds"], 4),
           unit="seconds", goal="<= 0.010", conditions=conditions)
    added = [round(each["receiver"] - each["bare"], 4) for each in paced_runs]
    met = sum(value <= PACED_P99_ADDED_GOAL_SECONDS for value in added)
    record("webhook_paced_p99_added_seconds", value=round(statistics.median(added), 4), unit="seconds",
           goal=f"<= {PACED_P99_ADDED_GOAL_SECONDS} in at least {PACED_RUNS_GOAL} of {PACED_RUNS} runs",
           conditions={**conditions, "pause_ms_after_each_answer": PACED_PAUSE_MS, "value": "median of the runs",
                       "runs": PACED_RUNS, "runs_meeting_goal": met, "added_seconds_per_run": added,
                       "broker_memory_bytes_at_start": paced_memory,
                       "raw_confirm_latency_at_paced_rate": raw_confirm,
                       "goal_met": met >= PACED_RUNS_GOAL})
    record("webhook_gevent_gain_ratio",
           value=round(receiver["requests_per_second"] / gthread["requests_per_second"], 3), unit="ratio",
           goal="> 1 (else gthread workers)",
           conditions={**conditions, "gthread_threads": GTHREAD_THREADS, "receiver_gthread": gthread})
