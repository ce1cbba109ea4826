"""The page in a real headless Chromium (Debian's chromium and chromedriver, driven by
selenium; nothing downloaded) against the app served on 127.0.0.1: upload a picture, see
its features and playlist, refine by genre, like it, see errors, log in to the fake
Spotify and save the playlist there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import fake_spotify as fs
import numpy as np
import pytest
import requests
from PIL import Image
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from pressedplay import catalog_csv, feedback
from pressedplay.features import NAMES
from pressedplay.plots import scaled
from pressedplay.server import create_app, running

pytestmark = pytest.mark.browser

SAMPLE = Path(__file__).parent / "fixtures" / "spotify_songs_sample.csv"
WAIT = 20  # seconds; a shared CI machine can be slow, a passing test does not wait


@pytest.fixture
def feedback_db(tmp_path) -> Path:
    return tmp_path / "feedback.db"


@pytest.fixture
def site(fake_spotify, tmp_path, monkeypatch, feedback_db) -> Iterator[str]:
    """The app with the TidyTuesday sample catalog, the colour prior and the fake Spotify."""
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", fs.CLIENT_ID)
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", fs.CLIENT_SECRET)
    monkeypatch.setenv("PRESSEDPLAY_SPOTIFY_API_URL", fake_spotify.api_url)
    monkeypatch.setenv("PRESSEDPLAY_SPOTIFY_ACCOUNTS_URL", fake_spotify.accounts_url)
    catalog_csv.import_csv(SAMPLE)
    with running(create_app(model="prior", feedback_db=feedback_db, env_file=None)) as url:
        yield url


@pytest.fixture
def picture(tmp_path) -> Path:
    """A sunset-like picture with some texture."""
    rows = np.linspace(0, 1, 240)[:, None, None]
    sky = (1 - rows) * np.array([252, 150, 40]) + rows * np.array([120, 40, 110])
    noise = np.random.default_rng(1).normal(0, 12, (240, 360, 3))
    pixels = np.clip(sky + noise, 0, 255).astype(np.uint8)
    pixels[170:, :] = (30, 20, 60)
    path = tmp_path / "sunset.png"
    Image.fromarray(pixels).save(path)
    return path


def wait(browser: WebDriver, condition, message: str):
    """Until condition() is true; rows replaced while it looks are looked at again."""
    ignored = (StaleElementReferenceException,)
    return WebDriverWait(browser, WAIT, ignored_exceptions=ignored).until(
        lambda _: condition(), message
    )


def rows(browser: WebDriver) -> list:
    return browser.find_elements(By.CSS_SELECTOR, "#tracks li.track")


def test_upload_see_the_playlist_refine_it_and_like_it(
    browser, site, picture, feedback_db, tmp_path
) -> None:
    browser.get(site)
    status = browser.find_element(By.ID, "status")
    wait(browser, lambda: "colour prior" in status.text, "the page did not load its config")
    browser.find_element(By.ID, "file").send_keys(str(picture))
    wait(browser, lambda: len(rows(browser)) == 20, "no playlist of 20 tracks appeared")

    expected = requests.post(
        site + "/api/playlist", files={"file": (picture.name, picture.read_bytes())}, timeout=30
    ).json()
    shown = rows(browser)
    assert [row.get_attribute("data-id") for row in shown] == [t["id"] for t in expected["tracks"]]
    first = expected["tracks"][0]
    assert first["name"] in shown[0].text and first["artist"] in shown[0].text
    link = shown[0].find_element(By.CSS_SELECTOR, "a.open")
    assert link.get_attribute("href") == first["url"] and link.text == "Spotify"
    assert browser.find_element(By.ID, "preview").get_attribute("src").startswith("blob:")

    # The radar's axes are scaled as plots.radar scales them.
    dots = browser.find_elements(By.CSS_SELECTOR, "#radar circle.dot")
    drawn = {
        dot.get_attribute("data-feature"): float(dot.get_attribute("data-scaled")) for dot in dots
    }
    assert list(drawn) == list(NAMES)
    assert np.allclose(list(drawn.values()), scaled(expected["features"]), atol=1e-6)

    # A genre chip re-asks the server with the filter.
    chip = browser.find_element(By.CSS_SELECTOR, '#genres [data-genre="rock"]')
    chip.click()
    wait(
        browser,
        lambda: all(
            "rock" in row.find_element(By.CLASS_NAME, "genres").text for row in rows(browser)
        ),
        "the playlist was not refined to rock",
    )
    assert chip.get_attribute("aria-pressed") == "true"
    rock = [row.get_attribute("data-id") for row in rows(browser)]
    browser.save_screenshot(str(tmp_path / "page.png"))

    browser.find_element(By.ID, "like").click()
    notice = browser.find_element(By.ID, "notice")
    wait(browser, lambda: "Stored your like (#1)" in notice.text, "the like was not confirmed")
    assert not browser.find_element(By.ID, "like").is_enabled()  # one verdict per playlist
    (row,) = feedback.load(feedback_db)
    assert row.verdict == "like" and row.track_ids == rock
    assert row.image == picture.read_bytes() and row.image_name == picture.name
    assert row.predicted == expected["features"]
    with Image.open(tmp_path / "page.png") as screenshot:
        assert screenshot.size[0] >= 1000  # the page as it looked, for a person to check


def test_errors_show_and_the_playlist_goes_to_spotify(
    browser, site, picture, tmp_path, fake_spotify
) -> None:
    browser.get(site)
    status = browser.find_element(By.ID, "status")
    wait(browser, lambda: "Spotify: not logged in" in status.text, "no Spotify status")
    assert browser.find_element(By.ID, "login").is_displayed()
    assert not browser.find_element(By.ID, "save").is_displayed()
    error = browser.find_element(By.ID, "error")
    file_input = browser.find_element(By.ID, "file")

    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    file_input.send_keys(str(notes))
    wait(browser, error.is_displayed, "the server's refusal was not shown")
    assert error.text == "notes.png: not an image (422)"
    assert not browser.find_element(By.ID, "preview").is_displayed()  # no broken picture
    huge = tmp_path / "huge.png"
    huge.write_bytes(bytes(11 * 2**20))
    file_input.send_keys(str(huge))
    wait(browser, lambda: error.text == "huge.png is 11.0 MB; the limit is 10 MB", "no size error")

    file_input.send_keys(str(picture))
    wait(browser, lambda: len(rows(browser)) == 20, "no playlist appeared")
    assert not error.is_displayed()

    page = browser.current_window_handle
    browser.find_element(By.ID, "login").click()  # the login runs in its own tab
    wait(browser, lambda: len(browser.window_handles) == 2, "the login tab did not open")
    browser.switch_to.window(next(h for h in browser.window_handles if h != page))
    heading = "Logged in to Spotify"
    wait(browser, lambda: heading in browser.find_element(By.TAG_NAME, "h1").text, "no login")
    browser.close()
    browser.switch_to.window(page)
    save = browser.find_element(By.ID, "save")
    wait(browser, save.is_displayed, "the page did not notice the login")
    assert not browser.find_element(By.ID, "login").is_displayed()
    assert len(rows(browser)) == 20  # the picture and playlist survived the login

    save.click()
    notice = browser.find_element(By.ID, "notice")
    wait(browser, lambda: "Saved 20 tracks to Spotify" in notice.text, "not saved")
    (made,) = fake_spotify.created.values()
    assert made.uris == [f"spotify:track:{row.get_attribute('data-id')}" for row in rows(browser)]
    assert made.cover is not None
    assert notice.find_element(By.TAG_NAME, "a").get_attribute("href") == (
        f"https://open.spotify.com/playlist/{made.id}"
    )
    source = browser.page_source
    assert all(
        secret not in source for secret in (fs.CLIENT_SECRET, fs.USER_TOKEN, fs.REFRESH_TOKEN)
    )
