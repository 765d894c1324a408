"""Runs every bench/bench_*.py module's `run()` in turn, or only those named on the command line."""

import importlib
import pkgutil
import sys
import time

import bench


def main(names):
    modules = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    chosen = [m for m in modules if not names or m.removeprefix("bench_") in names or m in names]
    failed = []
    for name in chosen:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        try:
            importlib.import_module(f"bench.{name}").run()
        except Exception as error:  # one broken benchmark must not hide the others' figures
            failed.append(name)
            print(f"{name} failed: {error!r}", file=sys.stderr)
        print(f"== {name} took {time.monotonic() - started:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
