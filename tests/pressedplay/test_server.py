"""`pressedplay serve`: the JSON API over real HTTP (uvicorn on 127.0.0.1, requests and raw
sockets as clients), its limits and errors, and the Spotify login through the served app
against the local fake Spotify."""

from __future__ import annotations

import http.client
import io
import json
import re
import select
import socket
import stat
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import fake_spotify as fs
import numpy as np
import pytest
import requests
from PIL import Image

from pressedplay import catalog as catalog_mod
from pressedplay import catalog_csv, feedback
from pressedplay.features import NAMES
from pressedplay.server import LOCAL_HOSTS, MAX_BODY, MAX_UPLOAD, create_app, hosts_for, running
from pressedplay.spotify_account import token_cache_path

SAMPLE = Path(__file__).parent / "fixtures" / "spotify_songs_sample.csv"
WEB = Path(__file__).parents[2] / "packages" / "pressedplay" / "src" / "pressedplay" / "web"
SECRETS = (fs.CLIENT_SECRET, fs.USER_TOKEN, fs.REFRESH_TOKEN, fs.AUTH_CODE)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A data folder with the TidyTuesday sample as the default catalog; no Spotify app
    configured (no developer's .env or environment)."""
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    for name in ("SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET", "SPOTIFY_REDIRECT_URI"):
        monkeypatch.delenv(name, raising=False)
    catalog_csv.import_csv(SAMPLE)
    return tmp_path / "home"


@pytest.fixture
def feedback_db(tmp_path) -> Path:
    return tmp_path / "verdicts" / "feedback.db"


@pytest.fixture
def base(home, feedback_db) -> Iterator[str]:
    with running(create_app(model="prior", feedback_db=feedback_db, env_file=None)) as url:
        yield url


def upload(path: Path, data: bytes | None = None) -> dict:
    return {"file": (path.name, path.read_bytes() if data is None else data, "image/png")}


def one_line_error(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str)
    assert "\n" not in body["detail"] and body["detail"]
    return body["detail"]


# --- the page --------------------------------------------------------------------------
def test_the_page_loads_nothing_from_elsewhere(base) -> None:
    page = requests.get(base + "/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "https:" not in policy
    assert re.findall(r'(?:src|href)="([^"]+)"', page.text) == [
        "/style.css",
        "/app.js",
        "/login",
    ]
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        served = requests.get(f"{base}/{name}", timeout=10)
        assert served.headers["content-type"].startswith(kind)
        assert served.content == (WEB / name).read_bytes()
    # The only absolute URL in the page's files is SVG's namespace name, never fetched.
    text = "".join((WEB / name).read_text() for name in ("index.html", "app.js", "style.css"))
    assert set(re.findall(r"[a-z]+://[^\s\"'`)]+", text)) == {"http://www.w3.org/2000/svg"}
    assert "@import" not in text and "url(" not in text
    assert requests.get(base + "/docs", timeout=10).status_code == 404  # Swagger UI: a CDN


def test_openapi_documents_the_api(base) -> None:
    spec = requests.get(base + "/openapi.json", timeout=10).json()
    paths = spec["paths"]
    assert {"/api/predict", "/api/playlist", "/api/feedback", "/api/config"} <= set(paths)
    schemas = spec["components"]["schemas"]

    def form(path: str) -> dict:
        body = paths[path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        return schemas[body["$ref"].rsplit("/", 1)[1]]

    assert form("/api/predict")["required"] == ["file"]
    playlist = form("/api/playlist")["properties"]
    assert set(playlist) == {"file", "genre", "n"}
    assert playlist["n"]["maximum"] == 100 and "array" in json.dumps(playlist["genre"])
    assert set(form("/api/feedback")["required"]) == {"file", "verdict"}
    answers = paths["/api/playlist"]["post"]["responses"]
    assert answers["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Playlist")
    assert {"400", "413", "422"} <= set(answers)
    assert set(schemas["Features"]["properties"]) == set(NAMES)


# --- the API in the CLI's shapes ---------------------------------------------------------
def test_predict_and_playlist_answer_as_the_cli_does(base, picture, cli) -> None:
    predicted = requests.post(base + "/api/predict", files=upload(picture), timeout=30)
    assert predicted.status_code == 200, predicted.text
    from_cli = cli("predict", picture, "--model", "prior", "--json")
    assert from_cli.code == 0, from_cli.err
    (expected,) = json.loads(from_cli.out)
    assert predicted.json() == [{**expected, "image": picture.name}]

    form = {"genre": ["pop", "rock"], "n": "7"}
    answer = requests.post(base + "/api/playlist", files=upload(picture), data=form, timeout=30)
    assert answer.status_code == 200, answer.text
    generated = cli(
        "generate", picture, "--model", "prior", "--genre", "pop", "--genre", "rock",
        "--n", 7, "--format", "json",
    )  # fmt: skip
    assert generated.code == 0, generated.err
    assert answer.json() == json.loads(generated.out)
    assert len(answer.json()["tracks"]) == 7


def test_a_verdict_is_stored_with_the_image_and_the_tracks(base, picture, feedback_db) -> None:
    playlist = requests.post(base + "/api/playlist", files=upload(picture), timeout=30).json()
    ids = [track["id"] for track in playlist["tracks"]]
    stored = requests.post(
        base + "/api/feedback",
        files=upload(picture),
        data={"verdict": "dislike", "track": ids},
        timeout=30,
    )
    assert stored.status_code == 200, stored.text
    assert stored.json() == {
        "id": 1,
        "db": str(feedback_db),
        "image": picture.name,
        "verdict": "dislike",
        "tracks": 20,
    }
    (row,) = feedback.load(feedback_db)
    assert row.verdict == "dislike" and row.image == picture.read_bytes()
    assert row.image_name == picture.name and row.model == "colour prior"
    assert row.track_ids == ids and row.predicted == playlist["features"]
    catalog = catalog_mod.resolve_catalog(None)
    assert row.playlist_features == feedback.playlist_features(ids, catalog)


def test_bad_input_gets_a_4xx_with_one_line(base, picture, feedback_db) -> None:
    def post(path: str, files: dict | None = None, **form: object) -> requests.Response:
        return requests.post(base + path, files=files, data=form, timeout=30)

    not_image = {"file": ("notes.png", b"<html>hello</html>", "image/png")}
    assert one_line_error(post("/api/predict", not_image), 422) == "notes.png: not an image"
    cut = picture.read_bytes()[:300]
    detail = one_line_error(post("/api/predict", upload(picture, cut)), 422)
    assert detail.startswith("sunset.png: corrupt image")
    empty = one_line_error(post("/api/playlist", upload(picture, b"")), 422)
    assert empty == "sunset.png: empty file"
    assert one_line_error(post("/api/playlist", n=3), 422) == "file: Field required"
    too_many = one_line_error(post("/api/playlist", upload(picture), n=101), 422)
    assert too_many == "n: Input should be less than or equal to 100"
    unknown = one_line_error(post("/api/playlist", upload(picture), genre="jazz"), 400)
    assert unknown.startswith("genre 'jazz' is not in the catalog; its genres: ")
    verdict = one_line_error(post("/api/feedback", upload(picture), verdict="meh"), 422)
    assert verdict == "verdict: Input should be 'like' or 'dislike'"
    no_tracks = one_line_error(post("/api/feedback", upload(picture), verdict="like"), 422)
    assert no_tracks.startswith("track: give the playlist's track ids")
    bad_id = one_line_error(
        post("/api/feedback", upload(picture), verdict="like", track=["x" * 22, "../etc"]), 422
    )
    assert bad_id == "track: '../etc' is not a Spotify track id"
    spotify = one_line_error(post("/api/spotify/playlist", upload(picture), track="x" * 22), 503)
    assert spotify.startswith("Spotify is not configured: set SPOTIFY_CLIENT_ID")
    assert not feedback_db.exists()  # nothing half-written


def test_posts_from_another_sites_page_are_refused(base, picture, feedback_db) -> None:
    playlist = requests.post(base + "/api/playlist", files=upload(picture), timeout=30).json()
    form = {"verdict": "like", "track": [t["id"] for t in playlist["tracks"]]}
    for origin in ("http://evil.example", "null", base.replace("127.0.0.1", "localhost")):
        headers = {"Origin": origin}
        refused = requests.post(
            base + "/api/feedback", files=upload(picture), data=form, headers=headers, timeout=30
        )
        assert one_line_error(refused, 403).startswith("refused a request from the page of")
    assert not feedback_db.exists()
    headers = {"Origin": base}  # the page itself
    stored = requests.post(
        base + "/api/feedback", files=upload(picture), data=form, headers=headers, timeout=30
    )
    assert stored.status_code == 200, stored.text


def test_only_this_machines_names_are_served(base) -> None:
    """A rebound DNS name (evil.example -> 127.0.0.1) must not reach the local server."""
    port = urlsplit(base).port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert requests.get(base + "/api/config", headers={"Host": host}, timeout=30).ok
    refused = requests.get(base + "/api/config", headers={"Host": "evil.example"}, timeout=30)
    assert refused.status_code == 400
    assert hosts_for("127.0.0.1") == LOCAL_HOSTS
    assert hosts_for("192.168.1.5") == ("192.168.1.5", *LOCAL_HOSTS)
    assert hosts_for("0.0.0.0") == ("*",)  # every interface: reachable under any name


# --- the 10 MB limit -------------------------------------------------------------------
def noise_png(side: int) -> bytes:
    """Random pixels, stored uncompressed: the size is known in advance."""
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


def test_an_image_up_to_10_mb_is_taken_and_one_byte_more_is_not(base, picture) -> None:
    large = noise_png(1869)
    assert MAX_UPLOAD - 1000 < len(large) <= MAX_UPLOAD
    taken = requests.post(base + "/api/predict", files=upload(picture, large), timeout=60)
    assert taken.status_code == 200, taken.text
    padded = large + b"\0" * (MAX_UPLOAD + 1 - len(large))  # still decodes; only too big
    refused = requests.post(base + "/api/predict", files=upload(picture, padded), timeout=60)
    detail = one_line_error(refused, 413)
    assert detail.startswith("sunset.png: upload too large") and "10 MB" in detail


def raw_post(base: str, headers: list[str], chunks: Iterable[bytes]) -> tuple[int, dict, int]:
    """POST /api/predict by hand: the headers, then body chunks until the server answers.
    (status, JSON body, body bytes sent)."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        head = ["POST /api/predict HTTP/1.1", f"Host: {parts.netloc}", *headers, "", ""]
        sock.sendall("\r\n".join(head).encode())
        sent = 0
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered: stop sending
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read()), sent


BOUNDARY = "pressedplay-test-boundary"
FORM_HEAD = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
    "Content-Type: image/png\r\n\r\n"
).encode()
MULTIPART = f"Content-Type: multipart/form-data; boundary={BOUNDARY}"


def test_413_counts_the_bytes_whatever_content_length_says(base, picture) -> None:
    # Announced too large: refused before a byte of the body is read.
    status, body, _ = raw_post(base, [MULTIPART, f"Content-Length: {12 * 2**20}"], [])
    assert status == 413 and "upload too large: 12,582,912 bytes" in body["detail"]

    # No Content-Length at all (chunked): counted while read, refused past the limit.
    def chunked() -> Iterator[bytes]:
        yield b"%x\r\n%b\r\n" % (len(FORM_HEAD), FORM_HEAD)
        block = b"\x89" * 2**16
        for _ in range(12 * 2**20 // len(block)):
            yield b"%x\r\n%b\r\n" % (len(block), block)
        yield b"0\r\n\r\n"

    status, body, sent = raw_post(base, [MULTIPART, "Transfer-Encoding: chunked"], chunked())
    assert status == 413 and body["detail"].startswith("upload too large: over ")
    assert sent > MAX_BODY  # it read up to the limit, not just the first bytes

    # Announced smaller than what follows: HTTP framing ends the body where it said, so
    # the rest never reaches the app (here the form is cut: no file in it).
    whole = FORM_HEAD + picture.read_bytes() + f"\r\n--{BOUNDARY}--\r\n".encode()
    status, body, _ = raw_post(base, [MULTIPART, "Content-Length: 100"], [whole])
    assert status == 422 and body == {"detail": "file: Field required"}
    assert requests.get(base + "/api/config", timeout=10).status_code == 200  # still serving


# --- the command, Spotify and the logs --------------------------------------------------
@pytest.fixture
def spotify_app(fake_spotify, home, monkeypatch):
    """Credentials and the fake's URLs in the environment (none in the token cache yet)."""
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", fs.CLIENT_ID)
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", fs.CLIENT_SECRET)
    monkeypatch.setenv("PRESSEDPLAY_SPOTIFY_API_URL", fake_spotify.api_url)
    monkeypatch.setenv("PRESSEDPLAY_SPOTIFY_ACCOUNTS_URL", fake_spotify.accounts_url)
    return fake_spotify


def test_serve_logs_in_to_spotify_and_saves_without_leaking_secrets(
    spotify_app, home, picture, serve_child
) -> None:
    served = serve_child("--model", "prior")
    try:
        base, browser = served.base, requests.Session()
        config = browser.get(base + "/api/config", timeout=10)
        assert config.json()["spotify"] == {"configured": True, "logged_in": False}
        files = upload(picture)
        playlist = browser.post(base + "/api/playlist", files=files, timeout=30).json()
        ids = [track["id"] for track in playlist["tracks"]]
        early = browser.post(
            base + "/api/spotify/playlist", files=files, data={"track": ids}, timeout=30
        )
        assert one_line_error(early, 409).startswith("log in to Spotify first")

        # A callback that did not start at /login is refused and stores nothing.
        forged = browser.get(f"{base}/callback?code={fs.AUTH_CODE}&state=forged", timeout=10)
        assert forged.status_code == 400 and "did not start here" in forged.text
        assert not token_cache_path().exists()

        # /login -> the consent page -> /callback, as a browser follows them.
        logged_in = browser.get(base + "/login", timeout=30)
        assert logged_in.status_code == 200 and "Logged in to Spotify" in logged_in.text
        (asked,) = spotify_app.authorizations
        assert asked["redirect_uri"] == base + "/callback" and len(asked["state"]) >= 32
        assert spotify_app.token_grants == ["authorization_code"]
        cache = token_cache_path()  # the CLI's login: `generate --spotify` uses it too
        assert json.loads(cache.read_text())["refresh_token"] == fs.REFRESH_TOKEN
        assert stat.S_IMODE(cache.stat().st_mode) == 0o600
        config = browser.get(base + "/api/config", timeout=10).json()
        assert config["spotify"] == {"configured": True, "logged_in": True}

        saved = browser.post(
            base + "/api/spotify/playlist", files=files, data={"track": ids}, timeout=30
        )
        assert saved.status_code == 200, saved.text
        (made,) = spotify_app.created.values()
        assert saved.json() == {
            "id": made.id,
            "url": f"https://open.spotify.com/playlist/{made.id}",
            "tracks": 20,
            "cover": True,
            "warnings": [],
        }
        assert made.public is False and made.name == "pressedplay: sunset"
        assert made.uris == [f"spotify:track:{i}" for i in ids]
        with Image.open(io.BytesIO(made.cover)) as cover:
            assert cover.format == "JPEG" and cover.size == (200, 200)

        spotify_app.consent = False
        refused = browser.get(base + "/login", timeout=30)
        assert refused.status_code == 400 and "access_denied" in refused.text
        pages = [browser.get(base + path, timeout=10).text for path in ("/", "/app.js")]
        pages.append(json.dumps(config))
    finally:
        code = served.stop()
    assert code == 0, served.output
    log = served.output
    assert '"GET /callback? HTTP/1.1" 200' in log  # logged, without its query
    assert '"POST /api/spotify/playlist HTTP/1.1" 200' in log
    for secret in (*SECRETS, asked["state"]):
        assert secret not in log
        assert all(secret not in text for text in pages)


def test_serve_says_why_it_cannot_start(home, cli, tmp_path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        taken = cli("serve", "--port", port, "--model", "prior")
    assert taken.code == 2
    assert taken.err == f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    missing = cli("serve", "--catalog", "nothing", "--model", "prior")
    assert missing.code == 2 and missing.err.startswith("error: no catalog named 'nothing'")
    no_model = cli("serve", "--model", tmp_path / "absent")
    assert no_model.code == 2 and no_model.err.count("\n") == 1


# --- overload ---------------------------------------------------------------------------
def sixteen_bit_png(side: int) -> bytes:
    """A flat 16-bit greyscale PNG: a few KB that would decode to side² x 2 bytes."""
    buffer = io.BytesIO()
    Image.new("I;16", (side, side)).save(buffer, "PNG")
    return buffer.getvalue()


def test_pixels_past_the_decode_budget_are_refused_from_the_header(base, picture) -> None:
    data = sixteen_bit_png(6300)  # the 85 KB picture of a 50-upload burst
    assert len(data) < 200_000
    refused = requests.post(base + "/api/predict", files=upload(picture, data), timeout=60)
    assert "too many pixels to decode" in one_line_error(refused, 422)


def test_a_full_gate_answers_503_with_retry_after_and_config_still_answers(
    home, feedback_db, picture
) -> None:
    app = create_app(model="prior", feedback_db=feedback_db, env_file=None, image_queue=2)
    gate = app.state.image_gate
    with running(app) as url, gate.admitted(), gate.admitted():  # two requests inside
        for path in ("/api/predict", "/api/playlist"):
            busy = requests.post(url + path, files=upload(picture), timeout=60)
            assert "busy" in one_line_error(busy, 503)
            assert busy.headers["Retry-After"] == "2"
        assert requests.get(url + "/api/config", timeout=10).status_code == 200
    with running(app) as url:  # the gate emptied: served again
        assert requests.post(url + "/api/predict", files=upload(picture), timeout=60).ok


def test_a_burst_is_served_or_turned_away_never_queued_without_bound(
    home, feedback_db, picture
) -> None:
    app = create_app(model="prior", feedback_db=feedback_db, env_file=None, image_queue=2)
    with running(app) as url:
        statuses: list[int] = []

        def post() -> None:
            response = requests.post(url + "/api/predict", files=upload(picture), timeout=60)
            statuses.append(response.status_code)

        threads = [threading.Thread(target=post) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert set(statuses) <= {200, 503} and 200 in statuses, statuses
        assert requests.post(url + "/api/predict", files=upload(picture), timeout=60).ok
