"""build_from_folder on real image files and LABELS.csv files, both label layouts."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pressedplay import folder as folder_module
from pressedplay.catalog_csv import import_csv
from pressedplay.dataset import info, partial_path
from pressedplay.errors import UserError
from pressedplay.features import NAMES
from pressedplay.folder import build_from_folder, read_labels

FIXTURE = Path(__file__).parent / "fixtures" / "spotify_songs_sample.csv"


def save(path: Path, seed: int, format: str = "JPEG", size: int = 20) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def features(i: int) -> list[str]:
    return [f"{(i * 37 + k * 11) % 100 / 100:.2f}" for k in range(len(NAMES))]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def covers(tmp_path) -> Path:
    """A folder with good, bad and unlabelled images and a features-layout LABELS.csv."""
    folder = tmp_path / "covers"
    save(folder / "a.jpg", 1)
    save(folder / "sub" / "b.png", 2, "PNG")
    save(folder / "c.JPG", 3)
    (folder / "fake.jpg").write_text("<html>not a picture</html>")
    save(folder / "cut.jpg", 4, size=64)
    (folder / "cut.jpg").write_bytes((folder / "cut.jpg").read_bytes()[:300])
    save(folder / "unlabelled.jpg", 5)
    save(folder / ".hidden" / "ignored.jpg", 6)
    (folder / "notes.txt").write_text("not an image name, not counted")
    rows = [
        ["a.jpg", "t1", "One", *features(1)],
        ["a.jpg", "t2", "Two", *features(2)],
        ["./sub/b.png", "t3", "Three", *features(3)],
        ["c.JPG", "t1", "One", *features(1)],
        ["fake.jpg", "t4", "", *features(4)],
        ["cut.jpg", "t5", "", *features(5)],
        ["missing.jpg", "t6", "", *features(6)],
        ["missing.jpg", "t7", "", *features(7)],
    ]
    write_csv(folder / "labels.csv", ["image", "track_id", "name", *NAMES], rows)
    return folder


def test_features_layout_counts_what_it_leaves_out(tmp_path, covers):
    out = tmp_path / "covers.db"
    advanced = []
    report = build_from_folder(out, covers, covers / "labels.csv", progress=advanced.append)
    assert (report["covers"], report["tracks"], report["pairs"]) == (3, 3, 4)
    assert report["skipped"] == {
        "corrupt image": 1,
        "image without labels": 1,
        "label without image": 2,
        "not an image": 1,
    }
    assert sum(advanced) == 5  # the labelled images that exist
    assert info(out) == report and not partial_path(out).exists()


def test_features_layout_without_track_ids(tmp_path):
    folder = tmp_path / "covers"
    save(folder / "a.jpg", 1)
    rows = [["a.jpg", *features(1)], ["a.jpg", *features(2)]]
    labels = write_csv(tmp_path / "labels.csv", ["image", *reversed(NAMES)], rows)
    build_from_folder(tmp_path / "covers.db", folder, labels)
    labelled, _, _ = read_labels(labels)
    (first, second) = labelled["a.jpg"]
    assert (first.id, second.id) == ("a.jpg#0", "a.jpg#1")
    assert first.features == tuple(float(v) for v in reversed(features(1)))  # by name


def test_track_id_layout_takes_features_from_the_catalog(tmp_path, monkeypatch):
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(tmp_path / "home"))
    import_csv(FIXTURE, "sample")
    with open(FIXTURE, newline="") as handle:
        known = [row for row, _ in zip(csv.DictReader(handle), range(3), strict=False)]
    folder = tmp_path / "covers"
    save(folder / "x.jpg", 1)
    save(folder / "y.jpg", 2)
    rows = [
        [known[0]["track_id"], "x.jpg"],
        [known[1]["track_id"], "x.jpg"],
        [known[2]["track_id"], "y.jpg"],
        ["0000000000000000000000", "y.jpg"],
        ["spotify-track-unknown", "x.jpg"],
    ]
    labels = write_csv(tmp_path / "labels.csv", ["track_id", "image"], rows)
    report = build_from_folder(tmp_path / "covers.db", folder, labels, catalog="sample")
    assert (report["covers"], report["pairs"]) == (2, 3)
    assert report["skipped"] == {"track not in catalog": 2}
    labelled, _, _ = read_labels(labels, "sample")
    first = labelled["x.jpg"][0]
    assert first.id == known[0]["track_id"] and first.artist == known[0]["track_artist"]
    assert first.features == tuple(float(known[0][name]) for name in NAMES)
    with pytest.raises(UserError, match="no catalog named 'nope'"):
        build_from_folder(tmp_path / "other.db", folder, labels, catalog="nope")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no `image` column"),
        ("path,track_id\na.jpg,t1\n", "no `image` column"),
        ("image,valence\na.jpg,0.5\n", "no `track_id` or `genre` column and missing acousticness"),
        ("image,track_id\na.jpg,t1,extra\n", "line 2 has 3 fields, the header has 2"),
        ("image,track_id\na.jpg,\n", "line 2 has an empty track_id"),
        ("image,track_id\n,t1\n", "line 2 has an empty image path"),
        ("image,track_id\n../secret.jpg,t1\n", "line 2: image '../secret.jpg' is not a path"),
        ("image,track_id\nsub/../../x.jpg,t1\n", "is not a path inside DIR"),
        ("image,track_id\n/etc/passwd,t1\n", "is not a path inside DIR"),
        ('image,track_id\n"a.jpg"x,t1\n', "line 2: "),
        (f"image,{','.join(NAMES)}\na.jpg{',0.5' * 7},NA\n", "line 2: valence 'NA' is not a"),
        (f"image,{','.join(NAMES)}\na.jpg{',0.5' * 7},inf\n", "valence 'inf' is not a number"),
    ],
)
def test_malformed_labels_are_user_errors(tmp_path, content, message):
    folder = tmp_path / "covers"
    save(folder / "a.jpg", 1)
    (tmp_path / "labels.csv").write_text(content)
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        build_from_folder(tmp_path / "covers.db", folder, tmp_path / "labels.csv")
    assert (
        not (tmp_path / "covers.db").exists() and not partial_path(tmp_path / "covers.db").exists()
    )


def test_non_utf8_labels_and_missing_paths(tmp_path, covers):
    (tmp_path / "latin1.csv").write_bytes("image,track_id\ncaf\xe9.jpg,t1\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1\.csv: not UTF-8 text"):
        build_from_folder(tmp_path / "o.db", covers, tmp_path / "latin1.csv")
    with pytest.raises(UserError, match="is not a folder"):
        build_from_folder(tmp_path / "o.db", tmp_path / "nowhere", covers / "labels.csv")
    with pytest.raises(UserError, match=r"nowhere\.csv: no such file"):
        build_from_folder(tmp_path / "o.db", covers, tmp_path / "nowhere.csv")


def many(tmp_path: Path, n: int) -> Path:
    folder = tmp_path / "many"
    for i in range(n):
        save(folder / f"{i:04d}.jpg", i, size=16)
    (folder / "0007.jpg").write_bytes(b"")
    rows = [[f"{i:04d}.jpg", *features(i)] for i in range(n)]
    write_csv(folder / "labels.csv", ["image", *NAMES], rows)
    return folder


def test_process_pool_gives_the_same_dataset(tmp_path):
    folder = many(tmp_path, 260)
    pooled = build_from_folder(tmp_path / "p.db", folder, folder / "labels.csv", workers=2)
    serial = build_from_folder(tmp_path / "s.db", folder, folder / "labels.csv", workers=1)
    assert pooled["covers"] == 259 and pooled["skipped"] == {"empty file": 1}
    assert {**pooled, "path": None} == {**serial, "path": None}


def test_heavy_files_travel_in_small_tasks(tmp_path, monkeypatch):
    monkeypatch.setattr(folder_module, "_CHUNK_BYTES", 10_000)
    names = [f"{i:02d}.jpg" for i in range(40)]
    for i, name in enumerate(names):
        (tmp_path / name).write_bytes(b"x" * (6_000 if i in (5, 6, 30) else 100))
    todo = [*names, "missing.jpg"]
    sizes = {name: folder_module._file_size(tmp_path, name) for name in todo}
    assert sizes["missing.jpg"] is None and sizes["05.jpg"] == 6_000
    chunks = list(folder_module._chunks(todo, sizes))
    assert [name for chunk in chunks for name in chunk] == [*names, "missing.jpg"]
    assert all(len(chunk) <= folder_module._CHUNK for chunk in chunks)
    assert ["05.jpg"] in [chunk[-1:] for chunk in chunks]  # 5 and 6 never share a task
    assert not any({"05.jpg", "06.jpg"} <= set(chunk) for chunk in chunks)
    assert [len(chunk) for chunk in chunks] == [6, 24, 11]


def test_interrupted_build_resumes_without_double_counting(tmp_path):
    folder = many(tmp_path, 60)
    save(folder / "extra.jpg", 99)  # one unlabelled image, counted once across both runs
    out = tmp_path / "covers.db"
    seen = []

    def interrupt_after_20(n: int) -> None:
        seen.append(n)
        if sum(seen) == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_from_folder(out, folder, folder / "labels.csv", progress=interrupt_after_20)
    assert partial_path(out).exists() and not out.exists()
    advanced = []
    report = build_from_folder(out, folder, folder / "labels.csv", progress=advanced.append)
    assert advanced[0] == 20 and sum(advanced) == 60
    assert (report["covers"], report["pairs"]) == (59, 59)
    assert report["skipped"] == {"empty file": 1, "image without labels": 1}
    fresh = tmp_path / "fresh"
    shutil.copytree(folder, fresh)
    expected = build_from_folder(tmp_path / "fresh.db", fresh, fresh / "labels.csv")
    assert report["splits"] == expected["splits"]
    assert report["feature_stats"] == expected["feature_stats"]
