"""The alert rules: valid, documented, about metrics that exist, and each one unit-tested by promtool."""

import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

from tests.support.promql import problems

ROOT = pathlib.Path(__file__).resolve().parent.parent
RULES = ROOT / "k8s" / "base" / "alerts.yaml"
UNIT_TESTS = ROOT / "k8s" / "tests" / "alerts.test.yaml"
RUNBOOK = ROOT / "docs" / "runbook.md"


def rule_groups():
    [document] = [d for d in yaml.safe_load_all(RULES.read_text(encoding="utf-8")) if d]
    assert document["kind"] == "PrometheusRule"
    return document["spec"]


def alerts():
    return [rule for group in rule_groups()["groups"] for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="module")
def promtool():
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: `make system-deps` installs Debian's prometheus package, which ships it",
                    pytrace=False)
    return path


def run(command, cwd):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout + result.stderr


def test_the_rules_pass_promtool_check(promtool, tmp_path):
    path = tmp_path / "alerts.rules.yaml"
    path.write_text(yaml.safe_dump(rule_groups()), encoding="utf-8")
    code, output = run([promtool, "check", "rules", str(path)], tmp_path)
    assert code == 0, output
    assert f"{len(alerts())} rules found" in output


def test_every_alert_fires_and_stays_quiet_in_promtools_unit_tests(promtool, tmp_path):
    groups = rule_groups()
    # Annotations are checked by the tests below; the unit tests compare labels only.
    for group in groups["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.rules.yaml").write_text(yaml.safe_dump(groups), encoding="utf-8")
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    code, output = run([promtool, "test", "rules", UNIT_TESTS.name], tmp_path)
    assert code == 0, output
    assert "SUCCESS" in output


def test_every_alert_has_a_firing_and_a_quiet_case():
    cases = [case for test in yaml.safe_load(UNIT_TESTS.read_text(encoding="utf-8"))["tests"]
             for case in test.get("alert_rule_test", [])]
    for alert in alerts():
        name = alert["alert"]
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name}: no unit test where it fires"
        assert any(not case["exp_alerts"] for case in mine), f"{name}: no unit test where it stays quiet"


def test_every_alert_keeps_the_namespace():
    for alert in alerts():
        expr = alert["expr"]
        for grouping in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            assert "namespace" in grouping, f"{alert['alert']}: `by ({grouping})` drops the namespace"
        assert "without" not in expr


def test_every_alert_is_documented_with_a_runbook_section():
    runbook = RUNBOOK.read_text(encoding="utf-8")
    anchors = {re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
               for line in runbook.splitlines() if line.startswith("## ")}
    for alert in alerts():
        annotations = alert["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(annotations), alert["alert"]
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert path == "docs/runbook.md"
        assert anchor == alert["alert"].lower() and anchor in anchors, f"no runbook section for {alert['alert']}"


def test_every_alert_uses_metrics_that_exist_with_their_labels():
    for alert in alerts():
        assert problems(alert["expr"]) == [], alert["alert"]


def test_the_checker_finds_a_renamed_metric_and_a_missing_label():
    assert problems('sum by (namespace) (exsync_bus_messages_parked{queue="x"})') == [
        "no metric exsync_bus_messages_parked"]
    assert problems('sum by (namespace, queue) (exsync_orders_parked{queue="x"})') == [
        "exsync_orders_parked has no label 'queue'",
        "no metric in the expression has the label 'queue' it groups by"]
