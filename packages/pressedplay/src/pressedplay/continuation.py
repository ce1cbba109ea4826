"""A picture's playlist continued by a trecs transformer, reranked toward the picture.

`pressedplay generate IMG --continue TRECS_RUN` joins the two libraries:

1. The picture's predicted features are compared with the tracks that the run's
   vocabulary knows and that carry audio features in the trecs database (`trecs build-db
   --features`), in those tracks' standardised feature space (`retrieval.CatalogIndex`:
   each feature minus their mean, over their standard deviation). The `seeds` nearest,
   one per artist, start the playlist (nearest first).
2. The transformer reads `<start>`, the seeds and the tracks picked so far, and its
   `candidates` most probable next tracks (among the tracks with features, not yet used,
   under the artist cap) are reranked by

       blend = (1 - w) * z(log p) - w * z(distance)

   where `log p` is the transformer's log-probability of the track (softmax over all the
   vocabulary's tracks), `distance` its Euclidean distance to the picture's features in
   the standardised space, and z() standardises each over that step's candidates (minus
   their mean, over their standard deviation), so that `w` weighs two quantities on the
   same scale. The best blend is appended and the step repeats until `n` tracks. At most
   `max_per_artist` tracks per artist, and a song listed under several ids counts once.

`w = 0` is the transformer's greedy continuation; `w = 1` takes, among the transformer's
candidates, the track nearest the picture. The candidates always come from the
transformer, so even `w = 1` stays among what it finds plausible after the playlist so
far; the default `w` was chosen by measuring both sides on synthetic data (README).

trecs (JAX) is an optional dependency (`pressedplay[trecs]`): it is imported only here,
only when asked for, and its absence is one line saying how to install it.
"""

from __future__ import annotations

import functools
import importlib
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pressedplay import inputs
from pressedplay.errors import UserError
from pressedplay.features import NAMES
from pressedplay.paths import file_version
from pressedplay.retrieval import TRACK_URL, CatalogIndex

if TYPE_CHECKING:
    from trecs.checkpoints import TrainedModel

DEFAULT_FEATURE_WEIGHT = 0.6
DEFAULT_SEEDS = 5
DEFAULT_CANDIDATES = 100
INSTALL = "pip install 'pressedplay[trecs]'"


def require_trecs() -> None:
    """Fail before any work, with one line, when the optional trecs extra is missing."""
    try:
        # What --continue uses, JAX and Flax included.
        for module in ("trecs", "trecs.checkpoints", "trecs.generate"):
            importlib.import_module(module)
    except ImportError as exc:
        raise UserError(
            f"--continue needs the trecs package, which cannot be imported ({exc}): {INSTALL}"
        ) from None


@contextmanager
def _trecs_errors() -> Iterator[None]:
    """trecs' own UserError (a missing run, a foreign database) as pressedplay's."""
    from trecs.errors import UserError as TrecsError

    try:
        yield
    except TrecsError as exc:
        raise UserError(str(exc)) from None


def blend(log_p: np.ndarray, distance: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) * z(log_p) - weight * z(distance), z over the given candidates."""
    return (1.0 - weight) * _z(log_p) - weight * _z(distance)


def _z(values: np.ndarray) -> np.ndarray:
    std = values.std()
    return (values - values.mean()) / std if std > 0 else np.zeros_like(values)


class Continuer:
    """A trecs run and the tracks of its vocabulary that have audio features, loaded once
    and queried for any number of pictures."""

    def __init__(self, run_dir: Path, db: Path | None = None) -> None:
        """`db`: the trecs database the run was trained on (default: the run's own)."""
        require_trecs()
        from trecs.checkpoints import load_run

        with _trecs_errors():
            trained = load_run(run_dir)
            self.db = Path(db or trained.config.db)
            self._load_tracks(trained, run_dir)
        self.run_dir = run_dir
        self.trained = trained
        self._compile(trained)

    def _load_tracks(self, trained: TrainedModel, run_dir: Path) -> None:
        """The run's tracks that carry all eight features in the database, as an index."""
        from trecs.config import UNK
        from trecs.db import connect

        token_of = trained.vocab.token_of()
        conn = connect(self.db)
        try:
            last_id = int(trained.vocab.track_ids.max(initial=0))
            if conn.execute("SELECT 1 FROM tracks WHERE id = ?", (last_id,)).fetchone() is None:
                raise UserError(
                    f"{self.db}: lacks tracks of {run_dir}'s vocabulary; "
                    "pass the database the run was trained on (--db)"
                )
            known = " AND ".join(f"t.{name} IS NOT NULL" for name in NAMES)
            cursor = conn.execute(
                f"SELECT t.id, t.uri, t.name, t.artist_id, a.name, {', '.join(NAMES)} "
                f"FROM tracks t JOIN artists a ON a.id = t.artist_id WHERE {known} ORDER BY t.id"
            )
            rows = [
                (int(token_of[row[0]]), *row[1:])
                for row in cursor
                if row[0] < len(token_of) and token_of[row[0]] != UNK
            ]
        finally:
            conn.close()
        if not rows:
            raise UserError(
                f"{self.db}: none of the run's {len(trained.vocab.track_ids):,} tracks has "
                "audio features (build it with `trecs build-db --features CATALOG.csv`)"
            )
        tokens, uris, names, artist_ids, artists, *features = zip(*rows, strict=True)
        ids = [uri.rsplit(":", 1)[-1] for uri in uris]
        self.index = CatalogIndex.from_arrays(ids, names, artists, np.array(features).T)
        self.tokens = np.asarray(tokens, np.int64)
        self.artist_ids = np.asarray(artist_ids, np.int64)
        songs: dict[tuple[int, str], int] = {}
        # One song under several ids (single, album) counts once, as in CatalogIndex.
        self.songs = np.array(
            [
                songs.setdefault((a, n.casefold()), len(songs))
                for a, n in zip(artist_ids, names, strict=True)
            ]
        )
        self.row_of_id = {track_id: row for row, track_id in enumerate(ids)}
        self.row_of_token = np.full(len(trained.vocab), -1, np.int64)
        self.row_of_token[self.tokens] = np.arange(len(tokens))
        self.vocab_size = len(trained.vocab)

    def _compile(self, trained: TrainedModel) -> None:
        """One jitted step: log-probabilities of the next token, the best allowed ones."""
        import jax
        import jax.numpy as jnp
        from flax import nnx

        from trecs.config import NUM_SPECIAL
        from trecs.generate import top_k

        vocab_size = self.vocab_size
        graphdef, self._params = nnx.split(trained.model)
        self._table = trained.table
        # The run's per-track logit bias (its learned popularity), zero for runs without.
        self._bias = jnp.zeros(trained.table.shape[0]) if trained.bias is None else trained.bias
        self.context = trained.model.config.context
        mean = trained.model.config.readout == "mean"

        @functools.partial(jax.jit, static_argnums=6)
        def best(params, table, bias, tokens, last, allowed, k: int):
            model = nnx.merge(graphdef, params)
            states = model(table[tokens][None], deterministic=True)[0]
            if mean:  # the run reads a playlist as trecs does: the mean over its positions
                seen = (jnp.arange(states.shape[0]) <= last)[:, None]
                hidden = jnp.sum(states * seen, axis=0) / (last + 1)
            else:
                hidden = states[last]
            # Over tracks only: training never scores <eop>/<start>/<unk> rows as outputs
            # (their logits are meaningless) and generation never emits them.
            log_p = jax.nn.log_softmax(
                table[NUM_SPECIAL:vocab_size] @ hidden + bias[NUM_SPECIAL:vocab_size]
            )
            log_p = jnp.concatenate([jnp.full(NUM_SPECIAL, -jnp.inf), log_p])
            return top_k(jnp.where(allowed, log_p, -jnp.inf), k)

        self._best = best

    def _next(self, history: list[int], allowed: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
        """The transformer's k most probable allowed next tokens and their log-probabilities,
        reading the most recent `context` tokens of `history`."""
        from trecs.config import EOP

        window = history[-self.context :]
        tokens = np.full(self.context, EOP, np.int32)
        tokens[: len(window)] = window
        values, rows = self._best(
            self._params, self._table, self._bias, tokens, np.int32(len(window) - 1), allowed, k
        )
        values, rows = np.asarray(values, np.float64), np.asarray(rows)
        keep = np.isfinite(values)
        return values[keep], rows[keep]

    def continue_playlist(
        self,
        features: Mapping[str, float],
        *,
        n: int = 20,
        feature_weight: float = DEFAULT_FEATURE_WEIGHT,
        seeds: int = DEFAULT_SEEDS,
        candidates: int = DEFAULT_CANDIDATES,
        max_per_artist: int = 2,
    ) -> dict:
        """Seeds nearest to `features` (original units), then `n` tracks continued by the
        transformer and reranked by the blend (module docstring). Fewer than `n` tracks
        only when the run has no more allowed tracks with features."""
        from trecs.config import START

        for name, value, low in (
            ("tracks", n, 1),
            ("seeds", seeds, 1),
            ("candidates", candidates, 1),
            ("tracks per artist", max_per_artist, 1),
        ):
            if value < low:
                raise UserError(f"the number of {name} must be at least {low}, not {value}")
        if not 0.0 <= feature_weight <= 1.0:
            raise UserError(f"the feature weight must be between 0 and 1, not {feature_weight}")
        query = self.index.standardise(features)
        hits = self.index.search(features, n=seeds, max_per_artist=1)
        seed_rows = [self.row_of_id[hit.id] for hit in hits]

        allowed = np.zeros(self.vocab_size, bool)
        allowed[self.tokens] = True
        for row in seed_rows:
            allowed[self.tokens[self.songs == self.songs[row]]] = False
        history = [START, *(int(self.tokens[row]) for row in seed_rows)]
        per_artist: Counter[int] = Counter()
        k = min(candidates, len(self.tokens))
        tracks: list[dict] = []
        while len(tracks) < n:
            log_p, tokens = self._next(history, allowed, k)
            if len(tokens) == 0:
                break
            rows = self.row_of_token[tokens]
            distance = self.index.distances(rows, query)
            choice = int(np.argmax(blend(log_p, distance, feature_weight)))
            row = int(rows[choice])
            tracks.append(
                {
                    **self._describe(row, float(distance[choice])),
                    "score": float(log_p[choice]),
                    "rank": choice + 1,
                }
            )
            history.append(int(tokens[choice]))
            allowed[self.tokens[self.songs == self.songs[row]]] = False
            artist = int(self.artist_ids[row])
            per_artist[artist] += 1
            if per_artist[artist] >= max_per_artist:
                allowed[self.tokens[self.artist_ids == artist]] = False
        return {
            "features": {name: float(features[name]) for name in NAMES},
            "trecs_run": str(self.run_dir),
            "db": str(self.db),
            "feature_weight": feature_weight,
            "seeds": [self._describe(self.row_of_id[h.id], h.distance) for h in hits],
            "tracks": tracks,
        }

    def _describe(self, row: int, distance: float) -> dict:
        track_id = self.index.ids[row]
        return {
            "id": track_id,
            "name": self.index.names[row],
            "artist": self.index.artists[row],
            "distance": distance,
            "url": TRACK_URL + track_id,
        }


def load_continuer(run_dir: Path, db: Path | None = None) -> Continuer:
    """A Continuer, loaded once per version of the run's checkpoints and of the database
    (the web server and repeated calls ask again and again)."""
    require_trecs()
    from trecs.config import TrainConfig

    config = run_dir / "config.json"
    if db is None and config.is_file():
        try:
            db = TrainConfig.model_validate_json(inputs.read_text(config, inputs.MAX_JSON)).db
        except ValueError:
            raise UserError(f"{config}: not a trecs run configuration") from None
    return _cached(file_version(run_dir / "checkpoints"), file_version(db) if db else None)


@functools.lru_cache(maxsize=2)
def _cached(checkpoints: tuple[str, int, int], db: tuple[str, int, int] | None) -> Continuer:
    return Continuer(Path(checkpoints[0]).parent, Path(db[0]) if db else None)
