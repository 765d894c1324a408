"""bench/results.json: one object keyed by measure name (value, unit, goal, conditions)."""

import json
import os
import platform
import tempfile

__all__ = ["RESULTS_PATH", "record"]

RESULTS_PATH = os.path.join(os.path.dirname(__file__), "results.json")


def record(key, *, value, unit, goal, conditions):
    """Merges one measure into results.json (written atomically) and prints it."""
    try:
        with open(RESULTS_PATH, encoding="utf-8") as handle:
            results = json.load(handle)
    except (OSError, ValueError):
        results = {}
    results[key] = {
        "value": value,
        "unit": unit,
        "goal": goal,
        "conditions": {"cpus": os.cpu_count(), "python": platform.python_version(), **conditions},
    }
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(RESULTS_PATH), suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, RESULTS_PATH)
    print(f"{key}: {value} {unit} (goal {goal})")
