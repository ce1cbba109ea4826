"""The Million Playlist Dataset's JSON format: finding slices, reading and validating them.

Slices are decoded straight into typed structs by msgspec, which checks every field's
presence and type in C; the cross-field rules (positions, counts, sums) are checked here.
Struct field order is the MPD's own key order, so `trecs.synth` writes with the same types.
"""

from __future__ import annotations

import gc
import hashlib
import os
import re
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, repeat
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import numpy as np

from trecs.errors import UserError
from trecs.inputs import SQLITE_MAX, bounded, check_regular, read_bytes, read_text

SLICE_NAME = re.compile(r"(?:^|/)mpd\.slice\.(\d+)-(\d+)\.json$")
# A real slice is about 33 MB; anything far larger is not a slice and would only exhaust
# memory (a zip bomb, a mislabelled dump).
MAX_SLICE_BYTES = 1 << 30


# Counts, ids and durations are never negative and fit sqlite's INTEGER; msgspec checks
# that while decoding.
Count = Annotated[int, msgspec.Meta(ge=0, le=SQLITE_MAX)]
MAX_MD5SUMS_BYTES = 1 << 20


class Track(msgspec.Struct, gc=False):
    pos: Count
    artist_name: str
    track_uri: str
    artist_uri: str
    track_name: str
    album_uri: str
    duration_ms: Count
    album_name: str


class Playlist(msgspec.Struct, omit_defaults=True, gc=False):
    name: str
    collaborative: Literal["true", "false"]
    pid: Count
    modified_at: Count
    num_tracks: Count
    num_albums: Count
    num_followers: Count
    tracks: list[Track]
    num_edits: Count
    duration_ms: Count
    num_artists: Count
    description: str | None = None


class SliceInfo(msgspec.Struct):
    generated_on: str
    slice: str
    version: str


class Slice(msgspec.Struct):
    info: SliceInfo
    playlists: list[Playlist]


class _LooseSlice(msgspec.Struct):
    """A slice whose playlists are kept undecoded, to find which one is bad."""

    info: SliceInfo
    playlists: list[msgspec.Raw]


_decode_slice = msgspec.json.Decoder(Slice).decode
_decode_loose = msgspec.json.Decoder(_LooseSlice).decode
_decode_playlist = msgspec.json.Decoder(Playlist).decode


@dataclass(frozen=True)
class SliceRef:
    """Where one slice lives: a plain file, or a member of a zip archive."""

    path: Path
    member: str | None = None
    md5: str | None = None

    @property
    def name(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)

    @property
    def sort_key(self) -> tuple[int, str]:
        match = SLICE_NAME.search(self.member or self.path.as_posix())
        return (int(match.group(1)) if match else -1, self.name)

    def read(self) -> bytes:
        """The slice's bytes, checked against md5sums when `find_slices` was asked to verify."""
        if self.member is None:
            data = read_bytes(self.path, MAX_SLICE_BYTES, "an MPD slice")
        else:
            archive = _open_zip(self.path)
            size = archive.getinfo(self.member).file_size
            if size > MAX_SLICE_BYTES:
                raise UserError(f"{self.name}: member too large for an MPD slice")
            try:
                # Bounded while inflating: the size in the zip's header may lie.
                with archive.open(self.member) as member:
                    data = bounded(member, MAX_SLICE_BYTES, self.name, "an MPD slice", size)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise UserError(f"{self.name}: corrupt archive member ({exc})") from None
        if self.md5 is not None:
            actual = hashlib.md5(data).hexdigest()
            if actual != self.md5:
                raise UserError(
                    f"{self.name}: md5 mismatch (md5sums says {self.md5}, file has {actual})"
                )
        return data


_archives: dict[tuple[int, Path], zipfile.ZipFile] = {}


def _open_zip(path: Path) -> zipfile.ZipFile:
    """One open handle per archive and process: a handle inherited through fork shares
    its file offset with the parent, so concurrent reads would corrupt each other."""
    key = (os.getpid(), path)
    if key not in _archives:
        check_regular(path, "a zip archive")
        try:
            _archives[key] = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise UserError(f"{path}: not a readable zip archive ({exc})") from None
    return _archives[key]


def parse_md5sums(text: str, origin: str) -> dict[str, str]:
    """`md5sum` output (`HASH  PATH` per line) as {path: hash}."""
    sums = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = re.fullmatch(r"([0-9a-fA-F]{32}) [ *](.+)", line.strip())
        if match is None:
            raise UserError(f"{origin}: line {number}: not an md5sum line: {line[:80]!r}")
        sums[match.group(2).removeprefix("./")] = match.group(1).lower()
    return sums


def _attach_md5(refs: list[SliceRef], sums: dict[str, str], origin: str) -> list[SliceRef]:
    """Give each slice its expected md5; the slices and md5sums must list the same files."""
    listed = {key: value for key, value in sums.items() if SLICE_NAME.search(key)}
    out = []
    for ref in refs:
        key = _listed_as(ref, listed)
        if key is None:
            raise UserError(f"{ref.name}: not listed in {origin}")
        out.append(SliceRef(ref.path, ref.member, listed.pop(key)))
    if listed:
        missing = sorted(listed)[0]
        raise UserError(f"{origin} lists {missing}, which is missing ({len(listed)} missing)")
    return out


def _listed_as(ref: SliceRef, listed: dict[str, str]) -> str | None:
    """The md5sums path of a slice: its own path or a suffix of it, like data/mpd.slice..."""
    parts = (ref.member or ref.path.as_posix()).split("/")
    for start in range(len(parts)):
        key = "/".join(parts[start:])
        if key in listed:
            return key
    return None


def find_slices(inputs: list[Path], verify: bool = False) -> list[SliceRef]:
    """Slices in the inputs (MPD zips, folders, slice files), ordered by first playlist id.

    The order never depends on how the inputs were given, so neither do the ids the
    database assigns. With `verify`, each zip or folder must carry an `md5sums` that lists
    exactly its slices, and every slice is hashed against it when read.
    """
    refs: dict[str, SliceRef] = {}
    for path in inputs:
        if not path.exists():
            raise UserError(f"{path}: no such file or directory")
        if not path.is_dir():  # by type first: reading a FIFO or a device never ends
            check_regular(path, "an MPD zip archive or slice")
        if path.is_dir():
            found = _slices_in_folder(path, verify)
        elif zipfile.is_zipfile(path):
            found = _slices_in_zip(path, verify)
        elif path.suffix == ".json":
            if verify:
                raise UserError(f"{path}: a lone slice has no md5sums to verify against")
            found = [SliceRef(path)]
        else:
            raise UserError(f"{path}: not an MPD zip archive, folder or .json slice")
        if not found:
            raise UserError(f"{path}: no mpd.slice.*.json files in it")
        for ref in found:
            refs.setdefault(f"{ref.path.resolve()}:{ref.member}", ref)
    return sorted(refs.values(), key=lambda ref: ref.sort_key)


def _slices_in_folder(folder: Path, verify: bool) -> list[SliceRef]:
    files = sorted(folder.glob("mpd.slice.*.json")) + sorted(folder.glob("data/mpd.slice.*.json"))
    refs = [SliceRef(path) for path in files if SLICE_NAME.search(path.as_posix())]
    if not verify:
        return refs
    md5sums = next(
        (p for p in (folder / "md5sums", folder.parent / "md5sums") if p.is_file()), None
    )
    if md5sums is None:
        raise UserError(f"{folder}: no md5sums file to verify against")
    sums = parse_md5sums(read_text(md5sums, MAX_MD5SUMS_BYTES, "an md5sums file"), str(md5sums))
    relative = [SliceRef(ref.path.relative_to(md5sums.parent)) for ref in refs]
    checked = _attach_md5(relative, sums, str(md5sums))
    return [SliceRef(md5sums.parent / ref.path, None, ref.md5) for ref in checked]


def _slices_in_zip(path: Path, verify: bool) -> list[SliceRef]:
    archive = _open_zip(path)
    names = archive.namelist()
    refs = [SliceRef(path, name) for name in names if SLICE_NAME.search(name)]
    if not verify:
        return refs
    md5_members = sorted((n for n in names if n.rsplit("/", 1)[-1] == "md5sums"), key=len)
    if not md5_members:
        raise UserError(f"{path}: no md5sums in the archive to verify against")
    member = md5_members[0]
    with archive.open(member) as handle:
        text = bounded(handle, MAX_MD5SUMS_BYTES, f"{path}:{member}", "an md5sums file")
    sums = parse_md5sums(text.decode(errors="replace"), f"{path}:{member}")
    return _attach_md5(refs, sums, f"{path}:{member}")


def verify_mpd(inputs: list[Path], on_slice: Callable[[int, int], None] | None = None) -> int:
    """Check every slice of the inputs against their md5sums; returns how many were checked.

    Threads suffice: hashing and zip inflation release the GIL.
    """
    refs = find_slices(inputs, verify=True)
    pool = ThreadPoolExecutor(os.cpu_count() or 1)
    try:
        for done, _ in enumerate(pool.map(SliceRef.read, refs), 1):
            if on_slice is not None:
                on_slice(done, len(refs))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return len(refs)


_pos = attrgetter("pos")
_duration = attrgetter("duration_ms")
_track_uri = attrgetter("track_uri")
_artist_uri = attrgetter("artist_uri")
_album_uri = attrgetter("album_uri")


def playlist_problem(playlist: Playlist) -> str | None:
    """What is inconsistent in a playlist that decoded with the right types, if anything.

    Hot path of build-db: each check is one C-level pass over the tracks. URIs are
    checked by `track_problem` when a track is first seen, not on every repeat.
    """
    tracks = playlist.tracks
    n = len(tracks)
    if playlist.num_tracks != n:
        return f"num_tracks is {playlist.num_tracks} but it lists {n} tracks"
    positions = list(map(_pos, tracks))
    if positions != list(range(n)):
        index = next(i for i, pos in enumerate(positions) if pos != i)
        return f"track {index} has pos {positions[index]}, expected positions 0..{n - 1} in order"
    total = sum(map(_duration, tracks))
    if total != playlist.duration_ms:
        return f"duration_ms is {playlist.duration_ms} but its tracks sum to {total}"
    artists = set(map(_artist_uri, tracks))
    if len(artists) != playlist.num_artists:
        return f"num_artists is {playlist.num_artists} but it has {len(artists)} distinct artists"
    albums = set(map(_album_uri, tracks))
    if len(albums) != playlist.num_albums:
        return f"num_albums is {playlist.num_albums} but it has {len(albums)} distinct albums"
    return None


def track_problem(track: Track) -> str | None:
    """A malformed URI in a track; checked once per track, when it is first seen.

    The first test passes every well-formed track without building a message: a
    slice brings thousands of new tracks.
    """
    uris = track.track_uri, track.artist_uri, track.album_uri
    if (
        len(uris[0]) > 14
        and len(uris[1]) > 15
        and len(uris[2]) > 14
        and uris[0].startswith("spotify:track:")
        and uris[1].startswith("spotify:artist:")
        and uris[2].startswith("spotify:album:")
    ):
        return None
    for kind, uri in (
        ("track", track.track_uri),
        ("artist", track.artist_uri),
        ("album", track.album_uri),
    ):
        prefix = f"spotify:{kind}:"
        if not uri.startswith(prefix) or uri == prefix:
            return f"{kind}_uri {uri[:60]!r} is not a spotify:{kind}: URI"
    return None


@dataclass
class ParsedSlice:
    playlists: list[Playlist]
    skipped: list[tuple[int | None, str]]


def parse_slice(data: bytes, name: str, lenient: bool = False) -> ParsedSlice:
    """Decode and validate one slice; strict mode raises on the first bad playlist."""
    try:
        playlists = _decode_slice(data).playlists
    except msgspec.DecodeError:
        return _parse_slowly(data, name, lenient)
    except RecursionError:
        raise UserError(f"{name}: JSON nested too deeply for an MPD slice") from None
    except UnicodeDecodeError as exc:  # names are decoded strictly, never altered
        byte = exc.object[exc.start]
        raise UserError(f"{name}: not UTF-8 (byte 0x{byte:02x} in a string)") from None
    good, skipped = [], []
    for playlist in playlists:
        problem = playlist_problem(playlist)
        if problem is None:
            good.append(playlist)
        elif lenient:
            skipped.append((playlist.pid, problem))
        else:
            raise UserError(f"{name}: playlist {playlist.pid}: {problem}")
    return ParsedSlice(good, skipped)


def _parse_slowly(data: bytes, name: str, lenient: bool) -> ParsedSlice:
    """Playlist by playlist, to say which playlist broke the fast decode and why."""
    try:
        raws = _decode_loose(data).playlists
    except RecursionError:
        raise UserError(f"{name}: JSON nested too deeply for an MPD slice") from None
    except msgspec.ValidationError as exc:
        raise UserError(f"{name}: not an MPD slice: {_clean(exc)}") from None
    except msgspec.DecodeError as exc:
        raise UserError(f"{name}: invalid JSON: {exc}") from None
    good, skipped = [], []
    for index, raw in enumerate(raws):
        try:
            playlist = _decode_playlist(raw)
            problem = playlist_problem(playlist)
            pid = playlist.pid
        except msgspec.ValidationError as exc:
            problem = _clean(exc)
            pid = _pid_of(raw)
        if problem is None:
            good.append(playlist)
        elif lenient:
            skipped.append((pid, problem))
        else:
            label = f"playlist {pid}" if pid is not None else f"playlist at index {index}"
            raise UserError(f"{name}: {label}: {problem}")
    return ParsedSlice(good, skipped)


def _clean(exc: Exception) -> str:
    """msgspec's message without its Markdown backticks."""
    return str(exc).replace("`", "")


def _pid_of(raw: msgspec.Raw) -> int | None:
    try:
        pid = msgspec.json.decode(raw).get("pid")
    except (msgspec.DecodeError, AttributeError):
        return None
    return pid if isinstance(pid, int) and not isinstance(pid, bool) else None


@dataclass
class SliceTables:
    """One slice flattened into rows, small enough to pass between processes quickly.

    Tracks are numbered per process: `entries` holds those numbers, and only tracks
    this process has not numbered before travel with their metadata (`new_tracks`,
    numbered from `first_new`). Slices reach the writer in order, so it has always seen
    a process's earlier numbering before a later slice refers to it.
    """

    name: str
    process: int
    playlists: list[tuple]  # rows of the playlists table, in its column order
    lengths: np.ndarray  # tracks per playlist, in playlist order
    entries: np.ndarray  # the process's track number of every entry, playlist by playlist
    first_new: int
    new_tracks: list[tuple]  # (uri, name, album uri, album name, artist uri, artist name, ms)
    skipped: list[tuple[int | None, str]]


_numbering: tuple[tuple[str, int], dict[str, int]] = (("", 0), {})


def _track_numbers(build: str) -> dict[str, int]:
    """This process's track numbers for one build; fresh for every build and every
    process (a forked worker must not inherit its parent's numbers)."""
    global _numbering
    key = (build, os.getpid())
    if _numbering[0] != key:
        _numbering = (key, {})
    return _numbering[1]


def flatten(parsed: ParsedSlice, name: str, build: str, lenient: bool = False) -> SliceTables:
    """Number the slice's tracks, checking the URIs of those seen for the first time."""
    numbers = _track_numbers(build)
    first_new = len(numbers)
    tracks = list(chain.from_iterable(p.tracks for p in parsed.playlists))
    entries = np.fromiter(
        map(numbers.get, map(_track_uri, tracks), repeat(-1)), np.int64, len(tracks)
    )
    unseen = np.flatnonzero(entries < 0).tolist()
    bad = {index: problem for index in unseen if (problem := track_problem(tracks[index]))}
    if bad:
        return flatten(_drop_bad_tracks(parsed, bad, name, lenient), name, build, lenient)
    new_tracks: list[tuple] = []
    for index in unseen:
        t = tracks[index]
        number = numbers.get(t.track_uri)
        if number is None:
            number = numbers[t.track_uri] = len(numbers)
            new_tracks.append(
                (
                    t.track_uri,
                    t.track_name,
                    t.album_uri,
                    t.album_name,
                    t.artist_uri,
                    t.artist_name,
                    t.duration_ms,
                )
            )
        entries[index] = number
    playlists = [
        (
            p.pid,
            p.name,
            p.description,
            p.collaborative == "true",
            p.modified_at,
            p.num_followers,
            p.num_edits,
            len(p.tracks),
        )
        for p in parsed.playlists
    ]
    return SliceTables(
        name=name,
        process=os.getpid(),
        playlists=playlists,
        lengths=np.fromiter((row[-1] for row in playlists), np.int64, len(playlists)),
        entries=entries,
        first_new=first_new,
        new_tracks=new_tracks,
        skipped=parsed.skipped,
    )


def _drop_bad_tracks(
    parsed: ParsedSlice, bad: dict[int, str], name: str, lenient: bool
) -> ParsedSlice:
    """The slice without the playlists holding bad tracks (or an error, unless lenient)."""
    ends = np.cumsum([len(p.tracks) for p in parsed.playlists])
    problems: dict[int, str] = {}
    for index, problem in bad.items():
        owner = int(np.searchsorted(ends, index, side="right"))
        start = int(ends[owner - 1]) if owner else 0
        playlist = parsed.playlists[owner]
        message = f"track {index - start}: {problem}"
        if not lenient:
            raise UserError(f"{name}: playlist {playlist.pid}: {message}")
        problems.setdefault(owner, message)
    return ParsedSlice(
        [p for i, p in enumerate(parsed.playlists) if i not in problems],
        parsed.skipped + [(parsed.playlists[i].pid, m) for i, m in problems.items()],
    )


def load_slice(ref: SliceRef, build: str, lenient: bool = False) -> SliceTables:
    """Read, check and flatten one slice for the build named `build`; runs in workers."""
    with _gc_paused():
        return flatten(parse_slice(ref.read(), ref.name, lenient), ref.name, build, lenient)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Millions of short-lived acyclic objects: collector passes would only cost time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
