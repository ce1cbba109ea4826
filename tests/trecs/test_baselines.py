"""Popularity and co-occurrence baselines on playlists small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest

from trecs.baselines import Cooccurrence, PlaylistKNN, Popularity, playlist_matrix

# Tokens 3.. are tracks. 3 and 4 always together; 5 with 3 once; 6 popular alone.
PLAYLISTS = [np.array(p) for p in ([3, 4], [3, 4, 5], [6, 7], [6, 8], [6, 9], [3, 4, 3])]
NUM_TOKENS = 10


def test_playlist_matrix_is_binary_without_specials():
    matrix = playlist_matrix([np.array([0, 1, 3, 3, 4])], NUM_TOKENS).toarray()
    assert matrix.tolist() == [[0, 0, 0, 1, 1, 0, 0, 0, 0, 0]]


def test_popularity_excludes_seeds_and_specials():
    counts = np.array([100, 100, 100, 3, 3, 1, 3, 1, 1, 1])
    recs = Popularity(counts).recommend([[3], []], 4)
    assert recs[0].tolist() == [4, 6, 5, 7]
    assert recs[1].tolist() == [3, 4, 6, 5]


def test_cooccurrence_is_cosine_normalised_and_popularity_filled():
    model = Cooccurrence(playlist_matrix(PLAYLISTS, NUM_TOKENS))
    scores = model.scores([[3]])[0]
    # n_3 = 3 playlists, n_4 = 3, n_34 = 3 -> 1; n_5 = 1, n_35 = 1 -> 1/sqrt(3).
    assert scores[4] == pytest.approx(1.0)
    assert scores[5] == pytest.approx(1 / np.sqrt(3))
    assert scores[6] == 0.0
    recs = model.recommend([[3]], 4)[0].tolist()
    assert recs[:2] == [4, 5]  # co-occurring first
    assert recs[2] == 6  # then the most popular track
    assert 3 not in recs


def test_cooccurrence_sums_over_seeds():
    model = Cooccurrence(playlist_matrix(PLAYLISTS, NUM_TOKENS))
    both = model.scores([[3, 6]])[0]
    np.testing.assert_allclose(both, model.scores([[3]])[0] + model.scores([[6]])[0], rtol=1e-6)


def test_playlist_knn_votes_with_cosine_similarity():
    model = PlaylistKNN(playlist_matrix(PLAYLISTS, NUM_TOKENS), neighbours=2)
    scores = model.scores([[3]])[0]
    # Playlists containing 3: [3,4] (cos 1/sqrt(2)), [3,4,5] (1/sqrt(3)), [3,4] again
    # (1/sqrt(2)); the 2 nearest are the two [3,4]: token 4 gets 2/sqrt(2), 5 nothing.
    assert scores[4] == pytest.approx(2 / np.sqrt(2))
    assert scores[5] == 0.0
    recs = model.recommend([[3]], 3)[0].tolist()
    assert recs[0] == 4 and 3 not in recs
    assert recs[1] == 6  # popularity fill


@pytest.mark.parametrize("kind", [Cooccurrence, PlaylistKNN])
def test_batched_scores_equal_one_list_at_a_time(kind):
    """Chunked scoring must not mix lists: each row as if scored alone, empty lists too."""
    model = kind(playlist_matrix(PLAYLISTS, NUM_TOKENS))
    batch = [[3], [6, 9], [], [4, 5, 0, 2], [3, 3]]
    together = model.scores(batch)
    for row, seeds in enumerate(batch):
        np.testing.assert_allclose(together[row], model.scores([seeds])[0], rtol=1e-6)
    model.chunk = 2
    assert (
        model.recommend(batch, 5).tolist()
        == kind(playlist_matrix(PLAYLISTS, NUM_TOKENS)).recommend(batch, 5).tolist()
    )
