"""The on-call dashboard: variables, units, rate windows, and expressions over metrics that exist."""

import json
import pathlib
import re

from tests.support.promql import problems

DASHBOARD = pathlib.Path(__file__).resolve().parent.parent / "k8s" / "base" / "grafana-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# What on-call needs to see (issue 15), each by a panel's title.
REQUIRED = ("Deliveries by outcome", "401s by reason", "Dead letters per queue", "Orders parked",
            "Order import lag (webhook to SOR) p50 / p95", "Capture lag", "Capture cycles by outcome",
            "Writer backlog", "Shop 429s and retries", "Reconciler watermark age", "Customer conflicts waiting",
            "Publish failures", "Exchequer write failures and retries")


def dashboard():
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def targets():
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            yield panel["title"], target["expr"]


def test_datasource_and_namespace_are_variables():
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["namespace"]["datasource"] == DATASOURCE
    assert problems(variables["namespace"]["definition"]) == []


def test_every_panel_has_the_variable_datasource_a_unit_and_its_place():
    panels = dashboard()["panels"]
    titles = [panel["title"] for panel in panels]
    assert len(titles) == len(set(titles))
    assert not set(REQUIRED) - set(titles)
    for panel in panels:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']}: no unit"
        assert all(target["datasource"] == DATASOURCE for target in panel["targets"])


def test_every_expression_is_scoped_to_the_namespace_and_rates_over_the_rate_interval():
    for title, expr in targets():
        for selector in re.findall(r"\b(?:exsync|rabbitmq)_[a-z_]+(\{[^}]*\})?", expr):
            assert 'namespace="$namespace"' in selector, f"{title}: {expr}"
        for window in re.findall(r"\[([^\]]+)\]", expr):
            assert window == "$__rate_interval", f"{title}: a fixed window [{window}]"


def test_every_expression_uses_metrics_that_exist_with_their_labels():
    for title, expr in targets():
        assert problems(expr) == [], title
