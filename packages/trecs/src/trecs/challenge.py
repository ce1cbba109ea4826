"""The RecSys Challenge 2018 on our database: its ten categories, its files, its scores.

The challenge hid tracks of 10,000 playlists in ten categories of 1,000 each; which
playlists went where depended on their length (ranges measured on the official
challenge set). We build the same categories from a split of the database, so that
our figures are comparable with the published ones.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trecs.db import connect
from trecs.errors import UserError
from trecs.recommenders import Query


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
) -> list[Case]:
    """Challenge cases from one split of the database, ordered by category.

    With `per_category` an int, each playlist is used once: playlists are drawn in a
    seeded random order and categories take turns, those with the fewest eligible
    playlists first, so that a small split falls short evenly (see `shortfall`). With None, every playlist goes into every category it is eligible for.
    """
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown or not categories:
        raise UserError(f"categories {list(categories)}: expected numbers from 1 to 10")
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
        order = np.random.default_rng(seed).permutation(len(rows))
        drawn = [rows[i] for i in order]
        chosen: dict[int, list[tuple[int, str, int]]] = {}
        if per_category is None:
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
        cases = []
        for category in wanted:
            for pid, title, _ in chosen[category.number]:
                tracks = [
                    t
                    for (t,) in conn.execute(
                        "SELECT track_id FROM playlist_track_memberships "
                        "WHERE playlist_id = ? ORDER BY pos",
                        (pid,),
                    )
                ]
                cases.append(_case(category, pid, title, tracks, seed))
        return cases
    finally:
        conn.close()


def shortfall(
    cases: list[Case], per_category: int, categories: tuple[int, ...] = tuple(CATEGORIES)
) -> dict[int, int]:
    """Category -> cases missing from `per_category`, for categories that fell short."""
    counts = Counter(c.category for c in cases)
    return {c: per_category - counts[c] for c in sorted(categories) if counts[c] < per_category}
