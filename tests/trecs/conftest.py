"""Fixtures for trecs: synthetic MPD data written once per session, and a CLI runner."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from trecs.build_db import build_database
from trecs.cli import run
from trecs.synth import synth_mpd

FIXTURES = Path(__file__).parent / "fixtures"


def _load_tiny_runs() -> None:
    """tests/trecs/tiny_runs.py as module `tiny_runs`, importable by test files."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        "tiny_runs", Path(__file__).with_name("tiny_runs.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["tiny_runs"] = module
    spec.loader.exec_module(module)


_load_tiny_runs()


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)

    def assert_error(self, *fragments: str) -> None:
        """Bad input: exit 2, exactly one line `error: ...` on stderr, no traceback."""
        assert self.code == 2, (self.out, self.err)
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("error: ")
        for fragment in fragments:
            assert fragment in lines[0], lines[0]


@pytest.fixture
def cli(capsys) -> Callable[..., Result]:
    """Run `trecs ARGS...` in-process and capture its exit code and output."""

    def invoke(*args: object) -> Result:
        capsys.readouterr()
        code = run([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


@pytest.fixture(scope="session")
def mpd_dir(tmp_path_factory) -> Path:
    """2,500 synthetic playlists in three slices (1,000 + 1,000 + 500), with md5sums and zip."""
    out = tmp_path_factory.mktemp("synth") / "mpd"
    synth_mpd(out, playlists=2500, tracks=3000, seed=7, make_zip=True)
    return out


@pytest.fixture(scope="session")
def db(mpd_dir, tmp_path_factory) -> Path:
    """Those playlists built into one database (default split seed, one worker, in
    process), shared by every test module that only reads it."""
    path = tmp_path_factory.mktemp("mpd-db") / "mpd.db"
    build_database(path, [mpd_dir], workers=1)
    return path


@pytest.fixture(scope="session")
def mpd_json(mpd_dir) -> dict[int, dict]:
    """Every synthetic playlist by pid, read back with the standard library."""
    playlists = {}
    for path in sorted((mpd_dir / "data").glob("*.json")):
        for playlist in json.loads(path.read_text())["playlists"]:
            playlists[playlist["pid"]] = playlist
    return playlists
