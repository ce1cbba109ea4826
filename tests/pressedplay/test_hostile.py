"""Hostile and damaged input: one `error:` line and exit 2, no hang, no byte of data lost.

Every hostile file is made here at test time (cut CSVs, FIFOs, links to /dev/zero,
escape sequences in names, read-only folders); nothing large is kept in git.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pressedplay import inputs
from pressedplay.catalog_csv import import_csv
from pressedplay.errors import UserError
from pressedplay.features import NAMES
from pressedplay.genres import load_mapping
from pressedplay.paths import catalog_path
from pressedplay.terminal import printable

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = FIXTURES / "spotify_songs_sample.csv"
HOSTILE_NAME = "x\x1b]0;pwned\x07y"
HOSTILE_ARTIST = "\x1b[31mred\x1b[0m"
GUARD_S = 10.0  # a reader still blocked on a FIFO after this long is released, and fails


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(home))
    return home


def one_error_line(result) -> str:
    """The single stderr line of a refused command (exit 2, no traceback)."""
    assert result.code == 2, (result.out, result.err)
    assert result.err.startswith("error: ") and result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err and "\x1b" not in result.err
    return result.err


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes: compared before and after a failure."""
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A FIFO nobody writes to. Should a reader block on it, a guard thread opens it for
    writing after GUARD_S seconds, so the test fails on time instead of hanging."""
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    done = threading.Event()

    def release() -> None:
        if done.wait(GUARD_S):
            return
        while not done.is_set():
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # ENXIO: no reader (yet)
                time.sleep(0.05)

    guard = threading.Thread(target=release, daemon=True)
    guard.start()
    yield path
    done.set()
    guard.join()


@pytest.fixture
def catalog(home: Path) -> Path:
    """The sample imported as catalog `tt`: the data a bad --force must not touch."""
    return Path(import_csv(SAMPLE, "tt")["path"])


def cut_rows(tmp_path: Path) -> list[Path]:
    """The sample cut inside its 6th row at several places, and one with an unclosed
    quote that swallows every row after the 3rd."""
    data = SAMPLE.read_bytes()
    starts = [i + 1 for i, byte in enumerate(data) if byte == ord("\n")]
    row = starts[5]
    cuts = [data[: row + n] for n in (1, 23, 60, 120)]
    lines = data.split(b"\n")
    cuts.append(b"\n".join([*lines[:3], b'"' + lines[3], *lines[4:]]))
    paths = []
    for i, content in enumerate(cuts):
        paths.append(tmp_path / f"cut{i}.csv")
        paths[-1].write_bytes(content)
    return paths


# 1. cut files


def test_a_cut_csv_is_an_error_and_force_keeps_the_catalog(cli, tmp_path, home, catalog):
    before = snapshot(home)
    for path in cut_rows(tmp_path):
        err = one_error_line(cli("catalog", "import", path, "--name", "tt", "--force"))
        assert "Nothing imported" in err, err
        assert snapshot(home) == before


def test_a_cut_csv_imports_nothing_new(cli, tmp_path, home):
    path = cut_rows(tmp_path)[1]
    one_error_line(cli("catalog", "import", path, "--name", "fresh"))
    assert not catalog_path("fresh").exists() and snapshot(home) == {}


def test_force_replaces_after_a_complete_import(cli, home, catalog):
    before = catalog.read_bytes()
    result = cli("catalog", "import", FIXTURES / "kaggle_tracks.csv", "--name", "tt", "--force")
    assert result.code == 0, result.err
    assert catalog.read_bytes() != before and [p.name for p in catalog.parent.iterdir()] == [
        "tt.db"
    ]


def labelled_folder(tmp_path: Path, rows: list[list[str]]) -> tuple[Path, Path]:
    """A folder with one cover and a labels CSV of `rows` under the features header."""
    from PIL import Image

    folder = tmp_path / "covers"
    folder.mkdir()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(folder / "a.png")
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as handle:
        csv.writer(handle).writerows([["image", *NAMES], *rows])
    return folder, labels


def test_a_cut_labels_csv_is_an_error(cli, tmp_path):
    folder, labels = labelled_folder(tmp_path, [["a.png", *["0.5"] * 8]] * 3)
    labels.write_bytes(labels.read_bytes()[:-12])
    out = tmp_path / "covers.db"
    one_error_line(cli("build-db", out, folder, "--source", "folder", "--labels", labels))
    assert not out.exists()


# 2. features out of range


def test_out_of_range_catalog_rows_are_skipped_and_counted(cli, tmp_path):
    with SAMPLE.open(newline="") as handle:
        rows = list(csv.DictReader(handle))[:3]
    rows[1]["acousticness"], rows[2]["loudness"] = "5", "-7000"
    path = tmp_path / "range.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = cli("catalog", "import", path, "--name", "range", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["skipped"] == {"acousticness out of range": 1, "loudness out of range": 1}
    assert report["tracks"] == 1


@pytest.mark.parametrize(("feature", "value"), [("acousticness", "5"), ("loudness", "-7000")])
def test_out_of_range_labels_are_refused(cli, tmp_path, feature, value):
    row = ["a.png", *["0.5"] * 8]
    row[1 + NAMES.index(feature)] = value
    folder, labels = labelled_folder(tmp_path, [row])
    out = tmp_path / "covers.db"
    err = one_error_line(cli("build-db", out, folder, "--source", "folder", "--labels", labels))
    assert f"{feature} '{value}' is outside" in err
    assert not out.exists()


def test_a_dataset_counts_out_of_range_tracks(tmp_path):
    """Tracks from a catalog made before ranges were checked, or edited by hand."""
    import io

    from PIL import Image

    from pressedplay.dataset import DatasetWriter, TrackFeatures

    png = io.BytesIO()
    Image.new("RGB", (16, 16), (20, 90, 200)).save(png, "PNG")
    good = (0.5, 0.5, 0.5, 0.5, 0.5, -7.0, 0.5, 0.5)
    tracks = [
        TrackFeatures("good", None, None, good),
        TrackFeatures("acoustic", None, None, (5.0, *good[1:])),
        TrackFeatures("loud", None, None, (*good[:5], -7000.0, *good[6:])),
    ]
    with DatasetWriter(tmp_path / "o.db", source="test") as writer:
        assert writer.add_cover(png.getvalue(), "cover", tracks)
        report = writer.finish()
    assert report["skipped"] == {"track with invalid features": 2} and report["pairs"] == 1


# 3. the bounded reader


def special_files(tmp_path: Path, fifo: Path) -> dict[str, Path]:
    zero = tmp_path / "zero.png"
    zero.symlink_to("/dev/zero")
    return {"is a FIFO": fifo, "is a character device": zero, "is a folder": tmp_path}


@pytest.mark.parametrize("command", ["predict", "generate", "feedback"])
def test_special_files_as_images_are_refused_quickly(cli, tmp_path, fifo, command):
    extra = ["--like"] if command == "feedback" else []
    for reason, path in special_files(tmp_path, fifo).items():
        started = time.monotonic()
        err = one_error_line(cli(command, path, "--model", "prior", *extra))
        assert reason in err and time.monotonic() - started < GUARD_S


def test_special_files_as_csv_are_refused_quickly(cli, tmp_path, fifo, home):
    folder, _ = labelled_folder(tmp_path, [])
    for reason, path in special_files(tmp_path, fifo).items():
        started = time.monotonic()
        assert reason in one_error_line(cli("catalog", "import", path, "--name", "x"))
        out = tmp_path / "covers.db"
        args = ("build-db", out, folder, "--source", "folder", "--labels", path)
        assert reason in one_error_line(cli(*args))
        assert time.monotonic() - started < GUARD_S
        assert not out.exists() and snapshot(home) == {}


def test_special_files_as_feedback_db_are_refused(cli, tmp_path, fifo, picture):
    for reason, path in special_files(tmp_path, fifo).items():
        args = ("feedback", picture, "--like", "--model", "prior", "--feedback-db", path)
        assert reason in one_error_line(cli(*args))


def test_special_files_in_a_cover_folder_are_skipped(cli, tmp_path, fifo):
    folder, labels = labelled_folder(tmp_path, [["a.png", *["0.5"] * 8]])
    os.mkfifo(folder / "b.png")
    (folder / "c.png").symlink_to("/dev/zero")
    result = cli("build-db", tmp_path / "o.db", folder, "--source", "folder", "--labels", labels)
    assert result.code == 0, result.err


def test_the_limit_is_counted_on_the_bytes_read(tmp_path):
    path = tmp_path / "eleven"
    path.write_bytes(b"x" * 11)
    assert inputs.read_bytes(path, 11) == b"x" * 11
    with inputs.BoundedFile(path, 10) as handle, pytest.raises(inputs.InputError) as caught:
        handle.readall()
    assert caught.value.reason == "larger than the limit of 10 bytes"
    assert handle.count == 11  # limit + 1, never more


def test_deeply_nested_json_is_one_error(cli, tmp_path, picture):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UserError, match="nested too deeply"):
        load_mapping(deep)
    args = ("feedback", picture, "--like", "--model", "prior", "--playlist", deep)
    assert "nested too deeply" in one_error_line(cli(*args))


# 4. terminal escapes


@pytest.fixture
def hostile_catalog(home: Path, tmp_path: Path) -> Path:
    """A catalog whose every track name, artist and genre carries escape sequences."""
    with SAMPLE.open(newline="") as handle:
        rows = list(csv.DictReader(handle))[:40]
    for i, row in enumerate(rows):
        row["track_name"] = f"{HOSTILE_NAME}{i}"
        row["track_artist"] = f"{HOSTILE_ARTIST}{i}\n[bold]b[/bold] :fire:"
        row["playlist_genre"] = "pop\x1b[2J\u009b31m"
    path = tmp_path / "hostile.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return Path(import_csv(path, "hostile")["path"])


def assert_no_controls(text: str) -> None:
    controls = [c for c in text if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F]
    assert controls == [], text


def test_escapes_never_reach_the_terminal(cli, hostile_catalog, picture):
    table = cli("generate", picture, "--model", "prior", "--catalog", "hostile", "--n", "5")
    assert table.code == 0, table.err
    assert_no_controls(table.out)
    assert "\\x1b]0;pwned\\x07y" in table.out and "[bold]b[/bold] :fire:" in table.out
    m3u = cli("generate", picture, "--model", "prior", "--catalog", "hostile", "--format", "m3u")
    assert_no_controls(m3u.out)
    assert all(
        line.startswith(("#EXTINF:-1,\\x1b[31mred", "https://open.spotify.com/track/"))
        for line in m3u.out.splitlines()[1:]
    )
    info = cli("catalog", "info", "hostile")
    assert_no_controls(info.out)
    assert "pop\\x1b[2J\\x9b31m" in info.out


def test_json_keeps_names_exact(cli, hostile_catalog, picture):
    args = ("generate", picture, "--model", "prior", "--catalog", "hostile", "--format", "json")
    tracks = json.loads(cli(*args).out)["tracks"]
    assert tracks and all(t["name"].startswith(HOSTILE_NAME) for t in tracks)
    assert all(t["artist"].startswith(HOSTILE_ARTIST) for t in tracks)


def test_escapes_in_error_messages_stay_on_one_line(cli, tmp_path):
    path = tmp_path / "evil\x1b]0;pwned\x07\nname.csv"
    err = one_error_line(cli("catalog", "import", path))
    assert "evil\\x1b]0;pwned\\x07\\x0aname.csv" in err


def test_printable_escapes_only_controls():
    assert printable("Beyoncé - 東京 ♫ ü") == "Beyoncé - 東京 ♫ ü"
    assert printable("a\x1b[31mb\x07\x9b\x7f\u202e") == "a\\x1b[31mb\\x07\\x9b\\x7f\\u202e"


# 5. read-only output


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "read-only"
    folder.mkdir()
    os.chmod(folder, 0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: chmod does not stop writes")
        yield folder
    finally:
        os.chmod(folder, 0o755)


def test_a_read_only_catalog_folder_keeps_the_catalog(cli, home, catalog):
    before = snapshot(home)
    os.chmod(catalog.parent, 0o555)
    try:
        if os.access(catalog.parent, os.W_OK):
            pytest.skip("running as root: chmod does not stop writes")
        err = one_error_line(cli("catalog", "import", SAMPLE, "--name", "tt", "--force"))
    finally:
        os.chmod(catalog.parent, 0o755)
    assert "read-only" in err or "Permission denied" in err
    assert snapshot(home) == before


def test_read_only_output_folders_are_one_error(cli, tmp_path, read_only, picture):
    folder, labels = labelled_folder(tmp_path, [["a.png", *["0.5"] * 8]])
    out = read_only / "covers.db"
    args = ("build-db", out, folder, "--source", "folder", "--labels", labels)
    assert "read-only" in one_error_line(cli(*args))
    plot = read_only / "radar.png"
    args = ("predict", picture, "--model", "prior", "--plot", plot)
    assert "cannot write" in one_error_line(cli(*args))
    assert list(read_only.iterdir()) == []


def run_on_small_disk(tmp_path: Path, script: str) -> subprocess.CompletedProcess:
    """`script` (sh) run with $DISK a fresh 96 KB tmpfs, in a private mount namespace:
    a real full (or, remounted, read-only) disk. Skipped where mounting is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    probe = ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=96k tmpfs {disk}"]
    if shutil.which("unshare") is None or subprocess.run(probe, capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root and unshare)")
    cli = f"{sys.executable} -m pressedplay.cli"
    setup = f"mount -t tmpfs -o size=96k tmpfs {disk} && export DISK={disk} PP='{cli}'"
    env = {**os.environ, "PRESSEDPLAY_HOME": str(disk / "home")}
    command = ["unshare", "-m", "sh", "-c", f"{setup} && {script}"]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("remount", ["", "mount -o remount,ro $DISK &&"], ids=["full", "ro"])
def test_a_full_or_read_only_disk_keeps_the_catalog(tmp_path, remount):
    seed = f"$PP catalog import {FIXTURES / 'kaggle_tracks.csv'} --name tt >/dev/null"
    check = "sha256sum $DISK/home/catalogs/* && ls -A $DISK/home/catalogs"
    again = f"$PP catalog import {SAMPLE} --name tt --force"
    result = run_on_small_disk(tmp_path, f"{seed} && {check} && {remount} {again}; {check}")
    listing = result.stdout.splitlines()
    assert listing[:2] == listing[2:] and listing[1] == "tt.db", result.stdout
    error = result.stderr.lower()
    assert error.startswith("error: ") and error.count("\n") == 1 and "traceback" not in error
    assert ("full" if not remount else "read-only") in error, error
