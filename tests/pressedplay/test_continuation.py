"""`generate IMG --continue TRECS_RUN`: the picture's nearest tracks, continued by a trecs
transformer and reranked toward the picture. On a synthetic MPD built with audio
features (`trecs synth-mpd`, `build-db --features`) and a briefly trained run; the
picture goes through the colour prior; trecs' absence is tested in a real subprocess."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import requests

from pressedplay import catalog_csv, feedback
from pressedplay.continuation import DEFAULT_FEATURE_WEIGHT, Continuer, blend, load_continuer
from pressedplay.features import NAMES
from pressedplay.picture import Continuation
from pressedplay.server import create_app, running
from trecs.build_db import build_database
from trecs.config import LossConfig, ModelConfig, OptimizerConfig, TrainConfig
from trecs.generate import Generator, Settings
from trecs.synth import synth_mpd
from trecs.train import train
from trecs.vocab import Vocabulary

EXAMPLE = Path(__file__).parents[2] / "examples" / "sunset.jpg"
REAL_SLICE = Path(__file__).parents[1] / "trecs" / "fixtures" / "mpd.slice.0-999.json"


@pytest.fixture(scope="module")
def trecs_run(tmp_path_factory) -> dict[str, Path]:
    """A synthetic MPD with features, its database, and a run trained for a few seconds."""
    root = tmp_path_factory.mktemp("continuation")
    synth_mpd(root / "mpd", playlists=800, tracks=1200, seed=3)
    catalog = root / "mpd" / "catalog.csv"
    build_database(root / "mpd.db", [root / "mpd"], features=catalog, workers=1)
    tiny = ModelConfig(num_layers=1, num_heads=2, features=32, hidden=64, context=20, dropout=0)
    config = TrainConfig(
        db=root / "mpd.db",
        model=tiny,
        loss=LossConfig(name="full"),  # exact softmax: affordable at 1,200 tracks, learns fast
        optimizer=OptimizerConfig(lr=3e-3),
        batch_size=32,
        num_steps=200,
        log_every=200,
        eval_every=200,
        checkpoint_every=200,
        data_workers=0,
    )
    train(root / "run", config)
    return {"root": root, "run": root / "run", "db": root / "mpd.db", "catalog": catalog}


@pytest.fixture(scope="module")
def continuer(trecs_run) -> Continuer:
    return load_continuer(trecs_run["run"], trecs_run["db"])


def a_target(continuer: Continuer, row: int) -> dict[str, float]:
    """The features of one of the run's tracks: a point where real predictions land."""
    return {name: float(v) for name, v in zip(NAMES, continuer.index.features[row], strict=True)}


def test_seeds_are_the_nearest_known_tracks_one_per_artist(continuer, trecs_run):
    target = a_target(continuer, 17)
    result = continuer.continue_playlist(target, n=12, seeds=4)
    # Brute force from the database itself, standardised over the vocabulary's tracks.
    vocab = set(Vocabulary.load(trecs_run["run"] / "vocab.npz").track_ids.tolist())
    with closing(sqlite3.connect(trecs_run["db"])) as conn:
        found = conn.execute(
            f"SELECT t.id, t.uri, t.artist_id, {', '.join(NAMES)} FROM tracks t "
            "WHERE t.danceability IS NOT NULL"
        ).fetchall()
    rows = [row[1:] for row in found if row[0] in vocab]
    assert len(rows) == len(continuer.tokens) > 1000
    x = np.array([r[2:] for r in rows], float)
    z = (x - x.mean(0)) / x.std(0)
    q = (np.array([target[n] for n in NAMES]) - x.mean(0)) / x.std(0)
    distance = np.linalg.norm(z - q, axis=1)
    expected, artists = [], set()
    for i in np.argsort(distance, kind="stable"):
        if rows[i][1] not in artists:
            artists.add(rows[i][1])
            expected.append(rows[i][0].rsplit(":", 1)[1])
        if len(expected) == 4:
            break
    assert [s["id"] for s in result["seeds"]] == expected
    assert result["seeds"][0]["distance"] == pytest.approx(0.0, abs=1e-5)  # the track itself
    tracks = result["tracks"]
    assert len(tracks) == 12 and len({t["id"] for t in tracks}) == 12
    assert not {t["id"] for t in tracks} & set(expected)
    assert max(Counter(t["artist"] for t in tracks).values()) <= 2
    assert all(t["score"] < 0 and 1 <= t["rank"] <= 100 for t in tracks)
    assert all(t["url"] == "https://open.spotify.com/track/" + t["id"] for t in tracks)


def test_weight_zero_is_the_transformers_own_greedy_continuation(continuer, trecs_run):
    """Without the artist cap and the feature term, the full forward pass used here picks
    exactly what trecs' cached decoder picks greedily."""
    target = a_target(continuer, 301)
    result = continuer.continue_playlist(target, n=10, feature_weight=0, max_per_artist=10**6)
    assert [t["rank"] for t in result["tracks"]] == [1] * 10
    trained = continuer.trained
    seeds = [int(continuer.tokens[continuer.row_of_id[s["id"]]]) for s in result["seeds"]]
    picks = Generator(
        trained.model, trained.table, len(trained.vocab), trained.bias
    ).continue_playlist(seeds, Settings(length=10, greedy=True))
    rows = continuer.row_of_token[picks]
    assert [continuer.index.ids[r] for r in rows] == [t["id"] for t in result["tracks"]]


def test_runs_are_loaded_once_per_version(continuer, trecs_run):
    assert load_continuer(trecs_run["run"]) is continuer  # the run's own database
    assert load_continuer(trecs_run["run"], trecs_run["db"]) is continuer


def test_blend_is_zero_weight_transformer_and_unit_weight_distance():
    log_p = np.array([-1.0, -2.0, -4.0])
    distance = np.array([3.0, 1.0, 2.0])
    assert np.argmax(blend(log_p, distance, 0.0)) == 0
    assert np.argmax(blend(log_p, distance, 1.0)) == 1
    assert np.allclose(blend(log_p, np.ones(3), 1.0), 0.0)  # no spread: no preference


def _train_cooccurrence(db: Path) -> tuple[dict[str, int], np.ndarray]:
    """Cosine co-occurrence n_ij / sqrt(n_i n_j) of tracks over the train playlists."""
    with closing(sqlite3.connect(db)) as conn:
        pairs = conn.execute(
            "SELECT t.uri, m.playlist_id FROM playlist_track_memberships m "
            "JOIN tracks t ON t.id = m.track_id "
            "JOIN split_memberships s ON s.playlist_id = m.playlist_id "
            "JOIN splits ON splits.id = s.split_id AND splits.name = 'train'"
        ).fetchall()
    index: dict[str, int] = {}
    playlists: dict[int, int] = {}
    cells = [
        (
            index.setdefault(uri.rsplit(":", 1)[1], len(index)),
            playlists.setdefault(p, len(playlists)),
        )
        for uri, p in pairs
    ]
    member = np.zeros((len(index), len(playlists)), np.float32)
    member[tuple(np.array(cells).T)] = 1
    counts = member @ member.T
    norms = np.sqrt(np.diag(counts))
    return index, counts / np.outer(norms, norms)


def test_feature_weight_moves_toward_the_picture_and_keeps_coherence(continuer, trecs_run):
    """Measured over 16 targets, 20 tracks each, against two references over the same
    tracks: the nearest by features alone (what `generate` without --continue does) and
    random tracks. Coherence: the tracks' mean pairwise co-occurrence in train playlists,
    the share of the playlist's commonest planted genre, and the transformer's own view."""
    index, cooccurrence = _train_cooccurrence(trecs_run["db"])
    with trecs_run["catalog"].open() as handle:
        genre = {row["track_id"]: row["playlist_genre"] for row in csv.DictReader(handle)}
    rng = np.random.default_rng(0)
    targets = [a_target(continuer, int(r)) for r in rng.choice(len(continuer.tokens), 16, False)]
    n = 20

    def measure(playlists: list[dict]) -> dict[str, float]:
        far, co, purity, log_p, rank = [], [], [], [], []
        for result in playlists:
            tracks = result["tracks"]
            rows = [continuer.row_of_id[t["id"]] for t in tracks]
            query = continuer.index.standardise(result["features"])
            far.append(np.linalg.norm(continuer.index.matrix[rows].mean(0) - query))
            ids = [index[t["id"]] for t in tracks]
            pairs = cooccurrence[np.ix_(ids, ids)]
            co.append((pairs.sum() - np.trace(pairs)) / (n * (n - 1)))
            purity.append(Counter(genre[t["id"]] for t in tracks).most_common(1)[0][1] / n)
            log_p += [t.get("score", np.nan) for t in tracks]
            rank += [t.get("rank", np.nan) for t in tracks]
        return {
            "mean features to target": float(np.mean(far)),
            "distance per track": float(
                np.mean([t["distance"] for r in playlists for t in r["tracks"]])
            ),
            "co-occurrence": float(np.mean(co)),
            "genre purity": float(np.mean(purity)),
            "log p": float(np.mean(log_p)),
            "rank": float(np.mean(rank)),
        }

    started = time.perf_counter()
    by_weight = {
        w: measure([continuer.continue_playlist(t, n=n, feature_weight=w) for t in targets])
        for w in (0.0, DEFAULT_FEATURE_WEIGHT, 1.0)
    }
    seconds = (time.perf_counter() - started) / (3 * len(targets))

    def reference(target: dict[str, float], rows) -> dict:
        """A playlist of given index rows, shaped like a continuation for `measure`."""
        query = continuer.index.standardise(target)
        distance = np.linalg.norm(continuer.index.matrix[rows] - query, axis=1)
        tracks = [
            {"id": continuer.index.ids[r], "distance": float(d)}
            for r, d in zip(rows, distance, strict=True)
        ]
        return {"features": target, "tracks": tracks}

    nearest = [
        reference(t, [continuer.row_of_id[h.id] for h in continuer.index.search(t, n=n)])
        for t in targets
    ]
    random = [reference(t, rng.choice(len(continuer.tokens), n, False)) for t in targets]
    rows = {f"w={w:g}": m for w, m in by_weight.items()}
    rows["nearest by features"] = measure(nearest)
    rows["random tracks"] = measure(random)
    print(f"\n{seconds * 1000:.0f} ms per 20-track playlist")
    for name, m in rows.items():
        print(f"{name:20s} " + "  ".join(f"{k} {v:.3f}" for k, v in m.items()))

    zero, default, one = by_weight.values()
    near, rand = rows["nearest by features"], rows["random tracks"]
    far = "mean features to target"
    # Toward the picture: monotone, and the default goes a good part of the way.
    assert zero[far] > default[far] > one[far] > near[far]
    assert default[far] < 0.8 * zero[far]
    # Coherence: the transformer learned playlists (far above random tracks); the default
    # keeps most of its co-occurrence and its log-probability, and far more co-occurrence
    # than the nearest tracks by features, which ignore playlists.
    assert zero["co-occurrence"] > 3 * rand["co-occurrence"]
    assert default["co-occurrence"] > 0.8 * zero["co-occurrence"]
    assert default["co-occurrence"] > 1.8 * near["co-occurrence"]
    assert default["log p"] > zero["log p"] - 0.8
    assert default["genre purity"] > near["genre purity"]
    assert one["co-occurrence"] > 1.5 * rand["co-occurrence"]


def test_cli_json_m3u_and_table(cli, trecs_run, continuer, tmp_path):
    args = ("generate", EXAMPLE, "--model", "prior", "--continue", trecs_run["run"])
    args += ("--db", trecs_run["db"], "--n", 6, "--seeds", 3)
    result = cli(*args, "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert set(data) == {
        "features",
        "model",
        "trecs_run",
        "db",
        "feature_weight",
        "seeds",
        "tracks",
    }
    assert data["model"] == "colour prior" and data["feature_weight"] == DEFAULT_FEATURE_WEIGHT
    assert data["trecs_run"] == str(trecs_run["run"].resolve()) and len(data["seeds"]) == 3
    assert [set(t) for t in data["tracks"]] == [
        {"id", "name", "artist", "score", "rank", "distance", "url"}
    ] * 6
    same = continuer.continue_playlist(data["features"], n=6, seeds=3)
    assert same["tracks"] == data["tracks"]
    saved = tmp_path / "playlist.json"
    saved.write_text(result.out)
    assert feedback.parse_playlist(str(saved))[1] == [t["id"] for t in data["tracks"]]

    m3u = cli(*args, "--format", "m3u", "--feature-weight", 1)
    assert m3u.code == 0, m3u.err
    lines = m3u.out.splitlines()
    assert lines[0] == "#EXTM3U" and len(lines) == 13
    assert all(line.startswith("https://open.spotify.com/track/") for line in lines[2::2])

    table = cli(*args, "--candidates", 5)
    assert table.code == 0, table.err
    assert "seeds" in table.out and "continuation" in table.out and "log p" in table.out


def test_cli_bad_input_is_one_line(cli, trecs_run, tmp_path):
    run, db = trecs_run["run"], trecs_run["db"]

    def error(*args) -> str:
        result = cli("generate", EXAMPLE, "--model", "prior", *args)
        assert result.code == 2, (result.out, result.err)
        assert result.err.startswith("error: ") and result.err.count("\n") == 1, result.err
        return result.err

    assert "only go with --continue" in error("--db", db, "--seeds", 3)
    assert "--catalog, --genre do not apply" in error(
        "--continue", run, "--catalog", "x", "--genre", "pop"
    )
    assert "--feature-weight" in error("--continue", run, "--feature-weight", 1.5)
    assert "not a trecs run" in error("--continue", tmp_path, "--db", db)
    assert "no such database" in error("--continue", run, "--db", tmp_path / "none.db")
    # A database of other playlists (the five real ones in trecs' fixtures) lacks the
    # run's tracks; this one without --features has none with audio features.
    build_database(tmp_path / "real.db", [REAL_SLICE], workers=1)
    assert "pass the database the run was trained on" in error(
        "--continue", run, "--db", tmp_path / "real.db"
    )
    build_database(tmp_path / "bare.db", [trecs_run["root"] / "mpd"], workers=1)
    assert "trecs build-db --features" in error("--continue", run, "--db", tmp_path / "bare.db")


def test_cli_saves_the_continuation_to_spotify(cli, trecs_run, spotify_login):
    """No genre filter is looked for (the MPD has none): the playlist is the continuation."""
    result = cli(
        "generate", EXAMPLE, "--model", "prior", "--continue", trecs_run["run"], "--db",
        trecs_run["db"], "--n", 4, "--spotify", "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.err
    data = json.loads(result.out)
    (made,) = spotify_login.created.values()
    assert made.uris == [f"spotify:track:{t['id']}" for t in data["tracks"]]
    assert made.cover and data["spotify"]["url"].endswith(made.id)
    assert not spotify_login.calls("/v1/me/top/")


@pytest.fixture
def served(trecs_run, tmp_path, monkeypatch) -> Iterator[str]:
    """`serve --continue RUN --db DB` with the colour prior, on 127.0.0.1; the run's own
    catalog is the default catalog (the verdicts' playlist features come from it)."""
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    catalog_csv.import_csv(trecs_run["catalog"])
    continuing = Continuation(trecs_run["run"], trecs_run["db"])
    app = create_app(
        model="prior", feedback_db=tmp_path / "feedback.db", env_file=None, continuing=continuing
    )
    with running(app) as base:
        yield base


def test_serve_continues_as_generate_does(served, trecs_run, cli, tmp_path):
    config = requests.get(served + "/api/config", timeout=10).json()
    assert config["trecs_run"] == str(trecs_run["run"]) and config["genres"] == []
    image = {"file": (EXAMPLE.name, EXAMPLE.read_bytes(), "image/jpeg")}
    answer = requests.post(served + "/api/playlist", files=image, data={"n": 6}, timeout=60)
    assert answer.status_code == 200, answer.text
    generated = cli(
        "generate", EXAMPLE, "--model", "prior", "--continue", trecs_run["run"], "--db",
        trecs_run["db"], "--n", 6, "--format", "json",
    )  # fmt: skip
    assert generated.code == 0, generated.err
    assert answer.json() == json.loads(generated.out)
    spec = requests.get(served + "/openapi.json", timeout=10).json()
    shape = spec["paths"]["/api/playlist"]["post"]["responses"]["200"]["content"]
    assert shape["application/json"]["schema"]["$ref"].endswith("/ContinuedPlaylist")

    genre = requests.post(served + "/api/playlist", files=image, data={"genre": "pop"}, timeout=60)
    assert genre.status_code == 400
    assert genre.json()["detail"].startswith("a genre filter does not apply to a continuation")
    ids = [track["id"] for track in answer.json()["tracks"]]
    verdict = {"verdict": "like", "track": ids}
    stored = requests.post(served + "/api/feedback", files=image, data=verdict, timeout=60)
    assert stored.status_code == 200, stored.text
    (row,) = feedback.load(tmp_path / "feedback.db")
    assert row.track_ids == ids and row.playlist_features is not None


@pytest.mark.browser
def test_the_page_shows_the_continuation(browser, served, trecs_run):
    """The web page in headless Chromium against `serve --continue`: the continuation's
    tracks in the API's order, its notice, no genre chips."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def rows() -> list:
        return browser.find_elements(By.CSS_SELECTOR, "#tracks li.track")

    browser.get(served)
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 20).until(lambda _: "trecs run: run" in status.text, "no config")
    browser.find_element(By.ID, "file").send_keys(str(EXAMPLE))
    WebDriverWait(browser, 60).until(lambda _: len(rows()) == 20, "no continuation appeared")
    image = {"file": (EXAMPLE.name, EXAMPLE.read_bytes(), "image/jpeg")}
    expected = requests.post(served + "/api/playlist", files=image, timeout=60).json()
    shown = [row.get_attribute("data-id") for row in rows()]
    assert shown == [track["id"] for track in expected["tracks"]]
    assert "continued by trecs run run from" in browser.find_element(By.TAG_NAME, "body").text
    assert browser.find_elements(By.CSS_SELECTOR, "#genres [data-genre]") == []


def test_serve_continue_takes_generates_settings(
    trecs_run, cli, tmp_path, monkeypatch, serve_child
):
    """`serve --continue` with --seeds, --candidates and --feature-weight answers as
    `generate --continue` does with the same three."""
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(tmp_path / "home"))
    catalog_csv.import_csv(trecs_run["catalog"])
    knobs = ["--seeds", 2, "--candidates", 7, "--feature-weight", 0]
    common = ["--model", "prior", "--continue", trecs_run["run"], "--db", trecs_run["db"]]
    served = serve_child(*common, *knobs)
    image = {"file": (EXAMPLE.name, EXAMPLE.read_bytes(), "image/jpeg")}
    answer = requests.post(served.base + "/api/playlist", files=image, data={"n": 6}, timeout=60)
    assert answer.status_code == 200, answer.text

    def generated(*extra) -> dict:
        result = cli("generate", EXAMPLE, *common, "--n", 6, "--format", "json", *extra)
        assert result.code == 0, result.err
        return json.loads(result.out)

    assert answer.json() == generated(*knobs)
    assert answer.json()["tracks"] != generated()["tracks"]  # the settings made a difference


def test_serve_continue_bad_input_is_one_line(trecs_run, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(tmp_path / "home"))
    catalog_csv.import_csv(trecs_run["catalog"])

    def error(*args) -> str:
        result = cli("serve", "--port", 0, "--model", "prior", *args)
        assert result.code == 2, (result.out, result.err)
        assert result.err.startswith("error: ") and result.err.count("\n") == 1, result.err
        return result.err

    assert "--db only go with --continue TRECS_RUN" in error("--db", trecs_run["db"])
    assert "--seeds only go with --continue TRECS_RUN" in error("--seeds", 3)
    assert "not a trecs run" in error("--continue", tmp_path, "--db", trecs_run["db"])


BLOCKED = """
import importlib.abc, json, sys

class NotInstalled(importlib.abc.MetaPathFinder):  # as if installed without [trecs]

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "trecs":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NotInstalled())
from pressedplay.cli import run
codes = [run(args) for args in json.loads(sys.argv[1])]
print(json.dumps({"codes": codes, "jax": "jax" in sys.modules}), file=sys.stderr)
"""


def test_without_trecs_continue_says_how_to_install_it(trecs_run, tmp_path):
    """In a fresh interpreter where `import trecs` fails: `--continue` is one line naming
    the extra, and the rest of pressedplay (here: a catalog and a plain generate) works
    without ever importing JAX."""
    commands = [
        ["catalog", "import", str(trecs_run["catalog"]), "--name", "synth"],
        ["generate", str(EXAMPLE), "--model", "prior", "--catalog", "synth", "--n", "3"],
        ["generate", str(EXAMPLE), "--model", "prior", "--continue", str(trecs_run["run"])],
    ]
    env = {**os.environ, "PRESSEDPLAY_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED, json.dumps(commands)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    *errors, summary = done.stderr.strip().splitlines()
    assert json.loads(summary) == {"codes": [0, 0, 2], "jax": False}, done.stderr
    assert errors == [
        "error: --continue needs the trecs package, which cannot be imported (No module "
        "named 'trecs'): pip install 'pressedplay[trecs]'"
    ]


def test_continue_keeps_compiled_programs_between_runs(trecs_run, tmp_path):
    """`--continue` compiles trecs programs, kept in the user's cache folder as the trecs
    commands keep theirs (here all of them: no minimum compile time); a second run reads
    them and answers the same."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env |= {
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "PRESSEDPLAY_HOME": str(tmp_path / "home"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    command = [sys.executable, "-c", "from pressedplay.cli import main; main()", "generate"]
    command += [str(EXAMPLE), "--model", "prior", "--continue", str(trecs_run["run"])]
    command += ["--db", str(trecs_run["db"]), "--n", "4", "--format", "json"]

    def generate() -> str:
        return subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout

    kept = tmp_path / "cache" / "trecs" / "jax"
    first = generate()
    entries = sorted(p.name for p in kept.iterdir())
    assert entries
    assert generate() == first
    assert sorted(p.name for p in kept.iterdir()) == entries  # read, not compiled again
