"""Damaged and foreign runs: every load falls back to the newest checkpoint that restores,
says so, and a run nothing restores from is one error line with every file unchanged."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from tiny_runs import leaves, tiny

from trecs import checkpoints as checkpoints_module
from trecs.checkpoints import load_run
from trecs.errors import UserError
from trecs.train import train


@pytest.fixture(scope="module")
def trained(db, tmp_path_factory) -> Path:
    """A finished run with checkpoints 10 and 20; tests damage copies of it."""
    run = tmp_path_factory.mktemp("trained") / "run"
    train(run, tiny(db))
    return run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def damage(checkpoint: Path) -> None:
    """Truncate every file of a checkpoint's state to half its size, as a full disk or
    an interrupted copy leaves it."""
    for path in (checkpoint / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garble(checkpoint: Path) -> None:
    """Flip bits in the largest array file of a checkpoint, keeping its size."""
    path = max((checkpoint / "state").rglob("d/*"), key=lambda p: p.stat().st_size)
    data = bytearray(path.read_bytes())
    data[::7] = bytes(b ^ 0x5A for b in data[::7])
    path.write_bytes(bytes(data))


def hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("spoil", [damage, garble])
def test_a_damaged_newest_checkpoint_loads_the_one_before(run, spoil):
    spoil(run / "checkpoints/20")
    notices: list[str] = []
    assert load_run(run, notices.append).step == 10
    assert len(notices) == 1 and "checkpoint 20" in notices[0] and "step 10" in notices[0]
    assert "\n" not in notices[0]


def test_no_checkpoint_that_restores_is_a_user_error(run):
    damage(run / "checkpoints/10")
    damage(run / "checkpoints/20")
    with pytest.raises(UserError, match="no checkpoint restores"):
        load_run(run)


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_generate_and_evaluate_fall_back_with_a_notice(cli, run, db):
    garble(run / "checkpoints/20")
    before = hashes(run)
    result = cli("generate", run, "--length", 3, "--format", "json")
    assert result.code == 0, result.err
    assert len(result.json()["tracks"]) == 3
    assert "notice:" in result.err and "using step 10" in result.err
    evaluated = cli("evaluate", run, "--db", db, "--num-playlists", 10, "--n", 10, "--json")
    assert evaluated.code == 0, evaluated.err
    assert "using step 10" in evaluated.err
    assert hashes(run) == before  # loading for inference changes nothing


def test_a_resume_nothing_restores_from_changes_nothing(cli, run):
    damage(run / "checkpoints/10")
    damage(run / "checkpoints/20")
    before = hashes(run)
    cli("train", run, "--resume", "--num-steps", 30).assert_error("no checkpoint restores")
    assert hashes(run) == before
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["checkpoints", "config.json", "metrics.jsonl", "tensorboard", "vocab.npz"]
    )


def test_a_resume_falls_back_and_continues_exactly(db, tmp_path):
    """Newest checkpoint damaged: the resume starts from the one before, sets the damaged
    one aside, and ends where an uninterrupted run ends."""
    train(tmp_path / "straight", tiny(db))
    run = tmp_path / "resumed"
    train(run, tiny(db))
    damage(run / "checkpoints/20")
    notices: list[str] = []
    train(run, tiny(db), resume=True, on_notice=notices.append)
    assert len(notices) == 2 and "using step 10" in notices[0]
    assert "damaged checkpoint 20 moved to" in notices[1]
    for a, b in zip(leaves(tmp_path / "straight", 20), leaves(run, 20), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [p.name.split(".")[0] for p in (run / "damaged-checkpoints").iterdir()] == ["20"]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10, 15, 20]


def truncate_config(run: Path) -> None:
    path = run / "config.json"
    path.write_bytes(path.read_bytes()[:100])


def mistype_config(run: Path) -> None:
    config = json.loads((run / "config.json").read_text())
    config["model"]["num_layers"] = "two"
    (run / "config.json").write_text(json.dumps(config))


def impossible_config(run: Path) -> None:
    config = json.loads((run / "config.json").read_text())
    config["model"]["num_heads"] = 3  # 16 features do not split into 3 heads
    (run / "config.json").write_text(json.dumps(config))


def list_config(run: Path) -> None:
    (run / "config.json").write_text("[1, 2, 3]")


def truncate_vocab(run: Path) -> None:
    path = run / "vocab.npz"
    path.write_bytes(path.read_bytes()[:1000])


def foreign_vocab(run: Path) -> None:
    np.savez(run / "vocab.npz", track_ids=np.array([[1.5]]), counts=np.array(["x"]))


def not_a_run(run: Path) -> None:
    for path in ("config.json", "vocab.npz"):
        (run / path).unlink()


BROKEN = [
    truncate_config,
    mistype_config,
    impossible_config,
    list_config,
    truncate_vocab,
    foreign_vocab,
    not_a_run,
]


@pytest.mark.parametrize("spoil", BROKEN)
def test_a_damaged_or_foreign_run_is_one_error_line(cli, run, db, spoil):
    spoil(run)
    before = hashes(run)
    cli("generate", run, "--length", 3).assert_error(str(run))
    cli("evaluate", run, "--db", db, "--num-playlists", 10, "--n", 10).assert_error(str(run))
    cli("train", run, "--resume", "--db", db).assert_error(str(run))
    assert hashes(run) == before


def test_only_orbax_abandoned_shard_reads_are_silenced(monkeypatch):
    """After a checkpoint fails to restore, Orbax's abandoned shard reads report nothing
    when collected; any other coroutine's failure still reaches the hook."""
    # Earlier tests' real abandoned reads (one per chunk of a damaged checkpoint) are
    # collected first, by the hook they met, not by this test's.
    gc.collect()
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.object.__name__))

    class Pending:  # an await that never completes, as a read of a shard in flight
        def __await__(self):
            yield

    def abandoned(name: str) -> None:
        async def read() -> None:
            try:
                await Pending()
            except GeneratorExit:
                raise RuntimeError("Event loop is closed") from None

        read.__name__ = read.__qualname__ = name
        coroutine = read()
        coroutine.send(None)  # now waiting; collecting it throws GeneratorExit in
        del coroutine
        gc.collect()

    abandoned("_read_array_index_and_device_put")
    assert reported == ["_read_array_index_and_device_put"]  # as before any damage
    checkpoints_module._drop_abandoned_reads()
    checkpoints_module._drop_abandoned_reads()  # installed once however many failures
    abandoned("_read_array_index_and_device_put")
    abandoned("someone_elses")
    assert reported == ["_read_array_index_and_device_put", "someone_elses"]


def test_only_orbax_shard_reads_never_started_are_not_warned_of(monkeypatch):
    """A shard read abandoned before it started is collected with a "never awaited"
    RuntimeWarning (seen in a full test run): silenced for Orbax's reads only."""
    gc.collect()
    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)

    def never_started(name: str) -> None:
        async def read() -> None:
            pass

        read.__name__ = read.__qualname__ = name
        coroutine = read()
        del coroutine
        gc.collect()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        never_started("_read_array_index_and_device_put")
        checkpoints_module._drop_abandoned_reads()
        never_started("_read_array_index_and_device_put")
        never_started("someone_elses")
    assert [str(w.message) for w in caught] == [
        "coroutine '_read_array_index_and_device_put' was never awaited",  # before
        "coroutine 'someone_elses' was never awaited",
    ]


def test_only_callbacks_finding_orbax_loop_closed_are_silenced(monkeypatch):
    """TensorStore's callbacks of abandoned reads find Orbax's event loop closed; that
    report is dropped, the same error raised anywhere else is not."""
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(str(u.exc_value)))
    checkpoints_module._drop_abandoned_reads()
    loop = asyncio.new_event_loop()
    loop.close()

    class Reporting:  # raises in __del__, which Python reports as unraisable
        def __init__(self, call) -> None:
            self.call = call

        def __del__(self) -> None:
            self.call()

    def closed_elsewhere() -> None:
        raise RuntimeError("Event loop is closed")

    Reporting(lambda: loop.call_soon_threadsafe(print))
    Reporting(closed_elsewhere)
    assert reported == ["Event loop is closed"]  # the second one only


def test_inference_reads_the_weights_and_leaves_the_optimizer_on_disk(trained, monkeypatch):
    """`load_run` asks Orbax for the parameters and the table only: the table's AdamW
    moments are each as large as the table (2.3 GB together at the MPD's size, which
    took `trecs generate` to 7.2 GB). Its table and bias equal a full restore's."""
    import jax
    import orbax.checkpoint as ocp

    asked = []
    restore = ocp.CheckpointManager.restore

    def spy(self, step, args=None, **kwargs):
        asked.append(args.state.item)
        return restore(self, step, args=args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "restore", spy)
    loaded = load_run(trained)
    item = asked[-1]
    skipped = jax.tree.leaves((item.opt_state, item.table.mu, item.table.nu))
    assert skipped and all(leaf is ocp.PLACEHOLDER for leaf in skipped)
    kept = jax.tree.leaves((item.params, item.table.table))
    assert kept and ocp.PLACEHOLDER not in kept

    monkeypatch.undo()
    with ocp.CheckpointManager((trained / "checkpoints").resolve()) as manager:
        full = manager.restore(20, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    table = np.asarray(full.state["table"]["table"])
    features = loaded.model.config.features
    np.testing.assert_array_equal(loaded.table, table[:, :features])
    if loaded.bias is not None:
        np.testing.assert_array_equal(loaded.bias, table[:, features])
    assert np.asarray(full.state["table"]["mu"]).any()  # there was something to leave


def test_arrays_are_saved_in_chunks_that_restore_exactly(db, tmp_path, monkeypatch):
    """Checkpoints store each array in chunks of at most CHUNK_BYTES (tensorstore then
    compresses and reads them in parallel; one 1.2 GB chunk of the MPD's table loaded
    on one thread): a run saved in many small chunks resumes as an uninterrupted run in
    one chunk each ends, and loads the same weights."""
    monkeypatch.setattr(checkpoints_module, "CHUNK_BYTES", 4096)
    train(tmp_path / "chunked", tiny(db))
    shutil.rmtree(tmp_path / "chunked/checkpoints/20")
    train(tmp_path / "chunked", tiny(db), resume=True)  # from step 10's chunks
    metadata = json.loads(
        (tmp_path / "chunked/checkpoints/20/state/array_metadatas/process_0").read_text()
    )
    chunks = {
        m["array_metadata"]["param_name"]: m["array_metadata"] for m in metadata["array_metadatas"]
    }
    table = chunks["table.table"]
    assert table["chunk_shape"] != table["write_shape"]  # the table spans several chunks
    assert all(np.prod(m["chunk_shape"]) * 4 <= 4096 for m in chunks.values())

    monkeypatch.setattr(checkpoints_module, "CHUNK_BYTES", None)  # Orbax's default: one
    train(tmp_path / "whole", tiny(db))
    for a, b in zip(leaves(tmp_path / "whole", 20), leaves(tmp_path / "chunked", 20), strict=True):
        np.testing.assert_array_equal(a, b)
    chunked, whole = load_run(tmp_path / "chunked"), load_run(tmp_path / "whole")
    np.testing.assert_array_equal(chunked.table, whole.table)
