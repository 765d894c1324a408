import os
import subprocess
import sys

import pytest

from exsync.config import load_settings
from exsync.errors import ConfigError


def test_defaults_without_environment():
    settings = load_settings({})
    # What exsync talks to has no default: a command that needs one says which variable is missing.
    assert settings.amqp_url is None and settings.exchequer_dsn is None and settings.woo_url is None
    assert settings.bind == "0.0.0.0:8000"
    assert settings.webhook_secrets == ()
    assert settings.state_dsn == settings.exchequer_dsn
    assert settings.config["bus"]["retry_delays_seconds"] == [5, 30, 300]
    assert settings.config["bus"]["max_attempts"] == 5
    assert settings.config["webhook"]["max_body_bytes"] == 5 * 1024 * 1024


def test_secrets_are_comma_separated_for_rotation():
    settings = load_settings({"EXSYNC_WEBHOOK_SECRETS": " new-one , old&amp;one ,"})
    assert settings.webhook_secrets == ("new-one", "old&amp;one")


def test_the_receivers_concurrency_and_a_renamed_variable():
    assert load_settings({}).webhook_connections == 16
    assert load_settings({"EXSYNC_WEBHOOK_CONNECTIONS": "40"}).webhook_connections == 40
    with pytest.raises(ConfigError) as raised:
        load_settings({"EXSYNC_WEBHOOK_THREADS": "8", "EXSYNC_WEBHOOK_CONNECTIONS": "0"})
    assert dict(raised.value.problems) == {
        "EXSYNC_WEBHOOK_THREADS": "was renamed: set EXSYNC_WEBHOOK_CONNECTIONS instead",
        "EXSYNC_WEBHOOK_CONNECTIONS": "must be a positive whole number, not '0'",
    }


def test_the_yaml_file_is_validated_and_every_problem_reported(tmp_path):
    path = tmp_path / "exsync.yaml"
    path.write_text("bus:\n  max_attempts: 0\n  retry_delays_seconds: [5, -1]\n  colour: blue\nwebhook: {}\n")
    with pytest.raises(ConfigError) as raised:
        load_settings({"EXSYNC_CONFIG": str(path), "EXSYNC_WEBHOOK_WORKERS": "many"})
    paths = {where for where, _ in raised.value.problems}
    assert paths == {
        "EXSYNC_WEBHOOK_WORKERS",
        f"{path}:bus.colour",
        f"{path}:bus.max_attempts",
        f"{path}:bus.retry_delays_seconds[1]",
    }


def test_check_config_prints_each_problem_with_its_path_and_fails(tmp_path):
    path = tmp_path / "exsync.yaml"
    path.write_text("bus:\n  prefetch: zero\nwebhok: {}\n")
    result = subprocess.run([sys.executable, "-m", "exsync.cli", "check-config", "--path", str(path)],
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert f"{path}:bus.prefetch: Not a valid integer." in result.stdout
    assert f"{path}:webhok: Unknown field." in result.stdout


def test_check_config_accepts_a_valid_file(tmp_path):
    path = tmp_path / "exsync.yaml"
    path.write_text("bus:\n  prefetch: 20\n")
    result = subprocess.run([sys.executable, "-m", "exsync.cli", "check-config", "--path", str(path)],
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"{path}: ok"


def test_missing_endpoints_are_named():
    settings = load_settings({"EXSYNC_AMQP_URL": "amqp://broker/"})
    with pytest.raises(ConfigError) as raised:
        settings.require("EXSYNC_AMQP_URL", "EXSYNC_EXCHEQUER_DSN", "EXSYNC_STATE_DSN", "EXSYNC_WOO_URL")
    assert [where for where, _ in raised.value.problems] == ["EXSYNC_EXCHEQUER_DSN", "EXSYNC_STATE_DSN",
                                                             "EXSYNC_WOO_URL"]
    # The state database defaults to the company's.
    settings = load_settings({"EXSYNC_EXCHEQUER_DSN": "sqlite:///company.db"})
    assert settings.require("EXSYNC_STATE_DSN").state_dsn == "sqlite:///company.db"


@pytest.mark.parametrize("command, variable", [
    (["orders", "status"], "EXSYNC_STATE_DSN"),
    (["capture", "--once"], "EXSYNC_AMQP_URL"),
    (["consume", "woo-writer"], "EXSYNC_STATE_DSN"),
])
def test_a_command_without_its_database_or_broker_is_a_clear_error(tmp_path, command, variable):
    """An empty environment used to mean the demo's SQLite file and a local broker: now it is an error."""
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if command[0] == "consume":
        environment["EXSYNC_AMQP_URL"] = "amqp://guest:guest@127.0.0.1:1/"
    result = subprocess.run([sys.executable, "-m", "exsync.cli", *command], cwd=tmp_path, env=environment,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"{variable}: is not set" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no ./var/demo/exchequer.db made on the way
