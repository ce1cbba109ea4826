"""Popularity and co-occurrence baselines on playlists small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from trecs.baselines import (
    Cooccurrence,
    PlaylistKNN,
    Popularity,
    entries,
    parallel_product,
    playlist_matrix,
    ranked_rows,
    top_per_row,
    without_seeds,
)

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
    scores = model.scores([[3]]).toarray()[0]
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
    both = model.scores([[3, 6]]).toarray()[0]
    np.testing.assert_allclose(
        both, model.scores([[3]]).toarray()[0] + model.scores([[6]]).toarray()[0], rtol=1e-6
    )


def test_playlist_knn_votes_with_cosine_similarity():
    model = PlaylistKNN(playlist_matrix(PLAYLISTS, NUM_TOKENS), neighbours=2)
    scores = model.scores([[3]]).toarray()[0]
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
    together = model.scores(batch).toarray()
    for row, seeds in enumerate(batch):
        np.testing.assert_allclose(together[row], model.scores([seeds]).toarray()[0], rtol=1e-6)
    model.chunk = 2
    assert (
        model.recommend(batch, 5).tolist()
        == kind(playlist_matrix(PLAYLISTS, NUM_TOKENS)).recommend(batch, 5).tolist()
    )


def test_top_per_row_keeps_the_largest_and_breaks_ties_to_the_smaller_column():
    matrix = sp.csr_matrix(np.array([[0, 3, 1, 3, 3, 2], [5, 0, 0, 0, 0, 0], [0] * 6], np.float32))
    top = top_per_row(matrix, 2).toarray()
    assert top.tolist() == [[0, 3, 0, 3, 0, 0], [5, 0, 0, 0, 0, 0], [0] * 6]
    columns, values = ranked_rows(matrix, 3)
    assert columns.tolist() == [[1, 3, 4], [0, 0, 0], [0, 0, 0]]
    assert values[0].tolist() == [3, 3, 3]
    assert values[1, 0] == 5 and np.isneginf(values[1, 1:]).all() and np.isneginf(values[2]).all()


def test_without_seeds_drops_seeds_specials_and_non_positive_scores_per_row():
    matrix = sp.csr_matrix(np.array([[1, 0, 0, 2, 3, -1], [0, 0, 0, 2, 3, 4]], np.float32))
    kept = without_seeds(matrix, [[4], [5, 0]]).toarray()
    assert kept.tolist() == [[0, 0, 0, 2, 0, 0], [0, 0, 0, 2, 3, 0]]


def test_cooccurrence_samples_the_playlists_of_a_seed_above_the_cap():
    """Over the cap the counts are an unbiased estimate; below it they stay exact."""
    rng = np.random.default_rng(0)
    # Token 3 in all 400 playlists, with one of tokens 4..13 each; token 14 in 20 of them.
    playlists = [np.array([3, 4 + i % 10] + ([14] if i < 20 else [])) for i in range(400)]
    rng.shuffle(playlists)
    matrix = playlist_matrix(playlists, 15)
    exact = Cooccurrence(matrix, max_playlists=None).scores([[3], [14]]).toarray()
    sampled = Cooccurrence(matrix, max_playlists=100).scores([[3], [14]]).toarray()
    np.testing.assert_allclose(sampled[1], exact[1], rtol=1e-6)  # 14: 20 playlists, exact
    assert sampled[0, 4:14].sum() == pytest.approx(exact[0, 4:14].sum(), rel=1e-5)
    error = np.abs(sampled[0, 4:14] - exact[0, 4:14])
    assert 0 < error.mean() < 0.3 * exact[0, 4:14].mean()  # sampled, and not far off
    again = Cooccurrence(matrix, max_playlists=100).scores([[3]]).toarray()[0]
    np.testing.assert_array_equal(again, sampled[0])  # the sample is fixed


def test_entries_and_the_parallel_product_match_scipy():
    rng = np.random.default_rng(1)
    left = sp.random(9, 40, density=0.3, format="csr", dtype=np.float32, random_state=rng)
    right = sp.random(40, 30, density=0.2, format="csr", dtype=np.float32, random_state=rng)
    product = parallel_product(left, right)
    np.testing.assert_allclose(product.toarray(), (left @ right).toarray(), rtol=1e-6)
    rows = np.sort(rng.integers(0, 9, 50))
    columns = rng.integers(0, 30, 50)
    np.testing.assert_allclose(entries(product, rows, columns), product.toarray()[rows, columns])
