"""Atomic replacement: the target changes whole or not at all, and nothing is left behind."""

from __future__ import annotations

import pytest

from pressedplay.atomic import replacing, temporary_beside


def test_the_target_is_replaced_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "model.pt"
    target.write_text("old")
    with pytest.raises(RuntimeError), replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary left
    with replacing(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".model.pt.")
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_temporary_names_are_unique_per_call(tmp_path):
    names = {temporary_beside(tmp_path / "x.db", ".part").name for _ in range(50)}
    assert len(names) == 50 and all(n.endswith(".part") for n in names)
