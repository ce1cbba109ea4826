"""Title normalisation and the title model, on synthetic playlists named by genre words."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from trecs.challenge import make_cases
from trecs.evaluate import artists
from trecs.metrics import ndcg, r_precision
from trecs.recommenders import Query, baseline, load
from trecs.titles import TitleModel, normalise, title_key


@pytest.mark.parametrize(
    ("name", "key"),
    [
        # Repeated letters collapse to one, so elongations meet the plain word.
        ("Chill Vibes!! 🌴", "chil vibes"),
        ("chill   vibes", "chil vibes"),
        ("CHILLLL vibessss", "chil vibes"),
        ("  Rock'n'Roll ", "rock n rol"),
        ("Música Latina", "musica latina"),
        ("summer_2000", "sumer 2000"),  # digits are not collapsed
        ("R&B", "r b"),
        ("🔥🔥🔥", ""),
    ],
)
def test_normalise(name, key):
    assert normalise(name) == key


def test_spellings_of_one_title_share_a_key():
    assert normalise("Chill Vibes!! 🌴") == normalise("chill vibes") == normalise("chilll vibes")
    assert title_key("🎄 ") == "🎄"  # symbols alone still name a title
    assert title_key(None) == ""


def _playlists() -> tuple[list[str], sp.csr_matrix, np.ndarray]:
    """Six playlists over tokens 3..8: "rock" ones hold 3 and 4, "party" ones 5 and 6."""
    keys = ["rock", "rock", "classic rock", "party", "party", "party hits"]
    rows = [[3, 4], [3, 4, 7], [4, 8], [5, 6], [5, 6], [6, 7]]
    matrix = sp.csr_matrix(
        (
            np.ones(sum(map(len, rows)), np.float32),
            (np.repeat(range(6), [len(r) for r in rows]), np.concatenate(rows)),
        ),
        shape=(6, 9),
    )
    counts = np.asarray(matrix.sum(axis=0)).ravel()
    return keys, matrix, counts


def test_known_titles_count_their_playlists():
    model = TitleModel(*_playlists(), power=4.0)
    scores = model.scores(["Rock!"]).toarray()[0]
    assert scores[3] > scores[8] > 0  # "rock" itself first, "classic rock" backs it up
    assert scores[5] == scores[6] == 0  # nothing of the party playlists
    assert model.scores([None]).sum() == 0  # no title, no evidence


def test_unseen_titles_back_off_to_similar_ones():
    model = TitleModel(*_playlists())
    scores = model.scores(["Party Time"]).toarray()[0]
    assert scores[5] > 0 and scores[6] > scores[3]
    recs = model.recommend([[6]], ["party time"], 4)[0].tolist()
    assert recs[0] == 5 and 6 not in recs  # seeds never come back


def test_no_title_and_no_seeds_is_popularity(db):
    title, popularity = baseline("title", db), baseline("popularity", db)
    query = [Query(1, None, ())]
    assert title.recommend(query, 50)[0].tolist() == popularity.recommend(query, 50)[0].tolist()


def test_title_model_beats_popularity_on_titled_playlists(db):
    cases = make_cases(db, "test", None, 0, (1,))
    assert len(cases) >= 30
    artist_of = artists(db)
    scores = {}
    for name in ("title", "popularity"):
        recs = load(name, db).recommend([c.query for c in cases], 500)
        scores[name] = [
            np.mean(
                [
                    r_precision(r.tolist(), c.held_out, artist_of)
                    for r, c in zip(recs, cases, strict=True)
                ]
            ),
            np.mean([ndcg(r.tolist(), c.held_out) for r, c in zip(recs, cases, strict=True)]),
        ]
    assert scores["title"][0] > 1.5 * scores["popularity"][0]
    assert scores["title"][1] > 1.5 * scores["popularity"][1]


def test_evaluate_title_baseline(cli, db):
    result = cli(
        "evaluate", "title", "--db", db, "--num-playlists", 40, "--categories", "1,2", "--json"
    )
    assert result.code == 0, result.err
    assert result.json()["metrics"]["title"]["all"]["ndcg"]["mean"] > 0


def test_a_title_keeps_its_most_counted_tracks_and_values_blend_popularity():
    keys, matrix, counts = _playlists()
    full, cut = (
        TitleModel(keys, matrix, counts),
        TitleModel(keys, matrix, counts, tracks_per_title=1),
    )
    assert (np.diff(cut.title_tracks.indptr) <= 1).all()
    assert cut.title_tracks.sum() > 0 and full.title_tracks.nnz > cut.title_tracks.nnz
    evidence = full.scores(["rock", None])
    values, best = full.values(evidence)
    assert best[1] == 0 and values[1].nnz == 0
    row = evidence.toarray()[0]
    expected = row / row.max() + full.prior * full.popularity
    np.testing.assert_allclose(values.toarray()[0][row > 0], expected[row > 0], rtol=1e-6)


_FIT_AND_SCORE = """
import hashlib, sys
from pathlib import Path
from trecs.titles import title_model
scores = title_model(Path(sys.argv[1])).scores(["summer rock hits", "chil", "throwbacks 2016"])
print(hashlib.sha256(scores.data.tobytes() + scores.indices.tobytes()).hexdigest())
"""


def test_scores_do_not_depend_on_the_processs_string_hashing(db):
    """Python seeds its string hashes per process, and so its set orders: features
    numbered in set order summed similarities in another order in each process, and two
    `train-ranker` runs differed by a float ulp in a split threshold."""
    digests = {
        subprocess.run(
            [sys.executable, "-c", _FIT_AND_SCORE, str(db)],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for hash_seed in ("1", "2", "3")
    }
    assert len(digests) == 1, digests
