"""The composition root and the typed configuration: one place builds, one place holds defaults."""

import dataclasses
import pathlib
import re

import pytest

import exsync
from exsync import wiring
from exsync.config import Settings
from exsync.schemas.config import validate_config
from exsync.schemas.sections import BusConfig, OrderRule

EXSYNC_DIR = pathlib.Path(exsync.__file__).parent


def _sources(directory):
    return {path: path.read_text(encoding="utf-8") for path in directory.rglob("*.py")}


def test_the_topology_is_what_the_consumer_modules_declare():
    topology = wiring.topology(validate_config({"bus": {"retry_delays_seconds": [2, 7], "max_attempts": 3}})[0])
    assert topology.queues == wiring.QUEUES
    assert (topology.retry_delays_seconds, topology.max_attempts) == ((2, 7), 3)
    for name, (queue, _) in wiring.CONSUMERS.items():
        assert topology.queue(queue).name == queue, name
    assert wiring.topology(max_attempts=9).max_attempts == 9


def test_the_bus_names_no_queue_of_the_domain():
    sources = _sources(EXSYNC_DIR / "bus")
    for spec in wiring.QUEUES:
        assert [path.name for path, text in sources.items() if spec.name in text] == [], spec.name


def test_the_configuration_loads_as_frozen_typed_sections():
    config, problems = validate_config({"bus": {"prefetch": 20}, "orders": {"rules": [{"action": "SQU"}]}})
    assert problems == []
    assert isinstance(config.bus, BusConfig) and config.bus.prefetch == 20
    assert config.orders.rules == [OrderRule(name="", when={}, action="SQU")]
    # the file's own paths still read what they name
    assert config["bus"]["prefetch"] == 20
    with pytest.raises(KeyError):
        config["colour"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.bus.prefetch = 1


def test_no_module_reads_a_config_key_with_a_default_of_its_own():
    # (Flask's own `app.config[...]` is not exsync's configuration)
    reads = re.compile(r"config\.get\(|(?<!app\.)config\[\"|options\.get\(\"")
    found = [f"{path.relative_to(EXSYNC_DIR)}:{number}" for path, text in _sources(EXSYNC_DIR).items()
             if path.name != "sections.py"
             for number, line in enumerate(text.splitlines(), 1) if reads.search(line)]
    assert found == []


def test_connections_use_the_configured_names(tmp_path):
    config = validate_config({"exchequer": {"company": "ACME01"}})[0]
    settings = Settings(exchequer_dsn=f"sqlite:///{tmp_path / 'company.db'}", state_dsn=f"sqlite:///{tmp_path / 's.db'}",
                        config=config)
    with wiring.company_database(settings) as company, wiring.state_database(settings) as state:
        assert company.mapping.company == state.mapping.company == "ACME01"
