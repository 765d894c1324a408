"""The reconciler's watermark store."""

import pytest

from exsync.woo import JsonFileStore, StateStoreError


def test_values_survive_a_new_store_on_the_same_directory(tmp_path):
    directory = str(tmp_path / "state")
    first = JsonFileStore(directory=directory)
    assert first.get("woo.reconciler.orders:http://shop") is None
    first.set("woo.reconciler.orders:http://shop", "2026-11-27T10:00:00+00:00")
    first.set("woo.reconciler.customers:http://shop", "2026-11-27T09:00:00+00:00")
    second = JsonFileStore(directory=directory)
    assert second.get("woo.reconciler.orders:http://shop") == "2026-11-27T10:00:00+00:00"
    assert second.get("woo.reconciler.customers:http://shop") == "2026-11-27T09:00:00+00:00"
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["woo-state.json"]


def test_a_damaged_file_is_reported_not_ignored(tmp_path):
    (tmp_path / "woo-state.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(StateStoreError):
        JsonFileStore(directory=str(tmp_path)).get("anything")
