"""Feedback: the sqlite store, playlist files, the loss, and fine-tuning that moves predictions."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
from contextlib import closing

import numpy as np
import pytest
import torch
from PIL import Image

from pressedplay import checkpoints, feedback
from pressedplay.augment import eval_transform
from pressedplay.config import TrainConfig
from pressedplay.errors import UserError
from pressedplay.features import NAMES
from pressedplay.loader import load_image
from pressedplay.playlist import to_m3u
from pressedplay.synth_covers import synth_covers
from pressedplay.train import BEFORE_FEEDBACK, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

IDS = ["4uLU6hMCjMI75M1A2tKUQC", "7ouMYWpwJ422jRcDASZB7P", "0VjIjW4GlUZAMYd2vXMi3b"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PRESSEDPLAY_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def db(home):
    path = home / "covers.db"
    synth_covers(path, covers=150, tracks_per_cover=4, seed=3, catalog_name="fb")
    return path


@pytest.fixture(scope="module")
def base_run(db, home):
    run_dir = home / "base"
    train(small(epochs=2), run_dir, db)
    return run_dir


def small(**options) -> TrainConfig:
    return TrainConfig(
        **{"epochs": 2, "batch_size": 16, "image_size": 32, "workers": 0, "device": "cpu"} | options
    )


def png(colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), colour).save(buffer, "PNG")
    return buffer.getvalue()


PREDICTED = dict(zip(NAMES, (0.1, 0.5, 0.7, 0.0, 0.1, -6.0, 0.05, 0.8), strict=True))


def test_record_and_load(tmp_path):
    path = tmp_path / "deep" / "feedback.db"
    first = feedback.record(
        path, image=png(), image_name="a.png", model="colour prior", predicted=PREDICTED,
        verdict="like",
    )  # fmt: skip
    second = feedback.record(
        path,
        image=png((0, 0, 255)),
        image_name="b.png",
        model="vae run/best.pt",
        predicted=PREDICTED,
        verdict="dislike",
        playlist_ref="out.json",
        track_ids=IDS,
        playlist_features={**PREDICTED, "energy": 0.2},
    )
    assert (first, second) == (1, 2)
    a, b = feedback.load(path)
    assert (a.id, a.image, a.image_name, a.model, a.verdict) == (
        1,
        png(),
        "a.png",
        "colour prior",
        "like",
    )
    assert a.predicted == PREDICTED and a.track_ids == [] and a.playlist_ref is None
    assert a.playlist_features is None and a.target == PREDICTED
    assert b.track_ids == IDS and b.playlist_ref == "out.json" and b.verdict == "dislike"
    assert b.target == {**PREDICTED, "energy": 0.2}
    assert list(b.predicted) == list(NAMES)
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0] == 2
    assert feedback.default_path().name == "feedback.db"


def test_the_newest_id_and_a_prefix_are_read_without_the_rest(tmp_path):
    """A fine-tune fixes the verdicts it learns from by id, so later ones cannot leak in."""
    path = tmp_path / "feedback.db"
    ids = [
        feedback.record(
            path, image=png(), image_name=f"{i}.png", model="m", predicted=PREDICTED,
            verdict="like",
        )
        for i in range(3)
    ]  # fmt: skip
    assert feedback.last_id(path) == ids[-1]
    assert [row.id for row in feedback.load(path, upto=ids[1])] == ids[:2]
    assert [row.id for row in feedback.load(path)] == ids


def test_record_refuses_bad_input(tmp_path):
    path = tmp_path / "feedback.db"
    good = {"image": png(), "image_name": "a.png", "model": "m", "predicted": PREDICTED}
    with pytest.raises(UserError, match=r"x\.jpg: not an image"):
        feedback.record(path, **{**good, "image": b"<html>", "image_name": "x.jpg"}, verdict="like")
    with pytest.raises(UserError, match="corrupt image"):
        feedback.record(path, **{**good, "image": png()[:60]}, verdict="like")
    with pytest.raises(UserError, match="verdict"):
        feedback.record(path, **good, verdict="meh")
    with pytest.raises(UserError, match="exactly the features"):
        feedback.record(path, **{**good, "predicted": {"energy": 1.0}}, verdict="like")
    with pytest.raises(UserError, match="valence is not a finite number"):
        bad = {**PREDICTED, "valence": float("nan")}
        feedback.record(path, **{**good, "predicted": bad}, verdict="like")
    assert not path.exists()  # nothing was stored, not even an empty database
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(UserError, match="not a pressedplay feedback database"):
        feedback.record(other, **good, verdict="like")
    with pytest.raises(UserError, match="not a pressedplay feedback database"):
        feedback.load(other)
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all, just some bytes" * 10)
    with pytest.raises(UserError, match="not a sqlite database"):
        feedback.record(tmp_path / "junk.db", **good, verdict="like")
    with pytest.raises(UserError, match="no feedback at"):
        feedback.load(tmp_path / "missing.db")


def test_an_empty_file_left_by_a_killed_first_write_is_filled(tmp_path):
    path = tmp_path / "feedback.db"
    path.touch()
    feedback.record(
        path, image=png(), image_name="a", model="m", predicted=PREDICTED, verdict="like"
    )
    assert len(feedback.load(path)) == 1


def test_parse_playlist_files_and_spotify_references(tmp_path):
    generated = {
        "features": PREDICTED,
        "tracks": [{"id": i, "name": "n", "artist": "a", "distance": 0.1} for i in IDS],
    }
    (tmp_path / "p.json").write_text(json.dumps(generated))
    assert feedback.parse_playlist(str(tmp_path / "p.json")) == (str(tmp_path / "p.json"), IDS)
    m3u = (
        "#EXTM3U\n#EXTINF:-1,Artist - Song open.spotify.com/track/0000000000000000000000\n"
        f"https://open.spotify.com/track/{IDS[0]}?si=x\nspotify:track:{IDS[1]}\n"
        f"https://open.spotify.com/intl-de/track/{IDS[2]}\nspotify:track:{IDS[1]}\n"
    )
    (tmp_path / "p.m3u").write_text(m3u)
    assert feedback.parse_playlist(str(tmp_path / "p.m3u")) == (str(tmp_path / "p.m3u"), IDS)
    # What `generate --format m3u` writes reads back.
    url = "https://open.spotify.com/track/"
    tracks = [{"id": i, "name": "n", "artist": "a", "url": url + i} for i in IDS]
    (tmp_path / "g.m3u").write_text(to_m3u({"tracks": tracks}))
    assert feedback.parse_playlist(str(tmp_path / "g.m3u"))[1] == IDS
    pid = "37i9dQZF1DXcBWIGoYBM5M"
    for ref in (pid, f"spotify:playlist:{pid}", f"https://open.spotify.com/playlist/{pid}?si=1"):
        assert feedback.parse_playlist(ref) == (f"spotify:playlist:{pid}", [])

    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        feedback.parse_playlist(str(tmp_path / "bad.json"))
    (tmp_path / "shape.json").write_text(json.dumps({"tracks": [{"name": "x"}]}))
    with pytest.raises(UserError, match="as `pressedplay generate --format json` writes"):
        feedback.parse_playlist(str(tmp_path / "shape.json"))
    (tmp_path / "empty.m3u").write_text("#EXTM3U\nsome/local/file.mp3\n")
    with pytest.raises(UserError, match="no Spotify tracks"):
        feedback.parse_playlist(str(tmp_path / "empty.m3u"))
    (tmp_path / "binary.m3u").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(UserError, match="not UTF-8 text"):
        feedback.parse_playlist(str(tmp_path / "binary.m3u"))
    with pytest.raises(UserError, match="no such playlist file"):
        feedback.parse_playlist(str(tmp_path / "missing.json"))
    with pytest.raises(UserError, match="neither a playlist file"):
        feedback.parse_playlist("my favourite songs")


def test_playlist_features_are_the_mean_over_tracks_in_the_catalog(db):
    with closing(sqlite3.connect(db)) as conn:
        tracks = conn.execute(f"SELECT id, {', '.join(NAMES)} FROM tracks LIMIT 3").fetchall()
    ids = [row[0] for row in tracks]
    got = feedback.playlist_features([*ids, IDS[0]], "fb")  # IDS[0] is not in the catalog
    expected = np.array([row[1:] for row in tracks]).mean(axis=0)
    assert list(got) == list(NAMES)
    assert np.allclose([got[name] for name in NAMES], expected, atol=1e-4)  # CSV rounds to 1e-4
    assert feedback.playlist_features(IDS, "fb") is None
    with pytest.raises(UserError, match="no catalog named"):
        feedback.playlist_features(ids, "nosuch")


def test_the_loss_pulls_liked_and_pushes_disliked_predictions():
    target = torch.zeros(3, 8)
    pred = torch.zeros(3, 8)
    pred[0, 0], pred[1, 0], pred[2, 0] = 2.0, 0.5, 3.0
    pred.requires_grad_(True)
    liked = torch.tensor([True, False, False])
    loss = feedback.feedback_loss(pred, target, liked, margin=1.0)
    # Liked: 2^2; disliked at 0.5: (1 - 0.5)^2; disliked beyond the margin: 0.
    assert loss.item() == pytest.approx((4.0 + 0.25 + 0.0) / 3)
    loss.backward()
    assert pred.grad[0, 0] > 0  # descending moves the liked prediction toward the target
    assert pred.grad[1, 0] < 0  # and the disliked one away from it
    assert pred.grad[2].abs().sum() == 0  # far enough: no push
    at_target = torch.zeros(1, 8, requires_grad=True)
    feedback.feedback_loss(at_target, torch.zeros(1, 8), torch.tensor([False]), 1.0).backward()
    assert torch.isfinite(at_target.grad).all()


def _cover(db, split="test", offset=0) -> bytes:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(
            "SELECT image FROM covers WHERE split = ? ORDER BY id LIMIT 1 OFFSET ?",
            (split, offset),
        ).fetchone()[0]


def _predict(path, image: bytes) -> np.ndarray:
    """Standardised prediction (latent mean) of a checkpoint for one image."""
    loaded = checkpoints.load_model(path)
    pixels = eval_transform()(load_image(image, loaded.model.image_size))
    with torch.no_grad():
        return loaded.model(pixels[None]).features[0].double().numpy()


def _standardise(path, original: dict) -> np.ndarray:
    loaded = checkpoints.load_model(path)
    return (np.array([original[name] for name in NAMES]) - loaded.mean) / loaded.std


def _original(path, standardised: np.ndarray) -> dict:
    loaded = checkpoints.load_model(path)
    return dict(zip(NAMES, loaded.to_original(standardised[None])[0].tolist(), strict=True))


def test_fine_tuning_moves_liked_predictions_toward_and_disliked_away(db, base_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(base_run, run_dir)
    best = run_dir / "best.pt"
    original_best = best.read_bytes()
    liked, disliked = _cover(db, offset=0), _cover(db, offset=1)
    liked_before, disliked_before = _predict(best, liked), _predict(best, disliked)
    target = _original(best, liked_before + 1.0)  # one std above the prediction everywhere
    fb = tmp_path / "feedback.db"
    for image, verdict, playlist in ((liked, "like", target), (disliked, "dislike", None)):
        feedback.record(
            fb, image=image, image_name=verdict, model="vae", verdict=verdict,
            predicted=_original(best, _predict(best, image)), playlist_features=playlist,
        )  # fmt: skip
    goal = _standardise(best, target)

    def distances() -> tuple[float, float]:
        return (
            float(np.linalg.norm(_predict(best, liked) - goal)),
            float(np.linalg.norm(_predict(best, disliked) - disliked_before)),
        )

    control = train(small(epochs=3, feedback_weight=0.0), run_dir, db, feedback_db=fb)
    assert (run_dir / BEFORE_FEEDBACK).read_bytes() == original_best
    liked_control, disliked_control = distances()
    # A second fine-tune starts again from the model before any feedback.
    summary = train(
        small(epochs=3, feedback_weight=5.0, feedback_margin=2.0), run_dir, db, feedback_db=fb
    )
    assert (run_dir / BEFORE_FEEDBACK).read_bytes() == original_best
    liked_after, disliked_after = distances()
    start = float(np.linalg.norm(liked_before - goal))
    assert liked_after < 0.5 * start and liked_after < 0.5 * liked_control
    assert disliked_after > 1.5 and disliked_after > 2 * disliked_control

    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["phase"], r["epoch"]) for r in logged] == [
        ("train", 1),
        ("train", 2),
        *[("feedback", e) for e in (1, 2, 3)] * 2,
    ]
    assert all(r["train_feedback"] is not None for r in logged[2:])
    steps = [r["step"] for r in logged]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert summary["best_epoch"] == 3 and control["best_epoch"] == 3  # the fine-tune's result
    assert checkpoints.load(best)["config"]["phase"] == "feedback"
    assert checkpoints.load(run_dir / "last.pt")["training"]["phase"] == "feedback"


def test_an_interrupted_fine_tune_resumes_exactly(db, base_run, tmp_path):
    fb = tmp_path / "feedback.db"
    image = _cover(db)
    feedback.record(fb, image=image, image_name="x", model="m", predicted=PREDICTED, verdict="like")
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    shutil.copytree(base_run, straight)
    shutil.copytree(base_run, halves)
    train(small(epochs=2), straight, db, feedback_db=fb)
    train(small(epochs=1), halves, db, feedback_db=fb)
    # Feedback stored after the fine-tune began is left for the next one.
    feedback.record(
        fb, image=image, image_name="y", model="m", predicted=PREDICTED, verdict="dislike"
    )
    with pytest.raises(UserError, match="resume it with --feedback"):
        train(small(epochs=2), halves, db, resume=True)
    train(small(epochs=2), halves, db, resume=True, feedback_db=fb)
    a, b = checkpoints.load(straight / "best.pt"), checkpoints.load(halves / "best.pt")
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    with pytest.raises(UserError, match="no feedback fine-tune to resume"):
        train(small(epochs=3), base_run, db, resume=True, feedback_db=fb)


def test_the_feedback_and_train_feedback_commands(cli, db, base_run, home, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(base_run, run_dir)
    image = tmp_path / "cover.jpg"
    image.write_bytes(_cover(db))
    with closing(sqlite3.connect(db)) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM tracks LIMIT 4")]
    playlist = tmp_path / "playlist.json"
    playlist.write_text(json.dumps({"tracks": [{"id": i} for i in ids]}))
    fb = tmp_path / "fb.db"
    result = cli(
        "feedback", image, "--like", "--playlist", playlist, "--model", run_dir,
        "--catalog", "fb", "--feedback-db", fb, "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    (row,) = feedback.load(fb)
    assert row.verdict == "like" and row.track_ids == ids and row.image == image.read_bytes()
    assert row.playlist_features == pytest.approx(feedback.playlist_features(ids, "fb"))
    assert row.playlist_ref == str(playlist)
    tuned = cli(
        "train", run_dir, "--db", db, "--feedback", "--feedback-db", fb, "--epochs", 1,
        "--workers", 0, "--device", "cpu", "--json",
    )  # fmt: skip
    assert tuned.code == 0, tuned.err
    assert (run_dir / BEFORE_FEEDBACK).is_file()
    assert checkpoints.load(run_dir / "best.pt")["config"]["train"]["image_size"] == 32
