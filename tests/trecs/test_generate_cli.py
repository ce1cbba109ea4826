"""Seeds typed by a user, and `trecs generate` end to end on a small trained run."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from trecs.build_db import build_database
from trecs.checkpoints import load_run
from trecs.config import NUM_SPECIAL, ModelConfig, TrainConfig
from trecs.errors import UserError
from trecs.seeds import resolve
from trecs.train import train


@pytest.fixture(scope="module")
def run(mpd_dir, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("generate")
    db = root / "mpd.db"
    build_database(db, [mpd_dir], workers=1)
    tiny = ModelConfig(num_layers=1, num_heads=2, features=16, hidden=32, context=10)
    train(root / "run", TrainConfig(db=db, model=tiny, batch_size=8, num_steps=10, data_workers=0))
    return root / "run", db


def a_track(db: Path) -> tuple[int, str, str, str]:
    """The first track whose full name is unique: (id, uri, name, artist)."""
    conn = sqlite3.connect(db)
    return conn.execute(
        "SELECT t.id, t.uri, t.name, a.name FROM tracks t JOIN artists a ON a.id = t.artist_id "
        "WHERE t.name IN (SELECT name FROM tracks GROUP BY name HAVING COUNT(*) = 1) "
        "ORDER BY t.id LIMIT 1"
    ).fetchone()


def test_seeds_resolve_from_uris_links_and_words(run):
    _, db = run
    track_id, uri, name, artist = a_track(db)
    link = "https://open.spotify.com/track/" + uri.split(":")[-1] + "?si=abc"
    seeds = resolve(db, [uri, link, f"{name} {artist}", name])
    assert [s.track_id for s in seeds] == [track_id] * 4
    assert seeds[0].label == f"{name} - {artist}"
    unknown = resolve(db, ["spotify:track:0UaMYEvWZi0ZqiDOoHU3YI"])[0]
    assert unknown.track_id is None
    with pytest.raises(UserError, match="no track or artist matches"):
        resolve(db, ["zzzz qqqq"])
    word = name.split()[0]
    with pytest.raises(UserError, match=r"ambiguous: .*spotify:track:"):
        resolve(db, [word[:2]])


def test_generate_formats(cli, run):
    run_dir, db = run
    _, uri, _, _ = a_track(db)
    result = cli(
        "generate", run_dir, "--track", uri, "--length", 7, "--format", "json", "--seed", 3
    )
    assert result.code == 0, result.err
    tracks = json.loads(result.out)["tracks"]
    assert [t["position"] for t in tracks] == list(range(1, 8))
    assert uri not in {t["uri"] for t in tracks}
    assert len({t["uri"] for t in tracks}) == 7
    assert all(t["link"].startswith("https://open.spotify.com/track/") for t in tracks)
    again = cli("generate", run_dir, "--track", uri, "--length", 7, "--format", "json", "--seed", 3)
    assert json.loads(again.out)["tracks"] == tracks
    playlist = cli("generate", run_dir, "--length", 3, "--format", "m3u", "--greedy").out
    lines = playlist.splitlines()
    assert lines[0] == "#EXTM3U" and len(lines) == 7
    assert lines[1].startswith("#EXTINF:") and lines[2].startswith("spotify:track:")
    table = cli("generate", run_dir, "--length", 2)
    assert table.code == 0 and "continuation" in table.out
    unknown = cli(
        "generate", run_dir, "--track", "spotify:track:0UaMYEvWZi0ZqiDOoHU3YI", "--length", 2
    )
    assert unknown.code == 0 and "notice:" in unknown.err and "<unk>" in unknown.err


def test_generate_reads_a_title(cli, run):
    run_dir, _ = run
    picks = {}
    for title in ("Workout", "workout!!"):
        result = cli(
            "generate", run_dir, "--title", title, "--length", 5, "--greedy", "--format", "json"
        )
        assert result.code == 0, result.err
        assert not result.err.strip()  # the run reads titles: no notice
        picks[title] = [t["uri"] for t in result.json()["tracks"]]
    assert picks["Workout"] == picks["workout!!"]  # one normal form


def test_length_and_top_k_are_bounded(cli, run):
    """A length past the cap is one error line; past the vocabulary it stops at the
    vocabulary, and a top k past it samples among all tracks, each with a notice."""
    run_dir, _ = run
    cli("generate", run_dir, "--length", 1_000_000_000).assert_error("--length")
    tracks = len(load_run(run_dir).vocab) - NUM_SPECIAL
    result = cli("generate", run_dir, "--length", 10_000, "--top-k", 10**12, "--format", "json")
    assert result.code == 0, result.err
    assert len({t["uri"] for t in result.json()["tracks"]}) == tracks
    assert f"only {tracks:,} tracks can be added" in result.err
    assert f"sampling among all {tracks:,} tracks" in result.err


def test_the_cli_keeps_compiled_programs_between_runs(run, tmp_path):
    """`trecs` keeps JAX's compiled programs in the user's cache folder (all of them,
    by default); a second run reads them and answers the same. With
    JAX_ENABLE_COMPILATION_CACHE=false nothing is kept; nor where the folder cannot be
    made, silently."""
    run_dir, db = run
    _, uri, _, _ = a_track(db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env |= {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    command = [sys.executable, "-c", "from trecs.cli import main; main()", "generate"]
    command += [str(run_dir), "--track", uri, "--length", "5", "--format", "json"]

    def generate(**extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=env | extra, check=True, capture_output=True, text=True)

    kept = tmp_path / "cache" / "trecs" / "jax"
    first = generate().stdout
    entries = sorted(p.name for p in kept.iterdir())
    assert entries
    assert generate().stdout == first
    assert sorted(p.name for p in kept.iterdir()) == entries  # read, not compiled again
    env["XDG_CACHE_HOME"] = str(tmp_path / "other")
    assert generate(JAX_ENABLE_COMPILATION_CACHE="false").stdout == first
    assert not any((tmp_path / "other" / "trecs" / "jax").iterdir())
    (tmp_path / "file").touch()  # a cache folder that cannot be made: no cache, no warning
    env["XDG_CACHE_HOME"] = str(tmp_path / "file" / "cache")
    done = generate()
    assert done.stdout == first and "Warning" not in done.stderr
