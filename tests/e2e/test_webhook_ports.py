"""`exsync webhook` with EXSYNC_METRICS_BIND: /metrics and /readyz only off the public port."""

import os

import pytest
import requests

from exsync import wiring
from exsync.bus import declare_topology
from exsync.demo import exsync_process
from tests.support.net import free_port, wait_for_port


@pytest.mark.slow
def test_metrics_and_readiness_answer_only_on_the_internal_port(amqp_url, tmp_path):
    declare_topology(amqp_url, wiring.topology())
    public, internal = free_port(), free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "EXSYNC_AMQP_URL": amqp_url,
           "EXSYNC_WEBHOOK_SECRETS": "a-secret", "EXSYNC_BIND": f"127.0.0.1:{public}",
           "EXSYNC_METRICS_BIND": f"127.0.0.1:{internal}", "EXSYNC_WEBHOOK_WORKERS": "1",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    with exsync_process(["webhook"], env=env, log_path=tmp_path / "gunicorn.log"):
        wait_for_port("127.0.0.1", public, timeout_seconds=30)
        wait_for_port("127.0.0.1", internal, timeout_seconds=30)
        outside, inside = f"http://127.0.0.1:{public}", f"http://127.0.0.1:{internal}"
        assert requests.get(f"{outside}/healthz", timeout=10).status_code == 200
        for path in ("/metrics", "/readyz"):
            assert requests.get(f"{outside}{path}", timeout=10).status_code == 404
            # gunicorn takes SERVER_PORT from the Host header: the port must come from the socket
            spoofed = requests.get(f"{outside}{path}", headers={"Host": f"127.0.0.1:{internal}"}, timeout=10)
            assert spoofed.status_code == 404
        # an unsigned delivery, refused, so the receiver has a count to show
        assert requests.post(f"{outside}/webhooks/woocommerce", data=b"{}", timeout=10).status_code == 401
        ready = requests.get(f"{inside}/readyz", timeout=10)
        assert (ready.status_code, ready.text) == (200, "ready\n")
        assert "exsync_webhook_unauthorized_total" in requests.get(f"{inside}/metrics", timeout=10).text
