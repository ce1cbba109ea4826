"""DatasetWriter and info on real sqlite files: dedupe, skips, split, stats, resume, atomicity."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pressedplay.dataset import SPLITS, DatasetWriter, TrackFeatures, info, partial_path, split_of
from pressedplay.errors import UserError
from pressedplay.features import NAMES


def jpeg(seed: int, size: int = 24) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


def track(i: int) -> TrackFeatures:
    rng = np.random.default_rng(1000 + i)
    features = tuple(float(v) for v in rng.random(8))
    return TrackFeatures(f"t{i}", f"song {i}", f"artist {i % 7}", features)


def tracks_of(cover: int) -> list[TrackFeatures]:
    return [track(cover * 3 + j) for j in range(3)] + [track(0)]  # t0 is on every cover


def build(out: Path, covers: int, *, seed: int = 0, source: str = "test") -> dict:
    with DatasetWriter(out, source=source, seed=seed) as writer:
        for i in range(covers):
            assert writer.add_cover(jpeg(i), f"test:{i}", tracks_of(i), key=f"k{i}")
        return writer.finish()


def rows(db: Path, query: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def test_build_counts_splits_and_feature_stats(tmp_path):
    out = tmp_path / "covers.db"
    report = build(out, 60)
    assert not partial_path(out).exists() and not Path(f"{out}-wal").exists()
    assert (report["covers"], report["tracks"], report["pairs"]) == (
        60,
        180,
        239,
    )  # cover 0 lists t0 twice
    assert report["skipped"] == {} and report["source"] == "test"
    assert sum(s["covers"] for s in report["splits"].values()) == 60
    assert sum(s["pairs"] for s in report["splits"].values()) == 239
    assert report["splits"]["train"]["covers"] > report["splits"]["test"]["covers"]
    assert info(out) == report
    # Stats are over the train split's pairs: t0 counts once per train cover.
    train = rows(
        out,
        f"SELECT {', '.join(NAMES)} FROM pairs JOIN covers ON covers.id = cover_id"
        " JOIN tracks ON tracks.id = track_id WHERE split = 'train'",
    )
    values = np.array(train)
    assert len(values) == report["splits"]["train"]["pairs"]
    for k, name in enumerate(NAMES):
        stats = report["feature_stats"][name]
        assert stats["mean"] == pytest.approx(values[:, k].mean())
        assert stats["std"] == pytest.approx(values[:, k].std())
    (width, height, stored), *_ = rows(out, "SELECT width, height, image FROM covers WHERE id = 1")
    assert (width, height) == (24, 24) and stored == jpeg(0)


def test_split_is_by_cover_seeded_and_near_80_10_10(tmp_path):
    out = tmp_path / "covers.db"
    with DatasetWriter(out, source="test", seed=7) as writer:
        for i in range(1000):
            writer.add_cover(jpeg(i, 8), f"test:{i}", tracks_of(i))
        # The same image again, under another origin and with other tracks: one cover.
        writer.add_cover(jpeg(5, 8), "elsewhere", [track(9999)])
        report = writer.finish()
    assert report["covers"] == 1000
    fractions = [report["splits"][s]["covers"] / 1000 for s in SPLITS]
    assert 0.75 < fractions[0] < 0.85 and 0.06 < fractions[1] < 0.14 and 0.06 < fractions[2] < 0.14
    splits_per_track = rows(
        out,
        "SELECT cover_id, COUNT(DISTINCT split) FROM pairs JOIN covers ON covers.id = cover_id"
        " GROUP BY cover_id",
    )
    assert {n for _, n in splits_per_track} == {1}
    merged = rows(
        out, "SELECT origin, COUNT(*) FROM covers JOIN pairs ON cover_id = id GROUP BY id"
    )
    assert ("test:5", 5) in merged  # four tracks of its own plus t9999
    by_sha = dict(rows(out, "SELECT sha256, split FROM covers"))
    assert all(split_of(sha, 7) == split for sha, split in by_sha.items())
    assert sum(split_of(sha, 8) != split for sha, split in by_sha.items()) > 100


def test_bad_inputs_are_counted_not_fatal(tmp_path):
    out = tmp_path / "covers.db"
    nan_track = TrackFeatures("nan", None, None, (float("nan"),) * 8)
    short_track = TrackFeatures("short", None, None, (0.5,) * 7)
    with DatasetWriter(out, source="test") as writer:
        assert writer.add_cover(jpeg(1), "good", [track(1)], key="a")
        assert not writer.add_cover(jpeg(2)[:200], "truncated", [track(2)], key="b")
        assert not writer.add_cover(b"", "empty", [track(3)], key="c")
        assert not writer.add_cover(b"<html></html>", "html.jpg", [track(4)], key="d")
        assert not writer.add_cover(jpeg(5), "lonely", [], key="e")
        assert not writer.add_cover(jpeg(6), "unusable", [nan_track, short_track], key="f")
        assert writer.add_cover(jpeg(7), "mixed", [track(7), nan_track], key="g")
        assert writer.add_cover(jpeg(9), "some", [track(9), TrackFeatures("x", None, None, ())])
        writer.skip("playlist not found", 2)
        writer.skip("track without features", 3, key="once")
        writer.skip("track without features", 3, key="once")  # counted once per build
        assert all(writer.is_done(k) for k in "abcdefg") and not writer.is_done("h")
        assert not writer.add_cover(jpeg(8), "again", [track(8)], key="a")  # done already
        assert writer.add_cover(jpeg(10), "local", [track(10)], key="i", skipped={"local file": 2})
        # A done key adds nothing again, its skip counts included (a resumed collection).
        assert not writer.add_cover(
            jpeg(10), "local", [track(10)], key="i", skipped={"local file": 2}
        )
        report = writer.finish()
    assert report["covers"] == 4 and report["pairs"] == 4
    assert report["skipped"] == {
        "local file": 2,
        "corrupt image": 1,
        "cover without tracks with features": 2,
        "empty file": 1,
        "not an image": 1,
        "playlist not found": 2,
        "track with invalid features": 3,
        "track without features": 4,
    }


def test_out_is_only_written_at_finish_and_never_overwritten_without_force(tmp_path):
    out = tmp_path / "sub" / "covers.db"
    with DatasetWriter(out, source="test") as writer:
        writer.add_cover(jpeg(1), "a", [track(1)])
        assert partial_path(out).exists() and not out.exists()
        writer.finish()
    before = out.read_bytes()
    with pytest.raises(UserError, match="already exists; pass --force"):
        DatasetWriter(out, source="test")
    assert out.read_bytes() == before and not partial_path(out).exists()
    with DatasetWriter(out, source="other", force=True) as writer:
        writer.add_cover(jpeg(2), "b", [track(2), track(3)])
        assert writer.finish()["pairs"] == 2
    with pytest.raises(UserError, match="is a folder"):
        DatasetWriter(tmp_path, source="test")


def test_nothing_usable_leaves_no_file(tmp_path):
    out = tmp_path / "covers.db"
    with DatasetWriter(out, source="test") as writer:
        writer.add_cover(b"GIF89a broken", "x.gif", [track(1)])
        with pytest.raises(UserError, match=r"no usable cover.*not an image: 1"):
            writer.finish()
    assert list(tmp_path.iterdir()) == []


def test_failure_before_any_cover_removes_the_partial(tmp_path):
    out = tmp_path / "covers.db"
    with pytest.raises(RuntimeError), DatasetWriter(out, source="test"):
        raise RuntimeError("network down before the first cover")
    assert list(tmp_path.iterdir()) == []


def test_partial_of_another_source_is_refused_unless_forced(tmp_path):
    out = tmp_path / "covers.db"
    with DatasetWriter(out, source="spotify:playlists a b") as writer:
        writer.add_cover(jpeg(1), "a", [track(1)], key="a")
    with pytest.raises(UserError, match="holds a build of spotify:playlists a b"):
        DatasetWriter(out, source="folder:/x")
    partial_path(out).write_bytes(b"not sqlite at all")
    with pytest.raises(UserError, match="not a partial build"):
        DatasetWriter(out, source="folder:/x")
    with DatasetWriter(out, source="folder:/x", force=True) as writer:
        assert not writer.resumed and not writer.is_done("a")
        writer.add_cover(jpeg(2), "b", [track(2)])
        assert writer.finish()["covers"] == 1


WRITER_SCRIPT = """
import io, sys, time
import numpy as np
from pathlib import Path
from PIL import Image
from pressedplay.dataset import DatasetWriter, TrackFeatures

def jpeg(seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()

with DatasetWriter(Path(sys.argv[1]), source="test", seed=3, commit_every=int(sys.argv[2])) as writer:
    for i in range(40):
        tracks = [TrackFeatures(f"t{i}", None, None, (i / 40,) * 8), TrackFeatures("all", None, None, (0.5,) * 8)]
        writer.add_cover(jpeg(i), f"test:{i}", tracks, key=f"k{i}")
        print(i, flush=True)
        time.sleep(0.02 if i < 10 else 60)
"""


@pytest.mark.parametrize("commit_every", [1, 4])
def test_killed_build_resumes_without_duplicates(tmp_path, commit_every):
    out = tmp_path / "covers.db"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER_SCRIPT), str(out), str(commit_every)],
        stdout=subprocess.PIPE,
        text=True,
    )
    for _ in range(11):  # covers 0..10 are added when "10" is printed
        child.stdout.readline()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert partial_path(out).exists() and not out.exists()
    with DatasetWriter(out, source="test", seed=3) as writer:
        assert writer.resumed
        # Committed: every cover one at a time, else whole batches (0..7 of 0..10).
        kept = 11 if commit_every == 1 else 8
        assert [writer.is_done(f"k{i}") for i in range(12)] == [i < kept for i in range(12)]
        added = 0
        for i in range(40):
            tracks = [
                TrackFeatures(f"t{i}", None, None, (i / 40,) * 8),
                TrackFeatures("all", None, None, (0.5,) * 8),
            ]
            pixels = np.random.default_rng(i).integers(0, 256, (24, 24, 3), dtype=np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, "JPEG")
            added += writer.add_cover(buffer.getvalue(), f"test:{i}", tracks, key=f"k{i}")
        report = writer.finish()
    assert added == 40 - kept
    assert (report["covers"], report["tracks"], report["pairs"]) == (40, 41, 80)
    assert rows(out, "SELECT COUNT(*) FROM done") == [(40,)]


def test_info_refuses_what_is_not_a_dataset(tmp_path):
    with pytest.raises(UserError, match="no such dataset"):
        info(tmp_path / "missing.db")
    (tmp_path / "text.db").write_text("hello")
    with pytest.raises(UserError, match="not a sqlite database"):
        info(tmp_path / "text.db")
    conn = sqlite3.connect(tmp_path / "other.db")
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(UserError, match="not a pressedplay cover dataset"):
        info(tmp_path / "other.db")


def test_constant_feature_gets_unit_std_and_tiny_builds_use_all_pairs(tmp_path):
    out = tmp_path / "covers.db"
    image = jpeg(1)
    sha = hashlib.sha256(image).hexdigest()
    seed = next(s for s in range(100) if split_of(sha, s) != "train")  # its one cover not in train
    with DatasetWriter(out, source="test", seed=seed) as writer:
        writer.add_cover(image, "a", [TrackFeatures("x", None, None, (0.25,) * 8)])
        report = writer.finish()
    assert report["splits"]["train"]["covers"] == 0
    assert report["feature_stats"]["valence"] == {"mean": 0.25, "std": 1.0}
    assert rows(out, "SELECT value FROM meta WHERE key = 'feature_stats_over'") == [("all",)]


def test_resuming_with_another_seed_resplits_every_cover(tmp_path):
    out = tmp_path / "covers.db"
    with DatasetWriter(out, source="test", seed=1) as writer:
        for i in range(50):
            writer.add_cover(jpeg(i, 8), f"test:{i}", [track(i)], key=f"k{i}")
    with DatasetWriter(out, source="test", seed=2) as writer:
        assert writer.resumed
        for i in range(50, 80):
            writer.add_cover(jpeg(i, 8), f"test:{i}", [track(i)], key=f"k{i}")
        report = writer.finish()
    assert report["seed"] == 2 and report["covers"] == 80
    assert all(
        split_of(sha, 2) == split for sha, split in rows(out, "SELECT sha256, split FROM covers")
    )
