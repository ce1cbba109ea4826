"""The folder source: cover images on disk, labelled by a CSV, into a cover dataset.

LABELS.csv has a header with `image` (a path relative to DIR) and either the eight
feature columns by name (one row per image-track pair; `track_id`, `name`, `artist`
optional) or `track_id` alone (features come from the catalog), and optionally a genre
column (`--genre-column`, default `genre`): a cover's genre label, which `evaluate` uses
to judge whether predicted features tell genres apart. With the genre column alone, covers
are stored with their genres and no tracks. Decoding is the slow
part, so images are read and validated in a process pool while this process writes.
"""

from __future__ import annotations

import csv
import io
import math
import multiprocessing
import os
import posixpath
import signal
import stat
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from pathlib import Path
from typing import NamedTuple

from pressedplay import images, inputs
from pressedplay.dataset import LOCAL_COMMIT_EVERY, DatasetWriter, TrackFeatures
from pressedplay.errors import UserError
from pressedplay.features import ACCEPTED, NAMES

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
_CHUNK = 32  # images per task sent to a worker: amortises the pickling round trip
# Bytes per task at most: a 12 MP photo or a 6,000 px JPEG costs as much as dozens of
# covers, so heavy files travel in small tasks and no worker is left with a slow tail.
_CHUNK_BYTES = 4 << 20
# Below this many images a pool costs more to start than it saves.
_POOL_FROM = 200

Labels = dict[str, list[TrackFeatures]]
GENRE_COLUMN = "genre"


class LabelFile(NamedTuple):
    tracks: Labels  # image -> its tracks (empty for a cover labelled with a genre only)
    genres: dict[str, str]  # image -> genre label
    skipped: Counter  # rows left out, per reason


def build_from_folder(
    out: Path,
    folder: Path,
    labels_csv: Path,
    *,
    catalog: str | Path | None = None,
    force: bool = False,
    seed: int = 0,
    workers: int | None = None,
    genre_column: str = GENRE_COLUMN,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Build OUT from the images in `folder` labelled by `labels_csv`; returns info(OUT)."""
    folder, labels_csv = Path(folder), Path(labels_csv)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder")
    labels, genres, skipped = read_labels(labels_csv, catalog, genre_column)
    sizes = {image: _file_size(folder, image) for image in labels}
    present = {image: tracks for image, tracks in labels.items() if sizes[image] is not None}
    skipped["label without image"] += sum(
        len(tracks) for image, tracks in labels.items() if image not in present
    )
    skipped["image without labels"] += sum(1 for image in _images_in(folder) if image not in labels)
    source = f"folder:{folder.resolve()} labels:{labels_csv.resolve()}"
    with DatasetWriter(
        out, source=source, force=force, seed=seed, commit_every=LOCAL_COMMIT_EVERY
    ) as writer:
        for reason, n in sorted(skipped.items()):
            writer.skip(reason, n, key=f"labels:{reason}")
        todo = [image for image in present if not writer.is_done(f"file:{image}")]
        if progress is not None and len(todo) < len(present):
            progress(len(present) - len(todo))
        for image, data, size, reason in _load_all(folder, todo, sizes, workers):
            key = f"file:{image}"
            if reason is None:
                writer.add_cover(
                    data, image, present[image], key, size=size, genre=genres.get(image)
                )
            else:
                writer.skip(reason, key=key)
            if progress is not None:
                progress(1)
        return writer.finish()


def read_labels(
    labels_csv: Path, catalog: str | Path | None = None, genre_column: str = GENRE_COLUMN
) -> LabelFile:
    """Tracks and genre per image path (normalised, relative), and rows left out."""
    text = inputs.read_text(labels_csv, inputs.MAX_LABELS_CSV)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [column.strip() for column in next(reader, [])]
        rows = [(reader.line_num, row) for row in reader if row]
    except csv.Error as exc:
        raise UserError(f"{labels_csv}: line {reader.line_num}: {exc}") from None
    expected = (
        f"`image` and either `track_id`, `{genre_column}` or the eight feature columns "
        + ", ".join(NAMES)
    )
    if "image" not in header:
        raise UserError(f"{labels_csv}: the header has no `image` column; expected {expected}")
    has_features = all(name in header for name in NAMES)
    has_genre = genre_column in header
    if not has_features and "track_id" not in header and not has_genre:
        missing = ", ".join(name for name in NAMES if name not in header)
        raise UserError(
            f"{labels_csv}: no `track_id` or `{genre_column}` column and missing {missing}"
        )
    column = {name: i for i, name in enumerate(header)}
    labels: Labels = {}
    genres: dict[str, str] = {}
    skipped: Counter = Counter()
    wanted: list[tuple[str, str]] = []  # (image, track id) to look up in the catalog
    for line, row in rows:
        if len(row) != len(header):
            raise UserError(
                f"{labels_csv}: line {line} has {len(row)} fields, the header has {len(header)}"
            )
        image = _relative(row[column["image"]], labels_csv, line)
        track_id = row[column["track_id"]].strip() if "track_id" in column else ""
        genre = row[column[genre_column]].strip() if has_genre else ""
        if genre:
            genres.setdefault(image, genre)
        if has_genre and not (has_features or "track_id" in column):
            if genre:  # an empty genre labels nothing: the image counts as without labels
                labels.setdefault(image, [])
        elif has_features:
            tracks = labels.setdefault(image, [])
            tracks.append(
                TrackFeatures(
                    track_id or f"{image}#{len(tracks)}",
                    row[column["name"]] if "name" in column else None,
                    row[column["artist"]] if "artist" in column else None,
                    tuple(_number(row[column[name]], name, labels_csv, line) for name in NAMES),
                )
            )
        elif not track_id:
            raise UserError(f"{labels_csv}: line {line} has an empty track_id")
        else:
            wanted.append((image, track_id))
    if wanted:
        from pressedplay.catalog import Catalog, resolve_catalog

        with Catalog(resolve_catalog(catalog)) as source:
            found = source.lookup({track_id for _, track_id in wanted})
        for image, track_id in wanted:
            track = found.get(track_id)
            tracks = labels.setdefault(image, [])
            if track is None:
                skipped["track not in catalog"] += 1
            else:
                tracks.append(TrackFeatures(track.id, track.name, track.artist, track.features))
    return LabelFile(labels, genres, skipped)


def _relative(text: str, labels_csv: Path, line: int) -> str:
    """A label's image path, normalised; paths that leave DIR are refused."""
    path = posixpath.normpath(text.strip().replace("\\", "/"))
    if not text.strip():
        raise UserError(f"{labels_csv}: line {line} has an empty image path")
    if posixpath.isabs(path) or path == ".." or path.startswith("../") or ":" in path[:2]:
        raise UserError(f"{labels_csv}: line {line}: image {text!r} is not a path inside DIR")
    return path


def _number(text: str, name: str, labels_csv: Path, line: int) -> float:
    """A feature value within the range a catalog accepts (features.ACCEPTED)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UserError(f"{labels_csv}: line {line}: {name} {text!r} is not a number")
    low, high = ACCEPTED[name]
    if not low <= value <= high:
        raise UserError(
            f"{labels_csv}: line {line}: {name} {text!r} is outside {low:g} to {high:g}"
        )
    return value


def _images_in(folder: Path) -> Iterator[str]:
    """Relative paths of the image files under `folder`, hidden ones left out."""
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        within = os.path.relpath(root, folder)
        prefix = "" if within == "." else within.replace(os.sep, "/") + "/"
        for name in names:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                yield prefix + name


Loaded = tuple[str, bytes, tuple[int, int] | None, str | None]  # image, bytes, size, reason


def _load(folder: Path, image: str) -> Loaded:
    """Read and validate one image (images.size): its bytes and size, or why it is skipped."""
    try:
        data = inputs.read_bytes(os.path.join(folder, image), images.MAX_BYTES)
    except inputs.InputError as exc:
        return image, b"", None, _file_reason(exc.reason)
    try:
        return image, data, images.size(data), None
    except images.ImageError as exc:
        return image, b"", None, exc.reason


def _file_reason(reason: str) -> str:
    """A skip reason to count: a file over the limit as images.decode says it, the
    rest (a FIFO, a device, a read error) as one reason."""
    return "too large file" if reason.startswith("larger than") else "unreadable file"


def _load_chunk(folder: Path, chunk: list[str]) -> list[Loaded]:
    return [_load(folder, image) for image in chunk]


def _load_all(
    folder: Path, todo: list[str], sizes: dict[str, int | None], workers: int | None
) -> Iterator[Loaded]:
    """The images in order, decoded by a pool of processes when there are enough of them."""
    workers = workers or _cores()
    if workers < 2 or len(todo) < _POOL_FROM:
        for image in todo:
            yield _load(folder, image)
        return
    # fork is cheap and the workers only run Pillow; a process that loaded torch or JAX
    # has threads that fork must not copy, so it spawns instead.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    if "torch" in sys.modules or "jax" in sys.modules:
        method = "spawn"
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context(method), initializer=_ignore_sigint
    )
    try:
        chunks = _chunks(todo, sizes)
        # A bounded window of chunks in flight: memory stays flat however big the folder.
        queue = deque(pool.submit(_load_chunk, folder, c) for c in islice(chunks, 4 * workers))
        while queue:
            loaded = queue.popleft().result()
            following = next(chunks, None)
            if following is not None:
                queue.append(pool.submit(_load_chunk, folder, following))
            yield from loaded
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _file_size(folder: Path, image: str) -> int | None:
    """The size of a regular file in `folder`; None for anything else or nothing."""
    try:
        status = os.stat(os.path.join(folder, image))
    except OSError:
        return None
    return status.st_size if stat.S_ISREG(status.st_mode) else None


def _chunks(todo: list[str], sizes: dict[str, int | None]) -> Iterator[list[str]]:
    """`todo` in order, cut into tasks of at most _CHUNK images and about _CHUNK_BYTES."""
    chunk: list[str] = []
    size = 0
    for image in todo:
        weight = sizes.get(image) or 0
        if chunk and (len(chunk) == _CHUNK or size + weight > _CHUNK_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(image)
        size += weight
    if chunk:
        yield chunk


def _cores() -> int:
    """The cores this process may run on (fewer than the machine's in a container)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _ignore_sigint() -> None:
    """Ctrl-C is the parent's to handle; workers just stop when it shuts the pool down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
