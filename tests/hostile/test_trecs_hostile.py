"""Hostile and careless input to the trecs CLI, each case generated here at test time.

Every case runs the real CLI in its own process with a 30-second limit (a FIFO or a
device must not hang it) and must end with exit 2, one `error:` line, no traceback, no
raw escape sequence, and every file that existed before byte-identical afterwards, with
no leftovers beside them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from trecs.build_db import build_database
from trecs.synth import synth_mpd

TRECS = [sys.executable, "-c", "from trecs.cli import main; main()"]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A small valid MPD folder and its database, shared read-only by the cases."""
    root = tmp_path_factory.mktemp("hostile-base")
    synth_mpd(root / "mpd", playlists=300, tracks=600, seed=3)
    build_database(root / "mpd.db", [root / "mpd"], workers=1)
    return root


def _slice(base: Path) -> dict:
    return json.loads((base / "mpd" / "data" / "mpd.slice.0-299.json").read_text())


def _write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def _edited_playlist(base: Path, tmp: Path, **fields) -> Path:
    data = _slice(base)
    data["playlists"][0].update(fields)
    return _write_json(tmp / "mpd.slice.0-299.json", data)


def _deep_slice(tmp: Path) -> Path:
    path = tmp / "mpd.slice.0-299.json"
    head = '{"info": {"generated_on": "x", "slice": "0-0", "version": "v1"}, "playlists": ['
    path.write_text(head + "[" * 100_000 + "]" * 100_000 + "]}")
    return path


def _cut_slice(base: Path, tmp: Path) -> Path:
    path = tmp / "mpd.slice.0-299.json"
    path.write_text(json.dumps(_slice(base))[:5000])
    return path


def _bad_utf8(base: Path, tmp: Path) -> Path:
    path = _edited_playlist(base, tmp, name="ZZZ")
    path.write_bytes(path.read_bytes().replace(b"ZZZ", b"Z\xffZ", 1))
    return path


def _fifo(tmp: Path, name: str) -> Path:
    path = tmp / name
    os.mkfifo(path)
    return path


def _zero(tmp: Path, name: str) -> Path:
    path = tmp / name
    path.symlink_to("/dev/zero")
    return path


def _forged_db(tmp: Path) -> Path:
    path = tmp / "forged.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('format_version', '1')")
    conn.commit()
    conn.close()
    return path


def _challenge(tmp: Path, playlists: str) -> Path:
    path = tmp / "challenge_set.json"
    path.write_text(
        '{"date": "x", "version": "v1", "name": "challenge_set", "playlists": ' + playlists + "}"
    )
    return path


# name -> (arguments built from (base, tmp), a fragment of the error line)
Case = Callable[[Path, Path], list]
CASES: dict[str, tuple[Case, str]] = {
    "slice nested 100,000 deep": (
        lambda b, t: ["build-db", t / "out.db", _deep_slice(t)],
        "nested too deeply",
    ),
    "0xFF byte in a name": (
        lambda b, t: ["build-db", t / "out.db", _bad_utf8(b, t)],
        "not UTF-8",
    ),
    "pid of 2^63": (
        lambda b, t: ["build-db", t / "out.db", _edited_playlist(b, t, pid=2**63)],
        "9223372036854775807",
    ),
    "modified_at of 2^64": (
        lambda b, t: ["build-db", t / "out.db", _edited_playlist(b, t, modified_at=2**64)],
        "modified_at",
    ),
    "slice linked to /dev/zero": (
        lambda b, t: ["build-db", t / "out.db", _zero(t, "mpd.slice.0-999.json")],
        "character device",
    ),
    "/dev/zero inside a slice folder": (
        lambda b, t: ["build-db", t / "out.db", _zero(t, "mpd.slice.0-999.json").parent],
        "character device",
    ),
    "FIFO as a slice": (
        lambda b, t: ["build-db", t / "out.db", _fifo(t, "mpd.slice.0-999.json")],
        "FIFO",
    ),
    "FIFO as the features CSV": (
        lambda b, t: ["build-db", t / "out.db", b / "mpd", "--features", _fifo(t, "f.csv")],
        "FIFO",
    ),
    "slice cut mid-JSON": (
        lambda b, t: ["build-db", t / "out.db", _cut_slice(b, t)],
        "JSON",
    ),
    "output is the input slice": (
        lambda b, t: [
            "build-db",
            _write_json(t / "mpd.slice.0-299.json", _slice(b)),
            t / "mpd.slice.0-299.json",
            "--force",
        ],
        "is or holds an input",
    ),
    "a database that is only a forged meta table": (
        lambda b, t: ["info", _forged_db(t)],
        "not a trecs database",
    ),
    "a database that is a FIFO": (
        lambda b, t: ["info", _fifo(t, "mpd.db")],
        "mpd.db",
    ),
    "FIFO as the challenge set": (
        lambda b, t: [
            "challenge", "recommend", "popularity", _fifo(t, "challenge_set.json"),
            "-o", t / "sub.csv", "--db", b / "mpd.db",
        ],
        "FIFO",
    ),
    "challenge set nested 100,000 deep": (
        lambda b, t: [
            "challenge", "recommend", "popularity", _challenge(t, "[" * 100_000 + "]" * 100_000),
            "-o", t / "sub.csv", "--db", b / "mpd.db",
        ],
        "nested too deeply",
    ),
    "a pid of 2^64 in the challenge set": (
        lambda b, t: [
            "challenge", "recommend", "popularity",
            _challenge(t, '[{"pid": 18446744073709551616, "num_samples": 0, "num_holdouts": 5, "tracks": []}]'),
            "-o", t / "sub.csv", "--db", b / "mpd.db",
        ],
        "64-bit",
    ),
    "escape sequences in a file name": (
        lambda b, t: ["build-db", t / "out.db", t / "x\x1b]0;pwned\x07\x1b[31m.json"],
        "\\x1b]0;pwned\\x07",
    ),
}  # fmt: skip


def _snapshot(folder: Path) -> dict[str, str]:
    """Every regular file under `folder` by relative path -> sha256 (FIFOs and links to
    devices are listed, never read)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file():
            out[str(path.relative_to(folder))] = "special"
        else:
            out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_is_one_error_line_and_changes_nothing(name, base, tmp_path):
    build, fragment = CASES[name]
    work = tmp_path / "work"
    work.mkdir()
    args = [str(a) for a in build(base, work)]
    before, base_before = _snapshot(work), _snapshot(base)
    result = subprocess.run(
        [*TRECS, *args], capture_output=True, text=True, timeout=30, check=False
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and "\x1b" not in result.stderr
    assert fragment in lines[0], lines[0]
    assert _snapshot(work) == before and _snapshot(base) == base_before
