"""`pressedplay build-db --source folder` and `pressedplay info`, run in-process."""

from __future__ import annotations

import csv
import io
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pressedplay.dataset import partial_path
from pressedplay.features import NAMES


@pytest.fixture
def folder(tmp_path) -> Path:
    """Twelve labelled covers (one corrupt), one unlabelled, one label without an image."""
    folder = tmp_path / "covers"
    folder.mkdir()
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", *NAMES])
        for i in range(12):
            pixels = np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, "PNG")
            (folder / f"{i}.png").write_bytes(buffer.getvalue())
            writer.writerow([f"{i}.png", *(f"{(i + k) % 10 / 10}" for k in range(8))])
        writer.writerow(["gone.png", *["0.5"] * 8])
    (folder / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (folder / "stray.jpg").write_bytes(b"whatever")
    return folder


def test_build_db_from_a_folder_then_info(cli, tmp_path, folder):
    out = tmp_path / "covers.db"
    result = cli("build-db", out, "--source", "folder", folder, "--labels", folder / "labels.csv",
                 "--json")  # fmt: skip
    assert result.code == 0, result.err
    assert result.err == ""  # no progress bar when stderr is not a terminal
    report = json.loads(result.out)
    assert (report["covers"], report["tracks"], report["pairs"]) == (11, 11, 11)
    assert report["skipped"] == {
        "corrupt image": 1,
        "image without labels": 1,
        "label without image": 1,
    }
    assert sum(split["covers"] for split in report["splits"].values()) == 11
    info = cli("info", out, "--json")
    assert info.code == 0 and json.loads(info.out) == report
    for key in ("covers", "tracks", "pairs", "skipped", "splits"):
        assert key in report
    table = cli("info", out).out
    assert "11 covers" in table and "skipped 1: corrupt image" in table and "valence" in table
    again = cli("build-db", out, "--source", "folder", folder, "--labels", folder / "labels.csv")
    assert again.code == 2
    assert again.err.strip() == f"error: {out} already exists; pass --force to replace it"
    forced = cli("build-db", out, "--source", "folder", folder, "--labels",
                 folder / "labels.csv", "--force", "--seed", "5")  # fmt: skip
    assert forced.code == 0 and "11 covers" in forced.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "say where the covers come from: --source folder or --source spotify"),
        (["--source", "folder", "--labels", "l.csv"], "--source folder needs DIR and --labels"),
        (["--source", "folder", "DIR"], "--source folder needs DIR and --labels LABELS.csv"),
        (["--source", "folder", "DIR", "--labels", "l.csv", "--playlist", "x"],
         "--playlist only go with --source spotify"),
        (["--source", "folder", "DIR", "--labels", "l.csv", "--user", "u", "--limit", "3"],
         "--user, --limit only go with --source spotify"),
        (["--source", "spotify"], "--source spotify needs --playlist, --user or --query"),
        (["--source", "spotify", "DIR", "--query", "x"], "DIR, --labels, --workers and --genre-column only go"),
        (["--source", "spotify", "--labels", "l.csv", "--user", "x"], "only go with --source folder"),
        (["--source", "zip", "DIR"], "--source zip: expected --source folder or --source spotify"),
        (["--source", "spotify", "--query", "x", "--limit", "0"], "Invalid value for '--limit'"),
        (["--source", "folder", "DIR", "--labels", "l.csv", "--materialize", "0"],
         "Invalid value for '--materialize'"),
    ],
)  # fmt: skip
def test_build_db_option_errors(cli, tmp_path, args, message):
    result = cli("build-db", tmp_path / "out.db", *args)
    assert result.code == 2
    assert result.err.startswith("error: ") and message in result.err
    assert len(result.err.strip().splitlines()) == 1  # one line, no traceback
    assert list(tmp_path.iterdir()) == []


def test_build_db_reports_bad_folder_inputs_as_one_line(cli, tmp_path, folder):
    out = tmp_path / "covers.db"
    missing = cli("build-db", out, "--source", "folder", tmp_path / "nowhere", "--labels",
                  folder / "labels.csv")  # fmt: skip
    assert (
        missing.code == 2
        and missing.err.strip() == f"error: {tmp_path / 'nowhere'} is not a folder"
    )
    (tmp_path / "bad.csv").write_text("image,track_id\n../../etc/passwd,x\n")
    escape = cli("build-db", out, "--source", "folder", folder, "--labels", tmp_path / "bad.csv")
    assert escape.code == 2 and "is not a path inside DIR" in escape.err
    assert not out.exists() and not partial_path(out).exists()


def test_info_errors(cli, tmp_path):
    missing = cli("info", tmp_path / "none.db")
    assert missing.code == 2 and "no such dataset" in missing.err
    (tmp_path / "junk.db").write_bytes(b"\x00" * 64)
    junk = cli("info", tmp_path / "junk.db", "--json")
    assert junk.code == 2 and junk.out == "" and "not a sqlite database" in junk.err


# Ctrl-C raises KeyboardInterrupt, as in a terminal: a shell's background job (`.ci/run &`)
# starts with SIGINT ignored, and a Python child would inherit that and never see it.
INTERRUPTIBLE = (
    "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from pressedplay.cli import main; main()"
)


def test_interrupted_cli_build_resumes(tmp_path):
    """A real `pressedplay build-db` process stopped with Ctrl-C, then run again."""
    folder = tmp_path / "covers"
    folder.mkdir()
    rows = []
    for i in range(400):
        pixels = np.random.default_rng(i).integers(0, 256, (96, 96, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.jpg", quality=95)
        rows.append([f"{i:03d}.jpg", *["0.5"] * 7, str(i / 400)])
    with open(folder / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["image", *NAMES], *rows])
    out = tmp_path / "covers.db"
    args = [sys.executable, "-c", INTERRUPTIBLE, "build-db", str(out),
            "--source", "folder", str(folder), "--labels", str(folder / "labels.csv"),
            "--workers", "1", "--json"]  # fmt: skip
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial = partial_path(out)

    def written() -> int:
        return partial.stat().st_size if partial.exists() else 0

    while written() < 200_000 and child.poll() is None:
        time.sleep(0.005)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    if child.returncode == 0:
        pytest.fail("the build finished before it could be interrupted")
    assert child.returncode == 130 and err.strip() == "error: interrupted"
    assert partial.exists() and not out.exists()
    conn = sqlite3.connect(partial)
    (done,) = conn.execute("SELECT COUNT(*) FROM done WHERE source LIKE 'file:%'").fetchone()
    conn.close()
    assert 0 < done < 400  # the second run only does the rest
    finished = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    report = json.loads(finished.stdout)
    assert (report["covers"], report["tracks"], report["pairs"]) == (400, 400, 400)
    assert report["skipped"] == {} and not partial.exists()
