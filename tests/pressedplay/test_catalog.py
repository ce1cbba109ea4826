"""The track catalog: CSV import (TidyTuesday and Kaggle layouts), download, lookup, info.

fixtures/spotify_songs_sample.csv holds 300 real rows of TidyTuesday's spotify_songs.csv:
every row of 25 tracks listed in playlists of several genres, one row with R's NA for the
name and artist, one with a loudness above 0 dB (kept: real masters exceed 0 dB), and a spread of the rest. The two kaggle_*
files are hand-written in the layouts of Kaggle's "spotify tracks dataset" and "600k tracks".
"""

from __future__ import annotations

import csv
import hashlib
import http.server
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import platformdirs
import pytest

from pressedplay import catalog
from pressedplay.catalog import Catalog, info, resolve_catalog
from pressedplay.catalog_csv import import_csv
from pressedplay.errors import UserError
from pressedplay.features import NAMES
from pressedplay.paths import catalog_path, data_home

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = FIXTURES / "spotify_songs_sample.csv"
KAGGLE_TRACKS = FIXTURES / "kaggle_tracks.csv"
KAGGLE_600K = FIXTURES / "kaggle_600k.csv"
# A track of the sample listed under two genres.
MULTI = "6f807x0ima9a1j3VPbc7VN"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(home))
    return home


def sample_rows() -> list[dict[str, str]]:
    with SAMPLE.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def dump(path: Path) -> tuple[list, list]:
    with sqlite3.connect(path) as con:
        tracks = con.execute("SELECT * FROM tracks ORDER BY id").fetchall()
        genres = con.execute("SELECT * FROM track_genres ORDER BY 1, 2, 3").fetchall()
    con.close()
    return tracks, genres


def leftovers(home: Path) -> list[str]:
    """Temporary files anywhere under the data folder: an atomic write leaves none."""
    return sorted(p.name for p in home.rglob("*") if p.name.endswith((".tmp", ".part")))


# paths


def test_data_home_is_the_environment_variable_or_the_user_cache(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert data_home() == home
    assert catalog_path("mine") == home / "catalogs" / "mine.db"
    monkeypatch.delenv("PRESSEDPLAY_HOME")
    assert data_home() == Path(platformdirs.user_cache_dir("pressedplay"))


@pytest.mark.parametrize("name", ["", "a/b", "../x", ".hidden", "two words", "x.db", "é"])
def test_catalog_names_that_are_not_plain_file_names_are_refused(name: str) -> None:
    with pytest.raises(UserError, match=r"catalog name|without '\.db'"):
        catalog_path(name)


# import: TidyTuesday


def test_import_tidytuesday_sample_dedupes_and_counts_skips(home: Path) -> None:
    report = import_csv(SAMPLE)
    rows = sample_rows()
    good = [r for r in rows if r["track_name"] != "NA"]
    assert report["rows"] == len(rows) == 300
    assert report["skipped"] == {"missing name": 1}
    assert report["tracks"] == len({r["track_id"] for r in good}) == 251
    assert report["duplicates_merged"] == len(good) - 251 == 48
    assert report["genres"] == {"pop": 75, "rap": 55, "latin": 50, "rock": 45, "r&b": 33, "edm": 23}
    assert report["columns"]["artist"] == "track_artist"
    assert report["sha256"] == hashlib.sha256(SAMPLE.read_bytes()).hexdigest()
    assert Path(report["path"]) == home / "catalogs" / "tidytuesday.db"
    assert leftovers(home) == []

    _, genres = dump(Path(report["path"]))
    listed = {(g, s) for track_id, g, s in genres if track_id == MULTI}
    expected = {
        (r["playlist_genre"], r["playlist_subgenre"]) for r in good if r["track_id"] == MULTI
    }
    assert listed == expected == {("edm", "pop edm"), ("pop", "dance pop")}


def test_lookup_returns_features_in_model_order_and_ignores_unknown_ids() -> None:
    import_csv(SAMPLE)
    rows = {r["track_id"]: r for r in sample_rows() if r["track_name"] != "NA"}
    known = list(rows)
    unknown = [f"{n:022d}" for n in range(1200)]  # more than one query batch
    with Catalog(resolve_catalog()) as cat:
        assert len(cat) == 251
        found = cat.lookup([*unknown, *known, known[0]])
    assert set(found) == set(known)
    track = found[MULTI]
    assert (track.name, track.artist) == (rows[MULTI]["track_name"], rows[MULTI]["track_artist"])
    assert track.features == tuple(float(rows[MULTI][n]) for n in NAMES)


def test_optional_columns_are_kept() -> None:
    report = import_csv(SAMPLE)
    with sqlite3.connect(report["path"]) as con:
        row = con.execute(
            "SELECT album, popularity, tempo, key, mode, duration_ms FROM tracks WHERE id = ?",
            (MULTI,),
        ).fetchone()
    con.close()
    assert row == (
        "I Don't Care (with Justin Bieber) [Loud Luxury Remix]",
        66,
        122.036,
        6,
        1,
        194754,
    )


def test_import_refuses_to_overwrite_without_force_and_is_idempotent_with_it(home: Path) -> None:
    first = import_csv(SAMPLE)
    before = dump(Path(first["path"]))
    with pytest.raises(UserError, match="already exists; use --force"):
        import_csv(SAMPLE)
    again = import_csv(SAMPLE, force=True)
    assert dump(Path(again["path"])) == before
    assert {k: v for k, v in again.items() if k != "seconds"} == {
        k: v for k, v in first.items() if k != "seconds"
    }
    assert leftovers(home) == []


def test_failed_import_with_force_keeps_the_old_catalog(home: Path, tmp_path: Path) -> None:
    report = import_csv(SAMPLE)
    before = dump(Path(report["path"]))
    bad = tmp_path / "bad.csv"
    bad.write_text("track_id,track_name\n" + "x" * 22 + ",song\n")
    with pytest.raises(UserError, match="no column for"):
        import_csv(bad, force=True)
    assert dump(Path(report["path"])) == before
    assert leftovers(home) == []


def test_an_interrupted_import_leaves_nothing(home: Path) -> None:
    def interrupt(n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_csv(SAMPLE, progress=interrupt)
    assert list((home / "catalogs").iterdir()) == []


def test_progress_and_stage_cover_the_whole_file() -> None:
    advanced: list[int] = []
    stages: list[tuple[str, int | None]] = []
    import_csv(SAMPLE, progress=advanced.append, stage=lambda d, t: stages.append((d, t)))
    assert stages == [("importing", SAMPLE.stat().st_size)]
    assert sum(advanced) == SAMPLE.stat().st_size


# import: Kaggle layouts


def test_import_kaggle_tracks_layout(tmp_path: Path) -> None:
    report = import_csv(KAGGLE_TRACKS, "kaggle")
    assert report["rows"] == 7
    assert report["skipped"] == {"bad track id": 1, "valence out of range": 1}
    assert (report["tracks"], report["duplicates_merged"]) == (4, 1)
    assert report["genres"] == {"acoustic": 4, "j-pop": 1}
    assert report["columns"]["id"] == "track_id"
    with Catalog(catalog_path("kaggle")) as cat:
        found = cat.lookup(["1iJBSr7s7jYXzM8EGcbK5b"])
    assert found["1iJBSr7s7jYXzM8EGcbK5b"].artist == "Ingrid Michaelson, ZAYN"
    assert info("kaggle")["subgenres"] == {}


def test_import_kaggle_id_name_artists_layout_with_python_list_artists() -> None:
    report = import_csv(KAGGLE_600K, "k600")
    assert report["skipped"] == {"valence not a number": 1}
    assert (report["rows"], report["tracks"], report["genres"]) == (4, 3, {})
    assert report["columns"]["name"] == "name" and report["columns"]["artist"] == "artists"
    with Catalog(resolve_catalog("k600")) as cat:
        found = cat.lookup(["4pyw9DVHGStUre4J6hPngr", "35iwgR4jXetI318WEWsa1Q"])
    assert found["4pyw9DVHGStUre4J6hPngr"].name == "Lazy Boy, Take a Walk"
    assert found["4pyw9DVHGStUre4J6hPngr"].artist == "Dick Haymes, Bob Crosby"
    assert found["35iwgR4jXetI318WEWsa1Q"].artist == "Uli"
    assert info("k600")["tracks_without_genre"] == 3


def test_spotify_features_layout_with_note_names_uris_and_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "SpotifyFeatures.csv"
    path.write_text(
        "\ufeffgenre,artist_name,track_name,track_id,popularity,acousticness,danceability,"
        "duration_ms,energy,instrumentalness,key,liveness,loudness,mode,speechiness,tempo,"
        "time_signature,valence\n"
        "Movie,Henri Salvador,C'est beau de faire un Show,spotify:track:0BRjO6ga9RKCKjfDqeFgWV,"
        "0,0.611,0.389,99373,0.91,0,C#,0.346,-1.828,Major,0.0525,166.969,4/4,0.814\n"
        "Movie,Martin & les fées,Perdu d'avance,https://open.spotify.com/track/0BjC1NfoEOOusryehmNudP?si=x,"
        "1,0.246,0.59,137373,0.737,0,F#,0.151,-5.559,Minor,0.0868,174.003,4/4,0.816\n",
        encoding="utf-8",
    )
    report = import_csv(path, "features")
    assert (report["tracks"], report["skipped"]) == (2, {})
    with sqlite3.connect(report["path"]) as con:
        rows = con.execute("SELECT id, key, mode FROM tracks ORDER BY id").fetchall()
    con.close()
    assert rows == [("0BRjO6ga9RKCKjfDqeFgWV", 1, 1), ("0BjC1NfoEOOusryehmNudP", 6, 0)]


# import: bad input


def test_every_bad_row_is_skipped_with_its_reason(tmp_path: Path) -> None:
    header = SAMPLE.read_text(encoding="utf-8").splitlines()[0]
    good = sample_rows()[0]

    def row(**change: str) -> str:
        return ",".join(f'"{v}"' for v in {**good, **change}.values())

    lines = [
        header,
        row(),
        row(track_id="short"),
        row(track_name=""),
        row(track_artist="  "),
        row(energy=""),
        row(danceability="high"),
        row(valence="nan"),
        row(speechiness="1.5"),
        row(loudness="-61"),
        row() + ",extra",
        "",
        row(track_id="1" * 22, key="x", mode="7", tempo="fast", track_popularity="101"),
        row(track_name="The same track listed again"),
    ]
    path = tmp_path / "bad_rows.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_csv(path, "bad")
    assert report["rows"] == 12
    assert report["skipped"] == {
        "bad track id": 1,
        "danceability not a number": 1,
        "energy missing": 1,
        "loudness out of range": 1,
        "missing artist": 1,
        "missing name": 1,
        "speechiness out of range": 1,
        "valence not a number": 1,
        "wrong number of fields": 1,
    }
    assert (report["tracks"], report["duplicates_merged"]) == (2, 1)
    with sqlite3.connect(report["path"]) as con:
        optional = con.execute(
            "SELECT key, mode, tempo, popularity FROM tracks WHERE id = ?", ("1" * 22,)
        ).fetchone()
        first = con.execute("SELECT name FROM tracks WHERE id = ?", (good["track_id"],)).fetchone()
    con.close()
    assert optional == (None, None, None, None)
    assert first == (good["track_name"],)  # the first row of a track wins
    assert info("bad")["skipped"] == report["skipped"]


def test_unrecognised_header_names_the_missing_columns(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("track_id,title,singer,energy\n" + "a" * 22 + ",x,y,0.5\n")
    with pytest.raises(UserError) as caught:
        import_csv(path)
    message = str(caught.value)
    assert "name (track_name or name)" in message
    assert "artist (track_artist, artists, artist_name or artist)" in message
    assert "valence" in message and "energy," not in message.split("(its header")[0]
    assert "track_id, title, singer, energy" in message
    assert not catalog_path("tidytuesday").exists()
    assert leftovers(home) == []


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "is empty"),
        (b"\xff\xfe\x00\x01binary\x00junk", "not UTF-8"),
        (SAMPLE.read_bytes().split(b"\n")[0] + b"\n", "no track that can be imported"),
        (
            SAMPLE.read_bytes().split(b"\n")[0] + b"\n" + b"NA," * 22 + b"1\n",
            r"no track that can be imported \(bad track id: 1\)",
        ),
        (
            SAMPLE.read_bytes().split(b"\n")[0] + b'\n"' + b"x" * 200_000 + b'"\n',
            "line 2: field larger than field limit",
        ),
    ],
)
def test_unusable_files_are_user_errors(
    home: Path, tmp_path: Path, content: bytes, match: str
) -> None:
    path = tmp_path / "input.csv"
    path.write_bytes(content)
    with pytest.raises(UserError, match=match):
        import_csv(path)
    assert not catalog_path("tidytuesday").exists()
    assert leftovers(home) == []


def test_missing_csv_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"absent\.csv: no such file"):
        import_csv(tmp_path / "absent.csv")
    with pytest.raises(UserError, match="is a folder"):
        import_csv(tmp_path)


# resolve, open, info


def test_resolve_catalog_by_name_path_and_default(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="pressedplay catalog download"):
        resolve_catalog()
    with pytest.raises(UserError, match="pressedplay catalog import CSV` --name mine"):
        resolve_catalog("mine")
    with pytest.raises(UserError, match="no catalog file at"):
        resolve_catalog(tmp_path / "absent.db")
    with pytest.raises(UserError, match="no catalog file at"):
        resolve_catalog("absent.db")
    path = Path(import_csv(SAMPLE, "mine")["path"])
    assert resolve_catalog("mine") == path
    assert resolve_catalog(path) == path
    assert resolve_catalog(str(path)) == path


def test_files_that_are_not_catalogs_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("not a database at all, just some text that is long enough" * 10)
    with pytest.raises(UserError, match="not a sqlite database"):
        Catalog(text)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE covers (id INTEGER)")
    con.close()
    with pytest.raises(UserError, match="not a pressedplay catalog"):
        info(other)
    with pytest.raises(UserError, match="no catalog file"):
        Catalog(tmp_path / "absent.db")


def test_catalog_is_opened_read_only() -> None:
    path = Path(import_csv(SAMPLE)["path"])
    with Catalog(path) as cat, pytest.raises(sqlite3.OperationalError, match="readonly"):
        cat._con.execute("DELETE FROM tracks")


def test_info_reports_counts_genres_and_feature_ranges() -> None:
    import_csv(SAMPLE)
    report = info()
    good = [r for r in sample_rows() if r["track_name"] != "NA"]
    assert report["tracks"] == 251 and report["rows"] == 300
    assert report["genres"]["pop"] == 75
    subgenres: dict[str, set[str]] = {}
    for r in good:
        subgenres.setdefault(r["playlist_subgenre"], set()).add(r["track_id"])
    assert report["subgenres"] == {k: len(v) for k, v in subgenres.items()}
    assert report["tracks_without_genre"] == 0
    for name in NAMES:
        values = {r["track_id"]: float(r[name]) for r in good}.values()
        assert report["features"][name]["min"] == min(values)
        assert report["features"][name]["max"] == max(values)
        assert report["features"][name]["mean"] == pytest.approx(sum(values) / len(values))
    assert report["skipped"] == {"missing name": 1}
    assert report["source"] == str(SAMPLE.resolve())


# download from a real HTTP server on 127.0.0.1


class Server:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture
def server() -> Iterator[Server]:
    served = Server({"/data/spotify_songs.csv": SAMPLE.read_bytes()})
    thread = threading.Thread(target=served.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield served
    served.httpd.shutdown()
    served.httpd.server_close()
    thread.join()


SAMPLE_SHA256 = hashlib.sha256(SAMPLE.read_bytes()).hexdigest()


def test_download_verifies_imports_and_reuses_the_cached_file(home: Path, server: Server) -> None:
    url = server.url("/data/spotify_songs.csv")
    advanced: list[int] = []
    stages: list[tuple[str, int | None]] = []
    report = catalog.download(
        url=url,
        sha256=SAMPLE_SHA256,
        progress=advanced.append,
        stage=lambda d, t: stages.append((d, t)),
    )
    size = SAMPLE.stat().st_size
    assert stages == [("downloading", size), ("importing", size)]
    assert sum(advanced) == 2 * size
    cached = home / "downloads" / "spotify_songs.csv"
    assert report["download"] == {"url": url, "file": str(cached), "cached": False}
    assert cached.read_bytes() == SAMPLE.read_bytes()
    assert (report["tracks"], report["source"]) == (251, url)
    assert info()["source"] == url
    assert server.requests == ["/data/spotify_songs.csv"]

    with pytest.raises(UserError, match="already exists"):
        catalog.download(url=url, sha256=SAMPLE_SHA256)
    again = catalog.download(url=url, sha256=SAMPLE_SHA256.upper(), force=True)
    assert again["download"]["cached"] is True
    assert len(server.requests) == 1  # neither the refusal nor the reuse asked the server
    assert leftovers(home) == []


def test_download_replaces_a_damaged_cached_file(home: Path, server: Server) -> None:
    cached = home / "downloads" / "spotify_songs.csv"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(SAMPLE.read_bytes()[:1000])
    report = catalog.download(url=server.url("/data/spotify_songs.csv"), sha256=SAMPLE_SHA256)
    assert report["download"]["cached"] is False
    assert cached.read_bytes() == SAMPLE.read_bytes()


def test_download_with_the_wrong_sha256_removes_the_file(home: Path, server: Server) -> None:
    stale = home / "downloads" / "spotify_songs.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("an older file under the same name")
    wrong = "0" * 64
    with pytest.raises(UserError, match=f"has sha256 {SAMPLE_SHA256}, expected {wrong}; it was"):
        catalog.download(url=server.url("/data/spotify_songs.csv"), sha256=wrong)
    assert list((home / "downloads").iterdir()) == []
    assert not catalog_path("tidytuesday").exists()


def test_download_http_errors_and_bad_urls_are_user_errors(home: Path, server: Server) -> None:
    with pytest.raises(UserError, match="failed: HTTP 404 Not Found"):
        catalog.download(url=server.url("/missing.csv"), sha256=SAMPLE_SHA256)
    assert list((home / "downloads").iterdir()) == []
    server.httpd.shutdown()
    server.httpd.server_close()
    with pytest.raises(UserError, match="could not download"):
        catalog.download(url=server.url("/data/spotify_songs.csv"), sha256=SAMPLE_SHA256)
    with pytest.raises(UserError, match="could not download"):
        catalog.download(url="not a url", sha256=SAMPLE_SHA256)
    with pytest.raises(UserError, match="64 hexadecimal digits"):
        catalog.download(url=server.url("/data/spotify_songs.csv"), sha256="abc")
    assert not catalog_path("tidytuesday").exists()
    assert leftovers(home) == []


# the default catalog, fetched on first use


@pytest.fixture
def default_source(server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    """The default catalog's source pointed at the local server's sample."""
    monkeypatch.setattr(catalog, "TIDYTUESDAY_URL", server.url("/data/spotify_songs.csv"))
    monkeypatch.setattr(catalog, "TIDYTUESDAY_SHA256", SAMPLE_SHA256)
    return server


def test_the_default_catalog_is_fetched_on_first_use_and_kept(
    home: Path, default_source: Server
) -> None:
    advanced: list[int] = []
    stages: list[tuple[str, int | None]] = []
    path = resolve_catalog(progress=advanced.append, stage=lambda d, t: stages.append((d, t)))
    assert path == catalog_path("tidytuesday")
    with Catalog(path) as fetched:
        assert len(fetched) == 251
    size = SAMPLE.stat().st_size
    assert stages == [("downloading", size), ("importing", size)]
    assert sum(advanced) == 2 * size
    assert (home / "downloads" / "spotify_songs.csv").read_bytes() == SAMPLE.read_bytes()
    assert resolve_catalog() == path
    assert default_source.requests == ["/data/spotify_songs.csv"]  # once, then kept
    assert leftovers(home) == []


def test_a_named_catalog_is_never_fetched(default_source: Server) -> None:
    with pytest.raises(UserError, match="catalog import CSV` --name mine"):
        resolve_catalog("mine")
    with pytest.raises(UserError, match=r"no catalog named 'tidytuesday' in .*catalog download`"):
        resolve_catalog("tidytuesday")
    assert default_source.requests == []


def test_a_failed_first_use_says_where_to_put_the_csv(
    home: Path, default_source: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = home / "downloads" / "spotify_songs.csv"
    by_hand = "`pressedplay catalog import FILE.csv`, or put TidyTuesday's spotify_songs.csv at"
    monkeypatch.setattr(catalog, "TIDYTUESDAY_SHA256", "0" * 64)
    with pytest.raises(UserError, match=r"^no catalog named 'tidytuesday'") as bad:
        resolve_catalog()
    assert "has sha256" in str(bad.value) and f"{by_hand} {cached} for" in str(bad.value)
    monkeypatch.setattr(catalog, "TIDYTUESDAY_SHA256", SAMPLE_SHA256)
    default_source.httpd.shutdown()
    default_source.httpd.server_close()
    with pytest.raises(UserError, match=r"fetching it failed \(could not download") as offline:
        resolve_catalog()
    assert f"{by_hand} {cached} for" in str(offline.value)
    assert not catalog_path("tidytuesday").exists() and leftovers(home) == []

    cached.write_bytes(SAMPLE.read_bytes())  # put there by hand: used without the network
    with Catalog(resolve_catalog()) as placed:
        assert len(placed) == 251


def test_cli_generate_and_serve_fetch_the_default_catalog_on_first_use(
    cli, picture: Path, default_source: Server, tmp_path: Path
) -> None:
    from pressedplay.server import create_app

    create_app(model="prior", feedback_db=tmp_path / "feedback.db", env_file=None)
    assert default_source.requests == ["/data/spotify_songs.csv"]
    catalog_path("tidytuesday").unlink()
    result = cli("generate", picture, "--model", "prior", "--n", "3", "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["catalog"] == str(catalog_path("tidytuesday"))
    assert len(default_source.requests) == 1  # the verified download was reused


def test_cli_first_use_offline_is_one_error_line(cli, picture: Path) -> None:
    result = cli("generate", picture, "--model", "prior")  # conftest: the URL refuses
    assert result.code == 2 and result.err.count("\n") == 1 and "Traceback" not in result.err
    assert result.err.startswith("error: no catalog named 'tidytuesday'")
    assert "could not download http://127.0.0.1:" in result.err
    assert "`pressedplay catalog import FILE.csv`" in result.err


# the CLI


def test_cli_import_and_info(cli, home: Path) -> None:
    result = cli("catalog", "import", SAMPLE, "--name", "sample", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert (report["catalog"], report["tracks"]) == ("sample", 251)
    assert result.err == ""

    result = cli("catalog", "import", SAMPLE, "--name", "sample")
    assert result.code == 2
    assert (
        result.err
        == f"error: catalog {home / 'catalogs' / 'sample.db'} already exists; use --force to replace it\n"
    )

    result = cli("catalog", "import", KAGGLE_TRACKS, "--name", "sample", "--force")
    assert result.code == 0, result.err
    assert (
        "catalog sample: 4 tracks from 7 rows (1 duplicates merged, 2 rows skipped)" in result.out
    )
    assert "skipped 1: valence out of range" in result.out
    assert "genres: acoustic 4, j-pop 1" in result.out

    result = cli("catalog", "info", "sample", "--json")
    assert result.code == 0
    assert json.loads(result.out)["genres"] == {"acoustic": 4, "j-pop": 1}
    result = cli("catalog", "info", home / "catalogs" / "sample.db")
    assert result.code == 0
    assert "4 tracks" in result.out and "loudness" in result.out

    result = cli("catalog", "list", "--json")
    assert json.loads(result.out) == [
        {"name": "sample", "path": str(home / "catalogs" / "sample.db"), "tracks": 4}
    ]
    assert "sample" in cli("catalog", "list").out


def test_cli_errors_exit_2_with_one_line(cli, tmp_path: Path) -> None:
    for args, message in [
        (("catalog", "info"), "pressedplay catalog download"),
        (("catalog", "import", tmp_path / "absent.csv"), "absent.csv: no such file"),
        (("catalog", "import", KAGGLE_600K, "--name", "a/b"), "is not allowed"),
        (("catalog", "download", "--url", "http://127.0.0.1:9/x.csv"), "--url needs --sha256"),
    ]:
        result = cli(*args)
        assert result.code == 2
        assert result.err.startswith("error: ") and message in result.err
        assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert cli("catalog", "list").out.startswith("no catalogs yet")


def test_cli_download(cli, server: Server, home: Path) -> None:
    url = server.url("/data/spotify_songs.csv")
    result = cli("catalog", "download", "--url", url, "--sha256", SAMPLE_SHA256, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["download"]["cached"] is False
    result = cli("catalog", "download", "--url", url, "--sha256", SAMPLE_SHA256, "--force")
    assert result.code == 0, result.err
    assert result.out.startswith(f"cached {url} -> {home / 'downloads' / 'spotify_songs.csv'}")
    result = cli("catalog", "download", "--url", url, "--sha256", "f" * 64, "--name", "x")
    assert result.code == 2
    assert "expected " + "f" * 64 in result.err
