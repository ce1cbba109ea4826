"""The RecSys Challenge 2018 on our database: its ten categories, its files, its scores.

The challenge hid tracks of 10,000 playlists in ten categories of 1,000 each; which
playlists went where depended on their length (ranges measured on the official
challenge set). We build the same categories from a split of the database, so that
our figures are comparable with the published ones.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import sqlite3
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import TypeVar

import numpy as np

from trecs.db import connect
from trecs.errors import UserError
from trecs.inputs import loads_json, read_text
from trecs.metrics import CUTOFF, Summary, clicks, ndcg, r_precision, summarise
from trecs.recommenders import Query, Recommender

T = TypeVar("T")


@dataclass(frozen=True)
class Category:
    number: int  # 1-10, the challenge's order
    title: bool  # whether the query shows the playlist's title
    seeds: int
    random: bool  # seeds at random positions (kept in playlist order) or the first ones
    min_tracks: int  # playlist lengths eligible, inclusive
    max_tracks: int

    def eligible(self, num_tracks: int) -> bool:
        return self.min_tracks <= num_tracks <= self.max_tracks

    def __str__(self) -> str:
        where = f"{self.seeds} random" if self.random else f"first {self.seeds}"
        where = "first track" if self.seeds == 1 else where
        what = "title" if self.title else "no title"
        return f"{what}, {where}" if self.seeds else "title only"


CATEGORIES = {
    c.number: c
    for c in (
        Category(1, True, 0, False, 10, 50),
        Category(2, True, 1, False, 10, 78),
        Category(3, True, 5, False, 10, 100),
        Category(4, False, 5, False, 40, 100),
        Category(5, True, 10, False, 40, 100),
        Category(6, False, 10, False, 40, 100),
        Category(7, True, 25, False, 101, 250),
        Category(8, True, 25, True, 101, 250),
        Category(9, True, 100, False, 150, 250),
        Category(10, True, 100, True, 150, 250),
    )
}
# Every case keeps at least as many held-out tracks as seeds, except the 100-seed
# categories, where the challenge's shortest playlists (150 tracks) keep 50.
assert all(
    c.min_tracks - c.seeds >= min(c.seeds, 50) and c.min_tracks - c.seeds >= 5
    for c in CATEGORIES.values()
)


@dataclass
class Case:
    query: Query
    category: int  # 1-10
    held_out: list[int]  # database track ids, in playlist order


def _positions(category: Category, num_tracks: int, pid: int, seed: int) -> np.ndarray:
    """Seed positions, in playlist order; random ones depend only on (seed, pid, category),
    so a playlist gets the same seeds however many cases are drawn around it."""
    if not category.random:
        return np.arange(category.seeds)
    rng = np.random.default_rng([seed, pid, category.number])
    return np.sort(rng.choice(num_tracks, category.seeds, replace=False))


def _case(category: Category, pid: int, title: str, tracks: list[int], seed: int) -> Case:
    chosen = np.zeros(len(tracks), bool)
    chosen[_positions(category, len(tracks), pid, seed)] = True
    seeds = tuple(t for t, c in zip(tracks, chosen, strict=True) if c)
    held_out = [t for t, c in zip(tracks, chosen, strict=True) if not c]
    return Case(Query(pid, title if category.title else None, seeds), category.number, held_out)


def make_cases(
    db: Path,
    split: str,
    per_category: int | None,
    seed: int = 0,
    categories: tuple[int, ...] = tuple(CATEGORIES),
    relaxed: int | None = None,
    playlists: Collection[int] | None = None,
) -> list[Case]:
    """Challenge cases from one split of the database, ordered by category.

    With `per_category` an int, each playlist is used once: playlists are drawn in a
    seeded random order and categories take turns, those with the fewest eligible
    playlists first, so that a small split falls short evenly (see `shortfall`). With
    None, every playlist goes into every category it is eligible for.

    `relaxed` (an int) turns the length rules around, for training data on a small split:
    each playlist goes into the categories whose range misses it but whose seeds leave at
    least `relaxed` of its tracks to find (short playlists with 25 seeds, long ones with 1).

    `playlists` (pids): only these of the split's playlists are drawn from.
    """
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown or not categories:
        raise UserError(f"categories {list(categories)}: expected numbers from 1 to 10")
    if per_category is not None and per_category < 1:
        raise UserError(f"{per_category} playlists per category: expected at least 1")
    wanted = [CATEGORIES[c] for c in sorted(set(categories))]
    conn = connect(db)
    try:
        rows = conn.execute(
            "SELECT p.id, p.name, p.num_tracks FROM playlists p "
            "JOIN split_memberships m ON m.playlist_id = p.id "
            "JOIN splits s ON s.id = m.split_id WHERE s.name = ? ORDER BY p.id",
            (split,),
        ).fetchall()
        if not rows:
            raise UserError(f"{db}: the {split!r} split has no playlists")
        if playlists is not None:
            rows = [r for r in rows if r[0] in playlists]
        order = np.random.default_rng(seed).permutation(len(rows))
        drawn = [rows[i] for i in order]
        chosen: dict[int, list[tuple[int, str, int]]] = {}
        if relaxed is not None:
            for category in wanted:
                chosen[category.number] = [
                    r
                    for r in drawn
                    if not category.eligible(r[2]) and r[2] >= category.seeds + relaxed
                ]
        elif per_category is None:
            for category in wanted:
                chosen[category.number] = [r for r in drawn if category.eligible(r[2])]
        else:
            # Round robin, scarcest category first: a small split's shortfall is spread
            # over the categories that compete for the same playlists.
            used: set[int] = set()
            queues = {
                c.number: iter([r for r in drawn if c.eligible(r[2])])
                for c in sorted(
                    wanted, key=lambda c: (sum(c.eligible(r[2]) for r in rows), c.number)
                )
            }
            chosen = {number: [] for number in queues}
            while queues:
                for number, queue in list(queues.items()):
                    row = next((r for r in queue if r[0] not in used), None)
                    if row is None:
                        del queues[number]
                        continue
                    used.add(row[0])
                    chosen[number].append(row)
                    if len(chosen[number]) == per_category:
                        del queues[number]
        tracks: dict[int, list[int]] = {}  # a playlist may serve several categories
        cases = []
        for category in wanted:
            for pid, title, _ in chosen[category.number]:
                if pid not in tracks:
                    tracks[pid] = [
                        t
                        for (t,) in conn.execute(
                            "SELECT track_id FROM playlist_track_memberships "
                            "WHERE playlist_id = ? ORDER BY pos",
                            (pid,),
                        )
                    ]
                cases.append(_case(category, pid, title, tracks[pid], seed))
        return cases
    finally:
        conn.close()


def shortfall(
    cases: list[Case], per_category: int, categories: tuple[int, ...] = tuple(CATEGORIES)
) -> dict[int, int]:
    """Category -> cases missing from `per_category`, for categories that fell short."""
    counts = Counter(c.category for c in cases)
    return {c: per_category - counts[c] for c in sorted(categories) if counts[c] < per_category}


def parse_categories(text: str) -> tuple[int, ...]:
    """`1,2,5` -> (1, 2, 5): the categories a command should use."""
    try:
        numbers = tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        numbers = ()
    if not numbers or any(n not in CATEGORIES for n in numbers):
        raise UserError(f"--categories {text!r}: expected numbers from 1 to 10, comma-separated")
    return numbers


def label(group: str) -> str:
    """A metrics group ("1".."10", "all") as tables and plots name it."""
    return "all" if group == "all" else f"{group}: {CATEGORIES[int(group)]}"


# ---------------------------------------------------------------- scoring


def score_lists(
    categories: Sequence[int],
    recommended: Sequence[Sequence[T]],
    held_out: Sequence[Sequence[T]],
    artist_of: Mapping[T, T],
) -> dict[str, dict[str, Summary]]:
    """R-precision, NDCG and clicks per category ("1".."10") and overall ("all")."""
    per: dict[str, dict[str, list[float]]] = {}
    for category, recs, truth in zip(categories, recommended, held_out, strict=True):
        values = {
            "r_precision": r_precision(recs, truth, artist_of),
            "ndcg": ndcg(recs, truth),
            "clicks": float(clicks(recs, truth)),
        }
        for group in (str(category), "all"):
            for name, value in values.items():
                per.setdefault(group, {}).setdefault(name, []).append(value)
    order = [str(c) for c in sorted(set(categories))] + ["all"]
    return {g: {m: summarise(v) for m, v in per[g].items()} for g in order if g in per}


def metrics_json(metrics: dict[str, dict[str, Summary]]) -> dict:
    return {
        group: {m: {"mean": s.mean, "ci95": s.ci95, "count": s.count} for m, s in by.items()}
        for group, by in metrics.items()
    }


# ---------------------------------------------------------------- files

CHALLENGE_FILE = "challenge_set.json"
TRUTH_FILE = "ground_truth.json"
SUBMISSION_SIZE = CUTOFF  # tracks per playlist in a submission
# The official challenge set is ~60 MB, a full submission ~190 MB: far more is not one.
MAX_FILE_BYTES = 1 << 30
TRACK_URI = re.compile(r"spotify:track:[0-9A-Za-z]{22}")
TRACK_FIELDS = {
    "pos": int,
    "artist_name": str,
    "track_uri": str,
    "artist_uri": str,
    "track_name": str,
    "album_uri": str,
    "duration_ms": int,
    "album_name": str,
}
PLAYLIST_FIELDS = {"pid": int, "num_tracks": int, "num_samples": int, "num_holdouts": int}
CHUNK = 900  # keys per `IN (...)` query, under sqlite's oldest limit of 999 parameters


def _rows(conn: sqlite3.Connection, sql: str, keys: Iterable) -> list[tuple]:
    """`sql` with `IN ({})` run over `keys` in chunks."""
    keys = list(keys)
    rows = []
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        rows += conn.execute(sql.format(",".join("?" * len(chunk))), chunk).fetchall()
    return rows


def fingerprint(db: Path) -> str:
    """A cheap identity of a database's content: its meta rows and table sizes."""
    conn = connect(db)
    try:
        parts = [
            sorted(conn.execute("SELECT key, value FROM meta")),
            *(
                conn.execute(f"SELECT COUNT(*), MAX(id) FROM {table}").fetchone()
                for table in ("tracks", "artists", "albums", "playlists")
            ),
        ]
    finally:
        conn.close()
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _write_text(path: Path, text: str) -> None:
    """Write through a temporary file and a rename: never half a file; `.gz` compresses."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if path.suffix == ".gz":
            with gzip.open(tmp, "wt", encoding="utf-8") as handle:
                handle.write(text)
        else:
            tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_text(path: Path) -> str:
    """A file's text, gunzipped when it is gzip (the official submissions are .csv.gz)."""
    return read_text(path, MAX_FILE_BYTES, "a challenge file")


def _read_json(path: Path, name: str) -> dict:
    """A JSON file whose top-level `name` is `name` and that holds a list of playlists."""
    data = loads_json(_read_text(path), str(path))
    if not isinstance(data, dict) or not isinstance(data.get("playlists"), list):
        raise UserError(f"{path}: not a {name} file (no list of playlists)")
    if data.get("name") != name:
        raise UserError(f"{path}: not a {name} file (its name is {data.get('name')!r})")
    return data


def _typed(value: object, kind: type) -> bool:
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _check_fields(path: Path, where: str, record: object, fields: dict[str, type]) -> dict:
    if not isinstance(record, dict):
        raise UserError(f"{path}: {where}: expected an object, got {type(record).__name__}")
    for key, kind in fields.items():
        if key not in record:
            raise UserError(f"{path}: {where}: missing field {key!r}")
        if not _typed(record[key], kind):
            raise UserError(
                f"{path}: {where}: {key} is {type(record[key]).__name__}, expected {kind.__name__}"
            )
    return record


def _pids(path: Path, playlists: list) -> list[int]:
    """Every playlist's pid, checked: an int, once each."""
    seen: set[int] = set()
    for index, playlist in enumerate(playlists):
        _check_fields(path, f"playlist {index}", playlist, {"pid": int})
        pid = playlist["pid"]
        if pid in seen:
            raise UserError(f"{path}: pid {pid}: appears twice")
        seen.add(pid)
    return [p["pid"] for p in playlists]


def infer_category(title: bool, positions: Sequence[int]) -> int | None:
    """The challenge category of a playlist showing `title` and seeds at `positions`."""
    first = list(positions) == list(range(len(positions)))
    for category in CATEGORIES.values():
        if (category.title, category.seeds, category.random) == (title, len(positions), not first):
            return category.number
    return None


# ---------------------------------------------------------------- challenge sets


@dataclass
class Made:
    out_dir: Path
    counts: dict[int, int]  # playlists per category
    shortfall: dict[int, int]  # categories that got fewer than asked


def _check_out_dir(out_dir: Path, inputs: Sequence[Path], force: bool) -> None:
    """OUT_DIR is new, empty, or (with --force) a challenge folder and nothing else."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder")
    held = {p.name for p in out_dir.iterdir()}
    if not held:
        return
    if any(p.resolve().parent == out_dir.resolve() for p in inputs):
        raise UserError(f"{out_dir}: holds an input; choose another folder")
    if not held <= {CHALLENGE_FILE, TRUTH_FILE}:
        raise UserError(f"{out_dir}: holds other files than a challenge's; choose another folder")
    if not force:
        raise UserError(f"{out_dir}: already exists (pass --force to replace it)")


def _track_meta(conn: sqlite3.Connection, ids: Iterable[int]) -> dict[int, dict]:
    """Track id -> the official challenge set's track fields (pos aside)."""
    rows = _rows(
        conn,
        "SELECT t.id, a.name, t.uri, a.uri, t.name, al.uri, t.duration_ms, al.name "
        "FROM tracks t JOIN artists a ON a.id = t.artist_id JOIN albums al ON al.id = t.album_id "
        "WHERE t.id IN ({})",
        ids,
    )
    names = [k for k in TRACK_FIELDS if k != "pos"]
    return {row[0]: dict(zip(names, row[1:], strict=True)) for row in rows}


def make_challenge(
    db: Path,
    out_dir: Path,
    per_category: int = 1000,
    seed: int = 0,
    split: str = "test",
    force: bool = False,
) -> Made:
    """Write OUT_DIR/challenge_set.json (the official format) and ground_truth.json.

    The folder is written whole under a temporary name and renamed into place.
    """
    _check_out_dir(out_dir, [db], force)
    cases = make_cases(db, split, per_category, seed)
    conn = connect(db)
    try:
        meta = _track_meta(conn, {t for c in cases for t in (*c.query.seeds, *c.held_out)})
    finally:
        conn.close()
    playlists, truth = [], []
    for case in cases:
        category = CATEGORIES[case.category]
        num_tracks = len(case.query.seeds) + len(case.held_out)
        positions = _positions(category, num_tracks, case.query.pid, seed)
        playlist: dict = {"pid": case.query.pid}
        if category.title:
            playlist["name"] = case.query.title
        playlist |= {
            "num_tracks": num_tracks,
            "num_samples": len(case.query.seeds),
            "num_holdouts": len(case.held_out),
            "tracks": [
                {"pos": int(pos), **meta[t]}
                for pos, t in zip(positions, case.query.seeds, strict=True)
            ],
        }
        playlists.append(playlist)
        truth.append(
            {
                "pid": case.query.pid,
                "category": case.category,
                "seeds": [meta[t]["track_uri"] for t in case.query.seeds],
                "held_out": [meta[t]["track_uri"] for t in case.held_out],
                "held_out_artists": [meta[t]["artist_uri"] for t in case.held_out],
            }
        )
    date = datetime.now().isoformat(" ")
    files = {
        CHALLENGE_FILE: {
            "date": date,
            "version": "v1",
            "name": "challenge_set",
            "description": f"trecs challenge set: {len(cases)} playlists of the {split!r} split "
            f"of {db.name}, RecSys Challenge 2018 categories, seed {seed}",
            "playlists": playlists,
        },
        TRUTH_FILE: {
            "date": date,
            "version": "v1",
            "name": "ground_truth",
            "description": f"held-out tracks of {CHALLENGE_FILE} in this folder",
            "db": str(db.resolve()),
            "fingerprint": fingerprint(db),
            "split": split,
            "seed": seed,
            "playlists": truth,
        },
    }
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        for name, content in files.items():
            (tmp / name).write_text(json.dumps(content, ensure_ascii=False, indent=1))
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    counts = Counter(c.category for c in cases)
    return Made(out_dir, {n: counts[n] for n in CATEGORIES}, shortfall(cases, per_category))


@dataclass
class Challenge:
    """A challenge set read for recommending: queries in database track ids."""

    path: Path
    queries: list[Query]
    categories: list[int]
    seeds: int  # seed tracks in the file
    unknown_seeds: int  # of them, tracks the database does not know (dropped from queries)


def _challenge_playlists(path: Path) -> list[tuple[dict, int]]:
    """Every playlist of a challenge set, validated, with its inferred category."""
    playlists = _read_json(path, "challenge_set")["playlists"]
    _pids(path, playlists)
    out = []
    for playlist in playlists:
        where = f"pid {playlist['pid']}"
        _check_fields(path, where, playlist, PLAYLIST_FIELDS | {"tracks": list})
        if "name" in playlist and not isinstance(playlist["name"], str):
            raise UserError(f"{path}: {where}: name is not a string")
        tracks = [_check_fields(path, where, t, TRACK_FIELDS) for t in playlist["tracks"]]
        positions = [t["pos"] for t in tracks]
        if playlist["num_samples"] != len(tracks):
            raise UserError(
                f"{path}: {where}: num_samples {playlist['num_samples']} != {len(tracks)} tracks"
            )
        if playlist["num_holdouts"] < 0 or playlist["num_tracks"] < len(tracks):
            raise UserError(f"{path}: {where}: num_tracks below num_samples or num_holdouts < 0")
        if positions != sorted(set(positions)) or any(
            not 0 <= p < playlist["num_tracks"] for p in positions
        ):
            raise UserError(f"{path}: {where}: track positions not increasing within the playlist")
        bad = next(
            (t["track_uri"] for t in tracks if not TRACK_URI.fullmatch(t["track_uri"])), None
        )
        if bad is not None:
            raise UserError(f"{path}: {where}: {bad!r} is not a Spotify track URI")
        category = infer_category("name" in playlist, positions)
        if category is None:
            raise UserError(
                f"{path}: {where}: no challenge category has {len(tracks)} seeds "
                f"{'with' if 'name' in playlist else 'without'} a title at these positions"
            )
        out.append((playlist, category))
    return out


def read_challenge(path: Path, db: Path) -> Challenge:
    """A challenge set (ours or the official one) as queries on `db`: seed URIs the
    database knows become its track ids, the others are dropped and counted."""
    playlists = _challenge_playlists(path)
    uris = {t["track_uri"] for p, _ in playlists for t in p["tracks"]}
    conn = connect(db)
    try:
        known = dict(_rows(conn, "SELECT uri, id FROM tracks WHERE uri IN ({})", uris))
    finally:
        conn.close()
    queries, categories, seeds, unknown = [], [], 0, 0
    for playlist, category in playlists:
        ids = [known.get(t["track_uri"]) for t in playlist["tracks"]]
        seeds += len(ids)
        unknown += ids.count(None)
        title = playlist.get("name") if CATEGORIES[category].title else None
        queries.append(Query(playlist["pid"], title, tuple(i for i in ids if i is not None)))
        categories.append(category)
    return Challenge(path, queries, categories, seeds, unknown)


@dataclass
class TruthPlaylist:
    pid: int
    category: int
    seeds: list[str]  # track URIs
    held_out: list[str]
    held_out_artists: list[str]  # artist URI of each held-out track


@dataclass
class Truth:
    path: Path
    db: Path  # the database the challenge was made from
    fingerprint: str
    playlists: list[TruthPlaylist]


def read_truth(path: Path) -> Truth:
    head = _check_fields(
        path, "top level", _read_json(path, "ground_truth"), {"db": str, "fingerprint": str}
    )
    playlists = head["playlists"]
    _pids(path, playlists)
    out = []
    for playlist in playlists:
        where = f"pid {playlist['pid']}"
        fields = {"category": int, "seeds": list, "held_out": list, "held_out_artists": list}
        _check_fields(path, where, playlist, fields)
        lists = [playlist[k] for k in ("seeds", "held_out", "held_out_artists")]
        if playlist["category"] not in CATEGORIES:
            raise UserError(f"{path}: {where}: category {playlist['category']} is not 1-10")
        if not all(isinstance(u, str) for u in chain(*lists)):
            raise UserError(f"{path}: {where}: track and artist URIs must be strings")
        if not playlist["held_out"] or len(lists[1]) != len(lists[2]):
            raise UserError(f"{path}: {where}: needs held-out tracks, each with its artist")
        out.append(TruthPlaylist(playlist["pid"], playlist["category"], *lists))
    return Truth(path, Path(head["db"]), head["fingerprint"], out)


# ---------------------------------------------------------------- submissions


def write_submission(
    path: Path, team_name: str, email: str, pids: Sequence[int], uris: Sequence[Sequence[str]]
) -> None:
    """The official submission: `team_info,NAME,EMAIL`, then `pid, uri1, ..., uri500`."""
    for what, value in (("team name", team_name), ("email", email)):
        if not value.strip() or any(c in value for c in ",\n\r#"):
            raise UserError(f"{what} {value!r}: must be non-empty, without commas or newlines")
    if "@" not in email:
        raise UserError(f"email {email!r}: not an email address")
    lines = [f"team_info,{team_name},{email}"]
    for pid, tracks in zip(pids, uris, strict=True):
        if len(set(tracks)) != SUBMISSION_SIZE or len(tracks) != SUBMISSION_SIZE:
            raise UserError(
                f"pid {pid}: {len(set(tracks))} distinct tracks, need {SUBMISSION_SIZE}"
            )
        bad = next((u for u in tracks if not TRACK_URI.fullmatch(u)), None)
        if bad is not None:
            raise UserError(f"pid {pid}: {bad!r} is not a Spotify track URI")
        lines.append(", ".join([str(pid), *tracks]))
    _write_text(path, "\n".join(lines) + "\n")


@dataclass
class Submission:
    team_name: str
    email: str
    recommendations: dict[int, list[str]]  # pid -> 500 track URIs, best first


def read_submission(path: Path, seeds: Mapping[int, Collection[str]]) -> Submission:
    """A submission checked as the official checker does against the challenge's pids
    and seed URIs (`seeds`): one UserError naming the file, line and pid at the first fault."""
    team = None
    recommendations: dict[int, list[str]] = {}
    for number, raw in enumerate(_read_text(path).splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(",")]
        where = f"{path}: line {number}"
        if team is None:
            # The open challenge's line; 2018's had the track (main or creative) after it.
            if fields[0] != "team_info" or not (
                len(fields) == 3 or (len(fields) == 4 and fields[1] in ("main", "creative"))
            ):
                raise UserError(f"{where}: expected `team_info,TEAM NAME,EMAIL` first")
            team = (fields[-2], fields[-1])
            continue
        try:
            pid = int(fields[0])
        except ValueError:
            raise UserError(f"{where}: {fields[0][:40]!r} is not a pid") from None
        where += f": pid {pid}"
        if pid not in seeds:
            raise UserError(f"{where}: not a playlist of the challenge set")
        if pid in recommendations:
            raise UserError(f"{where}: appears twice")
        tracks = fields[1:]
        bad = next((u for u in tracks if not TRACK_URI.fullmatch(u)), None)
        if bad is not None:
            raise UserError(f"{where}: {bad[:60]!r} is not a Spotify track URI")
        if len(set(tracks)) != len(tracks):
            repeated = next(u for u, n in Counter(tracks).items() if n > 1)
            raise UserError(f"{where}: {repeated} appears twice")
        if len(tracks) != SUBMISSION_SIZE:
            raise UserError(f"{where}: {len(tracks)} tracks, expected {SUBMISSION_SIZE}")
        shown = set(seeds[pid])
        seed = next((u for u in tracks if u in shown), None)
        if seed is not None:
            raise UserError(f"{where}: recommends its seed track {seed}")
        recommendations[pid] = tracks
    if team is None:
        raise UserError(f"{path}: empty: no team_info line")
    missing = [pid for pid in seeds if pid not in recommendations]
    if missing:
        raise UserError(
            f"{path}: pid {missing[0]}: missing"
            + (f" (and {len(missing) - 1} more playlists)" if len(missing) > 1 else "")
        )
    return Submission(team[0], team[1], recommendations)


# ---------------------------------------------------------------- recommending and scoring


def recommend_batches(
    recommender: Recommender,
    queries: Sequence[Query],
    n: int,
    batch_size: int = 256,
    on_batch: Callable[[int, int], None] | None = None,
) -> list[np.ndarray]:
    """`recommender.recommend` over `queries` in batches; `on_batch(done, total)` after each."""
    out: list[np.ndarray] = []
    for start in range(0, len(queries), batch_size):
        out += recommender.recommend(queries[start : start + batch_size], n)
        if on_batch is not None:
            on_batch(len(out), len(queries))
    return out


class _Filler:
    """Tracks that complete a short list: the train split's most popular, then any track
    of the database; read only when a list is short."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self._order: list[int] | None = None
        self.filled = 0  # lists completed

    def order(self, seeds: int) -> list[int]:
        if self._order is None:
            from trecs.recommenders import train_vocabulary

            popular = train_vocabulary(self.db).track_ids.tolist()
            conn = connect(self.db)
            try:
                limit = len(popular) + SUBMISSION_SIZE + seeds
                rest = [
                    t
                    for (t,) in conn.execute("SELECT id FROM tracks ORDER BY id LIMIT ?", (limit,))
                ]
            finally:
                conn.close()
            self._order = list(dict.fromkeys(popular + rest))
        return self._order

    def complete(self, query: Query, recommended: Iterable[int]) -> list[int]:
        """SUBMISSION_SIZE distinct tracks: the recommended ones first, never a seed."""
        seeds = set(query.seeds)
        chosen = [t for t in dict.fromkeys(int(t) for t in recommended) if t not in seeds]
        chosen = chosen[:SUBMISSION_SIZE]
        if len(chosen) < SUBMISSION_SIZE:
            self.filled += 1
            taken = seeds | set(chosen)
            for track in self.order(len(seeds)):
                if len(chosen) == SUBMISSION_SIZE:
                    break
                if track not in taken:
                    chosen.append(track)
            if len(chosen) < SUBMISSION_SIZE:
                raise UserError(
                    f"{self.db}: knows only {len(chosen)} tracks besides the seeds of pid "
                    f"{query.pid}; a submission needs {SUBMISSION_SIZE}"
                )
        return chosen


@dataclass
class Recommended:
    uris: list[list[str]]  # per query, SUBMISSION_SIZE track URIs
    filled: int  # lists the recommender left short, completed by popularity


def recommend_challenge(
    recommender: Recommender,
    challenge: Challenge,
    db: Path,
    batch_size: int = 256,
    on_batch: Callable[[int, int], None] | None = None,
) -> Recommended:
    """500 track URIs per playlist of the challenge, ready for `write_submission`."""
    filler = _Filler(db)
    ids = [
        filler.complete(query, recs)
        for query, recs in zip(
            challenge.queries,
            recommend_batches(
                recommender, challenge.queries, SUBMISSION_SIZE, batch_size, on_batch
            ),
            strict=True,
        )
    ]
    conn = connect(db)
    try:
        uri = dict(
            _rows(conn, "SELECT id, uri FROM tracks WHERE id IN ({})", {t for r in ids for t in r})
        )
    finally:
        conn.close()
    return Recommended([[uri[t] for t in row] for row in ids], filler.filled)


@dataclass
class Scores:
    metrics: dict[str, dict[str, Summary]]  # "1".."10", "all" -> metric -> summary
    team_name: str
    notices: list[str]


def score(submission: Path, truth_path: Path, db: Path | None = None) -> Scores:
    """Check a submission against the ground truth and score it per category.

    Artist credit (R-precision) needs the artist of every recommended track: it comes from
    `db`, by default the database the challenge was made from; recommended URIs it does
    not know simply miss.
    """
    truth = read_truth(truth_path)
    checked = read_submission(submission, {p.pid: p.seeds for p in truth.playlists})
    notices = []
    db = db or truth.db
    if not db.is_file():
        raise UserError(f"{truth_path}: its database {db} is gone; pass --db")
    if fingerprint(db) != truth.fingerprint:
        notices.append(
            f"{db} is not the database the challenge was made from: recommended tracks it "
            "does not know get no artist credit"
        )
    artist_of = {
        t: a for p in truth.playlists for t, a in zip(p.held_out, p.held_out_artists, strict=True)
    }
    wanted = {t for recs in checked.recommendations.values() for t in recs} - artist_of.keys()
    conn = connect(db)
    try:
        artist_of |= dict(
            _rows(
                conn,
                "SELECT t.uri, a.uri FROM tracks t JOIN artists a ON a.id = t.artist_id "
                "WHERE t.uri IN ({})",
                wanted,
            )
        )
    finally:
        conn.close()
    metrics = score_lists(
        [p.category for p in truth.playlists],
        [checked.recommendations[p.pid] for p in truth.playlists],
        [p.held_out for p in truth.playlists],
        artist_of,
    )
    return Scores(metrics, checked.team_name, notices)
