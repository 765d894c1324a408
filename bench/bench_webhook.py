"""The receiver against a bare gunicorn+Flask endpoint: same workers, same load, one run.

Key: webhook_throughput_ratio (receiver requests/s ÷ bare requests/s, goal >= 0.5); also the
p50/p99 of both and the p99 the receiver adds (goal <= 10 ms).
"""

import json
import pathlib
import sys

from bench.results import record
from bench.support import free_port, private_vhost, run_wrk, server
from exsync.webhooks.signature import compute_signature
from exsync.woo.sandbox import php_json_dumps

WORKERS = 2
THREADS = 8
CONNECTIONS = 16
DURATION_SECONDS = 10
SECRET = "bench-secret"
ORDER = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "woo" / "order_727.json"


def run():
    body = php_json_dumps(json.loads(ORDER.read_text()))
    headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Topic": "order.created",
        "X-WC-Webhook-Source": "https://shop.example/",
        "X-WC-Webhook-Signature": compute_signature(body, SECRET),
        "X-WC-Webhook-ID": "1",
    }
    figures = {}
    with private_vhost() as amqp_url:
        for name, command, env in (
            ("bare", [sys.executable, "-m", "gunicorn", "-w", str(WORKERS), "-k", "gthread", "--threads",
                      str(THREADS), "bench.bare_app:app"], {}),
            ("receiver", [sys.executable, "-m", "exsync.cli", "webhook"],
             {"EXSYNC_AMQP_URL": amqp_url, "EXSYNC_WEBHOOK_SECRETS": SECRET,
              "EXSYNC_WEBHOOK_WORKERS": str(WORKERS), "EXSYNC_WEBHOOK_THREADS": str(THREADS),
              "EXSYNC_LOG_LEVEL": "WARNING"}),
        ):
            port = free_port()
            if name == "bare":
                command = command + ["-b", f"127.0.0.1:{port}"]
            env = {**env, "EXSYNC_BIND": f"127.0.0.1:{port}"}
            with server(command, port=port, env=env):
                url = f"http://127.0.0.1:{port}/webhooks/woocommerce"
                run_wrk(url, body=body, headers=headers, connections=CONNECTIONS, duration_seconds=2)  # warm-up
                figures[name] = run_wrk(url, body=body, headers=headers, connections=CONNECTIONS,
                                        duration_seconds=DURATION_SECONDS)
            print(f"{name}: {figures[name]}")
    bare, receiver = figures["bare"], figures["receiver"]
    if receiver["non_2xx"]:
        raise RuntimeError(f"the receiver answered {receiver['non_2xx']} requests with an error")
    conditions = {"workers": WORKERS, "threads": THREADS, "connections": CONNECTIONS,
                  "duration_seconds": DURATION_SECONDS, "load_generator": "wrk",
                  "bare": bare, "receiver": receiver}
    record("webhook_throughput_ratio", value=round(receiver["requests_per_second"] / bare["requests_per_second"], 3),
           unit="ratio", goal=">= 0.5", conditions=conditions)
    record("webhook_p99_added_seconds", value=round(receiver["p99_seconds"] - bare["p99_seconds"], 4),
           unit="seconds", goal="<= 0.010", conditions=conditions)
