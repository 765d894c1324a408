"""What a PromQL expression names, checked against the metrics that exist.

Not a PromQL parser: it finds metric names (exsync's, RabbitMQ's plugin's, `up`), the label
matchers written on them and the labels of `by (...)`, which is what goes wrong when a metric is
renamed or a label dropped.
"""

import re

from exsync.metrics import SPECS

# What Prometheus adds to every exsync series (monitoring.yaml's relabelings and the operator's).
TARGET_LABELS = ("namespace", "pod", "job", "instance", "component", "container", "service", "endpoint")

# RabbitMQ's rabbitmq_prometheus plugin at /metrics/detailed?family=queue_coarse_metrics&family=
# queue_consumer_count (docs/runbook.md, "Scraping RabbitMQ"): per queue, labelled vhost and queue.
RABBITMQ_METRICS = {
    "rabbitmq_detailed_queue_messages": ("vhost", "queue"),
    "rabbitmq_detailed_queue_messages_ready": ("vhost", "queue"),
    "rabbitmq_detailed_queue_messages_unacked": ("vhost", "queue"),
    "rabbitmq_detailed_queue_consumers": ("vhost", "queue"),
}

FUNCTIONS_AND_KEYWORDS = {"le"}
_NAME = re.compile(r"\b((?:exsync|rabbitmq)_[a-z0-9_]+|up)\b(\{[^}]*\})?")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_LABEL_REPLACE = re.compile(r'label_replace\([^"]*"([a-z_]+)"')


def known_metrics():
    """Every series name exsync exposes -> its labels, with the RabbitMQ plugin's and `up`."""
    names = {}
    for spec in SPECS:
        base = f"exsync_{spec.name}"
        if spec.kind == "counter":
            names[f"{base}_total"] = spec.labels
        elif spec.kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                names[base + suffix] = spec.labels + (("le",) if suffix == "_bucket" else ())
        else:
            names[base] = spec.labels
    names.update(RABBITMQ_METRICS)
    names["up"] = ()
    return names


def problems(expr, metrics=None):
    """What is wrong with `expr`: unknown metrics, labels they do not have; [] when nothing is."""
    metrics = known_metrics() if metrics is None else metrics
    found = []
    named_labels = set(TARGET_LABELS)
    used = list(_NAME.finditer(expr))
    if not used:
        return [f"{expr!r} names no metric"]
    for match in used:
        name, matchers = match.group(1), match.group(2) or ""
        if name not in metrics:
            found.append(f"no metric {name}")
            continue
        allowed = set(metrics[name]) | set(TARGET_LABELS)
        named_labels |= allowed
        for label in _MATCHER.findall(matchers):
            if label not in allowed:
                found.append(f"{name} has no label {label!r}")
    named_labels |= set(_LABEL_REPLACE.findall(expr))
    for group in _GROUPING.findall(expr):
        for label in (part.strip() for part in group.split(",")):
            if label and label not in named_labels:
                found.append(f"no metric in the expression has the label {label!r} it groups by")
    return found
