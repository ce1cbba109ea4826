"""Fixtures for pressedplay: an in-process CLI runner, `serve` in a child process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from pressedplay.cli import run


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys) -> Callable[..., Result]:
    def invoke(*args: object) -> Result:
        capsys.readouterr()
        code = run([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


def _load_fake_spotify():
    """tests/pressedplay/fake_spotify.py as module `fake_spotify`, importable by test files
    (the importlib import mode puts no test folder on sys.path)."""
    import importlib.util
    import sys
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "fake_spotify", Path(__file__).with_name("fake_spotify.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_spotify"] = module
    spec.loader.exec_module(module)
    return module


_fake_spotify = _load_fake_spotify()


@pytest.fixture(autouse=True)
def default_catalog_unreachable(monkeypatch):
    """The default catalog is fetched on first use; in tests never from the internet, but
    from a port that refuses connections unless a test points the URL at its own server."""
    import socket

    from pressedplay import catalog

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused
        port = closed.getsockname()[1]
        monkeypatch.setattr(
            catalog, "TIDYTUESDAY_URL", f"http://127.0.0.1:{port}/spotify_songs.csv"
        )
        yield


@pytest.fixture
def fake_spotify():
    """A local fake Spotify Web API on 127.0.0.1 with five playlists of user "alice"."""
    with _fake_spotify.build() as fake:
        yield fake


@pytest.fixture
def one_torch_thread():
    """Small tensors: intra-op threads only add scheduling noise on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def picture(tmp_path):
    """A small sunset-like PNG: orange sky over a dark purple band."""
    from PIL import Image

    path = tmp_path / "sunset.png"
    image = Image.new("RGB", (320, 200), (250, 120, 30))
    image.paste((40, 20, 90), (0, 120, 320, 200))
    image.save(path)
    return path


@pytest.fixture
def spotify_login(fake_spotify, monkeypatch, tmp_path):
    """Credentials and the fake's URLs in the environment, a login in the token cache of a
    fresh PRESSEDPLAY_HOME: what a user has after their first `--spotify` login."""
    from pressedplay.spotify_account import token_cache_path

    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", _fake_spotify.CLIENT_ID)
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", _fake_spotify.CLIENT_SECRET)
    monkeypatch.setenv("SPOTIFY_REDIRECT_URI", "http://127.0.0.1:8888/callback")
    monkeypatch.setenv("PRESSEDPLAY_SPOTIFY_API_URL", fake_spotify.api_url)
    monkeypatch.setenv("PRESSEDPLAY_SPOTIFY_ACCOUNTS_URL", fake_spotify.accounts_url)
    _fake_spotify.seed_login(token_cache_path())
    return fake_spotify


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for the `browser` tests; a missing browser or driver fails (CI
    installs both), never skips."""
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        missing = " and ".join(
            name for name, path in (("chromium", chromium), ("chromedriver", driver)) if not path
        )
        pytest.fail(
            f"the browser tests need Debian's {missing} on PATH: "
            "apt-get install chromium chromium-driver",
            pytrace=False,
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # containers and CI runners often run as root
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(argument)
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    yield session
    session.quit()


class Served:
    """`pressedplay serve` in a child process; its console output collected."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "pressedplay.cli", "serve", "--port", "0", *args]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self.lines: list[str] = []
        started = threading.Event()

        def collect() -> None:
            for line in self.process.stdout:
                self.lines.append(line)
                if "Application startup complete" in line or "Uvicorn running" in line:
                    started.set()
            started.set()

        threading.Thread(target=collect, daemon=True).start()
        assert started.wait(60) and self.process.poll() is None, self.output
        (self.base,) = re.findall(r"open (http://\S+) ", self.output)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(20)


@pytest.fixture
def serve_child() -> Iterator[Callable[..., Served]]:
    """Starts `pressedplay serve --port 0 ARGS...`; every child is stopped afterwards."""
    started: list[Served] = []

    def start(*args: str) -> Served:
        started.append(Served(*map(str, args)))
        return started[-1]

    yield start
    for served in started:
        if served.process.poll() is None:
            served.stop()
