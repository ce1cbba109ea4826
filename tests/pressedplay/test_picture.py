"""pressedplay.picture, the use cases behind `generate`, `feedback` and the web page:
called from Python they give what the CLI prints, with notices as data, and own the
rules (order of checks, the name and text of a saved playlist, one torch thread on CPU)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import fake_spotify as fs
import pytest
import torch

from pressedplay import catalog_csv, feedback
from pressedplay.errors import UserError
from pressedplay.picture import (
    Continuation,
    Picture,
    playlist_for_picture,
    read_picture,
    record_verdict,
)
from pressedplay.predict import load_predictor
from pressedplay.spotify_account import user_client

SAMPLE = Path(__file__).parent / "fixtures" / "spotify_songs_sample.csv"


@pytest.fixture
def default_catalog(tmp_path, monkeypatch) -> Path:
    """The 300-row TidyTuesday sample as the default catalog of a fresh data folder."""
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(tmp_path / "home"))
    return Path(catalog_csv.import_csv(SAMPLE)["path"])


@pytest.fixture
def prior():
    return load_predictor("prior")


def test_the_playlist_is_what_generate_prints(default_catalog, picture, prior, cli) -> None:
    answer = playlist_for_picture(read_picture(picture), prior, genres=["rock"], n=6)
    printed = cli(
        "generate", picture, "--model", "prior", "--genre", "rock", "--n", 6, "--format", "json"
    )
    assert printed.code == 0, printed.err
    assert answer.playlist == json.loads(printed.out) and answer.notices == []


def test_spotify_is_asked_after_the_picture_and_its_notice_is_data(
    spotify_login, default_catalog, picture, prior, capsys, tmp_path
) -> None:
    asked = []

    def login():
        asked.append(True)
        return user_client()

    junk = Picture("junk.png", b"<html>")
    with pytest.raises(UserError, match=r"junk\.png: not an image"):
        playlist_for_picture(junk, prior, spotify=login)
    assert not asked and not spotify_login.created  # a bad picture asks for no login

    spotify_login.top_artists = [fs.Artist("a"), fs.Artist("b")]  # no genres
    answer = playlist_for_picture(read_picture(picture), prior, n=3, spotify=login)
    assert len(answer.notices) == 1 and answer.notices[0].endswith("no genre filter")
    assert capsys.readouterr() == ("", "")  # nothing printed
    (made,) = spotify_login.created.values()
    assert made.name == "pressedplay: sunset" and made.public is False
    assert made.description == (
        f"Tracks matching the picture sunset.png, picked by pressedplay ({prior.name})."
    )
    assert answer.playlist["spotify"]["url"].endswith(made.id)


def test_a_genre_filter_is_refused_for_a_continuation_before_any_work(prior) -> None:
    junk = Picture("junk.png", b"<html>")
    continuing = Continuation(Path("no-such-run"))
    with pytest.raises(UserError, match="genre filter does not apply to a continuation"):
        playlist_for_picture(junk, prior, genres=["pop"], continuing=continuing)


def test_a_verdict_checks_the_picture_before_the_playlist(
    default_catalog, picture, prior, tmp_path
) -> None:
    db = tmp_path / "feedback.db"
    junk = Picture("junk.png", b"<html>")
    with pytest.raises(UserError, match=r"junk\.png: not an image"):
        record_verdict(junk, prior, "like", playlist=str(tmp_path / "none.json"), feedback_db=db)
    assert not db.exists()
    tracks = playlist_for_picture(read_picture(picture), prior, n=4).playlist["tracks"]
    report = record_verdict(
        read_picture(picture),
        prior,
        "dislike",
        track_ids=[t["id"] for t in tracks],
        feedback_db=db,
    )
    assert report == {
        "id": 1,
        "db": str(db),
        "image": str(picture),
        "verdict": "dislike",
        "tracks": 4,
    }
    (row,) = feedback.load(db)
    assert row.playlist_features is not None and row.image == picture.read_bytes()


def test_a_picture_that_cannot_be_read_names_its_path(tmp_path) -> None:
    with pytest.raises(UserError, match=f"^{re.escape(str(tmp_path))}: "):
        read_picture(tmp_path)  # a folder


def test_a_cpu_predictor_leaves_torch_one_thread() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        load_predictor("prior", device="cpu")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
