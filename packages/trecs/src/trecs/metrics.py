"""The RecSys Challenge 2018 metrics, over a ranked list of recommended tracks.

G is the playlist's held-out tracks, R the recommendations (500 in the challenge):
- R-precision: (|tracks of R[:|G|] in G| + 0.25 * |artists of G matched by the other
  tracks of R[:|G|]|) / |G|; artist credit goes only to tracks that are not exact hits,
  so a perfect list scores 1;
- NDCG, as Spotify's published challenge code computes it: over the unique tracks of
  R[:500], DCG = sum over ranks i of rel_i / log2(i + 1), divided by IDCG = sum_{i=1}^{m}
  1 / log2(i + 1) with m = min(|G|, 500): the ideal ranks every held-out track first,
  found or not, so a list that finds few of G is not rewarded for ranking them well;
- clicks: how many refreshes of 10 tracks before the first hit, floor((rank - 1) / 10),
  and 51 when no track of R is in G.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

NO_HIT_CLICKS = 51
CUTOFF = 500  # the challenge scores the first 500 recommendations


def r_precision(
    recommended: Sequence[str], held_out: Sequence[str], artist_of: Mapping[str, str]
) -> float:
    truth = set(held_out)
    top = list(dict.fromkeys(recommended))[: len(truth)]
    hits = [t for t in top if t in truth]
    truth_artists = {artist_of[t] for t in truth}
    artist_hits = {artist_of.get(t) for t in top if t not in truth} & truth_artists
    return (len(hits) + 0.25 * len(artist_hits)) / len(truth)


def ndcg(recommended: Sequence[str], held_out: Sequence[str]) -> float:
    truth = set(held_out)
    if not truth:
        return 0.0
    ranks = [i for i, t in enumerate(dict.fromkeys(recommended[:CUTOFF]), 1) if t in truth]
    dcg = sum(1.0 / math.log2(rank + 1) for rank in ranks)
    idcg = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(truth), CUTOFF) + 1))
    return dcg / idcg


def clicks(recommended: Sequence[str], held_out: Sequence[str]) -> int:
    truth = set(held_out)
    for rank, track in enumerate(recommended[:CUTOFF], 1):
        if track in truth:
            return (rank - 1) // 10
    return NO_HIT_CLICKS


@dataclass(frozen=True)
class Summary:
    mean: float
    ci95: float  # half-width of the normal-approximation 95% interval
    count: int


def summarise(values: Iterable[float]) -> Summary:
    values = list(values)
    n = len(values)
    if n == 0:
        return Summary(float("nan"), float("nan"), 0)
    mean = sum(values) / n
    if n == 1:
        return Summary(mean, float("nan"), 1)
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return Summary(mean, 1.96 * math.sqrt(variance / n), n)
