"""The Makefile's data/mpd.db rule: md5sums checked first, nothing built on a bad archive."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

MAKEFILE = Path(__file__).parents[2] / "Makefile"
TRECS = f"{sys.executable} -c 'from trecs.cli import main; main()'"


def make(cwd: Path, target: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-f", str(MAKEFILE), target, f"TRECS={TRECS}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def test_missing_archive_says_where_it_goes(tmp_path):
    result = make(tmp_path, "data/mpd.db")
    assert result.returncode != 0
    assert "data/spotify_million_playlist_dataset.zip is missing" in result.stderr
    assert "AIcrowd no longer serves it" in result.stderr


def test_builds_from_the_zip_after_checking_md5s(tmp_path, mpd_dir):
    (tmp_path / "data").mkdir()
    shutil.copy(
        mpd_dir.with_name("mpd.zip"), tmp_path / "data/spotify_million_playlist_dataset.zip"
    )
    result = make(tmp_path, "data/mpd.db")
    assert result.returncode == 0, result.stderr
    assert "3 slices match their md5sums" in result.stdout
    assert (tmp_path / "data/mpd.db").is_file()


def test_wrong_md5_builds_nothing(tmp_path, mpd_dir):
    (tmp_path / "data").mkdir()
    target = tmp_path / "data/spotify_million_playlist_dataset.zip"
    with (
        zipfile.ZipFile(mpd_dir.with_name("mpd.zip")) as source,
        zipfile.ZipFile(target, "w") as copy,
    ):
        for name in source.namelist():
            data = source.read(name)
            copy.writestr(name, data + b"\n" if name.endswith("2000-2499.json") else data)
    result = make(tmp_path, "data/mpd.db")
    assert result.returncode != 0
    assert "mpd.slice.2000-2499.json: md5 mismatch" in result.stderr
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [target.name]
