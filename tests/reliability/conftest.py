"""The scenarios' logs are kept under var/reliability/<test>/ (emptied when the test starts again), so a
failure can be read after pytest's own temporary directories have been rotated away."""

import os
import pathlib
import shutil

import pytest

LOG_ROOT = pathlib.Path(__file__).resolve().parents[2] / "var" / "reliability"


@pytest.fixture
def run_dir(request):
    directory = LOG_ROOT / request.node.name.replace("/", "_")
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    return directory
