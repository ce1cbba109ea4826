"""Collect a cover dataset from Spotify: each playlist's cover paired with its tracks' features.

Spotify still serves playlists, their items, search and cover images, but audio features
only to apps that had access before November 2024 and users' playlist lists only to apps
outside development mode (2026). So features come from Spotify while the app still gets
them and from the local catalog (pressedplay.catalog) once Spotify refuses, which is said
once and never asked again in that run. Everything goes through DatasetWriter, so an
interrupted collection resumes from OUT.partial without duplicates.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import requests
import spotipy
from spotipy.exceptions import SpotifyException, SpotifyOauthError

from pressedplay import images
from pressedplay.catalog import Catalog, resolve_catalog
from pressedplay.dataset import DatasetWriter, TrackFeatures
from pressedplay.errors import UserError
from pressedplay.features import NAMES
from pressedplay.spotify import (
    ID_ENV,
    SECRET_ENV,
    WaitTooLong,
    client_from_env,
    http_session,
    parse_playlist,
)

FEATURE_BATCH = 100  # audio-features takes at most 100 ids
SEARCH_PAGE = 10  # the 2026 maximum for search in development mode
ITEMS_PAGE = 50

Progress = Callable[[int], None]


@contextmanager
def _spotify_errors() -> Iterator[None]:
    """Turn what Spotify or the network answered into one sentence; the partial build stays."""
    resume = "run the same command again later to resume"
    try:
        yield
    except SpotifyOauthError as exc:
        raise UserError(
            f"Spotify refused the app credentials ({exc.error or 'no reason given'}): "
            f"check {ID_ENV} and {SECRET_ENV}"
        ) from None
    except WaitTooLong as exc:
        raise UserError(
            f"Spotify asks to wait {exc.seconds:.0f} s before the next request (rate limit); "
            f"{resume}"
        ) from None
    except SpotifyException as exc:
        if exc.http_status == 401:
            raise UserError(
                f"Spotify refused the access token (401); check {ID_ENV} and {SECRET_ENV}"
            ) from None
        if exc.http_status == 429:  # spotipy's word for any exhausted retry
            raise UserError(
                f"Spotify kept failing after retries ({exc.reason or 'rate limited'}); {resume}"
            ) from None
        where = exc.msg.split(":\n")[0]
        raise UserError(f"Spotify answered {exc.http_status} for {where}; {resume}") from None
    except requests.RequestException as exc:
        raise UserError(f"could not reach Spotify ({type(exc).__name__}); {resume}") from None


def _stderr_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class _Collector:
    """One run's state: which feature source still works, features already fetched."""

    def __init__(
        self,
        client: spotipy.Spotify,
        catalog: str | Path | None,
        warn: Callable[[str], None],
        stack: ExitStack,
    ) -> None:
        self.client = client
        self.catalog_arg = catalog
        self.catalog: Catalog | None = None
        self.warn = warn
        self.stack = stack
        self.spotify_features = True  # until Spotify answers 403/404 once
        self.features: dict[str, tuple[float, ...] | None] = {}
        self.features_from: Counter[str] = Counter()
        self.warnings: list[str] = []
        self.images = stack.enter_context(http_session(4, 0.5))

    def say(self, message: str) -> None:
        self.warnings.append(message)
        self.warn(message)

    # --- which playlists ---------------------------------------------------------------
    def user_playlists(self, user: str, limit: int | None) -> list[str]:
        ids: list[str] = []
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                page = self.client.user_playlists(user, limit=ITEMS_PAGE)
            while page and (limit is None or len(ids) < limit):
                ids += [p["id"] for p in page["items"] if p and p.get("id")]
                page = self.client.next(page)
        except SpotifyException as exc:
            if exc.http_status not in (403, 404):
                raise
            self.say(
                f"Spotify answered {exc.http_status} for user {user!r}'s playlists: the user "
                "does not exist, or (since 2026) GET /users/{id}/playlists is closed to "
                "development-mode apps; pass --playlist URLs or --query TEXT instead"
            )
        return ids

    def search(self, query: str, limit: int | None) -> list[str]:
        ids: list[str] = []
        page = self.client.search(query, limit=SEARCH_PAGE, type="playlist")["playlists"]
        while page and (limit is None or len(ids) < limit):
            # Spotify pads search pages with null entries.
            ids += [p["id"] for p in page["items"] if p and p.get("id")]
            page = self.client.next(page)["playlists"] if page.get("next") else None
        return ids

    # --- one playlist -------------------------------------------------------------------
    def playlist(self, writer: DatasetWriter, pid: str) -> None:
        key = f"spotify:playlist:{pid}"
        try:
            playlist = self.client.playlist(pid, fields="id,name,images,owner(id)")
            tracks, skipped = self.items(pid)
        except SpotifyException as exc:
            if exc.http_status not in (403, 404):
                raise
            writer.skip("playlist not found or private", key=key)
            return
        cover = self.cover(playlist.get("images") or [])
        if isinstance(cover, str):
            writer.skip(cover, key=key)
            return
        features = self.lookup([t["id"] for t in tracks])
        rows = [
            TrackFeatures(t["id"], t.get("name"), _artists(t), features.get(t["id"]) or ())
            for t in tracks
        ]
        # Non-track items and tracks without features are counted in the cover's commit.
        writer.add_cover(cover, key, rows, key=key, skipped=skipped)

    def items(self, pid: str) -> tuple[list[dict], Counter[str]]:
        """The playlist's tracks (each once), and how many items were not tracks, by why."""
        tracks: dict[str, dict] = {}
        skipped: Counter[str] = Counter()
        page = self.client.playlist_items(pid, limit=ITEMS_PAGE)
        while page:
            for entry in page["items"]:
                # 2026 responses call the item "item"; earlier ones "track".
                track = (entry or {}).get("item", (entry or {}).get("track"))
                if track is None:
                    skipped["unavailable track"] += 1
                elif entry.get("is_local") or track.get("is_local"):
                    skipped["local file"] += 1
                elif track.get("type", "track") != "track":
                    skipped[f"{track['type']} (not a track)"] += 1
                elif not track.get("id"):
                    skipped["unavailable track"] += 1
                else:
                    tracks.setdefault(track["id"], track)
            page = self.client.next(page)
        return list(tracks.values()), skipped

    def cover(self, listed: list[dict]) -> bytes | str:
        """The largest listed image's bytes, or why there is none."""
        if not listed:
            return "playlist without cover"
        # Spotify lists the largest first; uploaded covers come without sizes.
        best = max(listed, key=lambda im: (im.get("width") or 0) * (im.get("height") or 0))
        if not best.get("url"):
            return "playlist without cover"
        with self.images.get(best["url"], timeout=15, stream=True) as response:
            if response.status_code != 200:
                return "cover download failed"
            data = bytearray()
            for chunk in response.iter_content(1 << 16):
                data += chunk
                if len(data) > images.MAX_BYTES:  # enough to be refused (and counted)
                    break
        return bytes(data)

    # --- features -----------------------------------------------------------------------
    def lookup(self, ids: Sequence[str]) -> dict[str, tuple[float, ...] | None]:
        need = [i for i in ids if i not in self.features]
        if need and self.spotify_features:
            need = self.from_spotify(need)
        if need and (not self.spotify_features or self.catalog_arg is not None):
            found = self.open_catalog().lookup(need)
            for i in need:
                entry = found.get(i)
                self.features[i] = tuple(entry.features) if entry else None
                self.features_from["catalog"] += entry is not None
        else:  # Spotify answered, with nothing for these, and no catalog was asked for
            self.features.update(dict.fromkeys(need))
        return {i: self.features[i] for i in ids}

    def from_spotify(self, ids: list[str]) -> list[str]:
        """Fetch features in batches; the ids Spotify had nothing for (all, once it refuses)."""
        left = []
        for start in range(0, len(ids), FEATURE_BATCH):
            batch = ids[start : start + FEATURE_BATCH]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    answers = self.client.audio_features(batch)
            except SpotifyException as exc:
                if exc.http_status not in (403, 404):
                    raise
                self.spotify_features = False
                self.say(
                    f"Spotify answered {exc.http_status} for audio features (removed for apps "
                    "created after November 2024); taking features from the catalog instead"
                )
                return left + ids[start:]
            # A short or missing answer leaves the rest to the catalog, not unaccounted.
            answers = list(answers or [])[: len(batch)]
            answers += [None] * (len(batch) - len(answers))
            for track_id, answer in zip(batch, answers, strict=True):
                values = tuple((answer or {}).get(name) for name in NAMES)
                if all(isinstance(v, int | float) for v in values):
                    self.features[track_id] = tuple(float(v) for v in values)
                    self.features_from["spotify"] += 1
                else:
                    left.append(track_id)
        return left

    def open_catalog(self) -> Catalog:
        if self.catalog is None:
            self.catalog = self.stack.enter_context(Catalog(resolve_catalog(self.catalog_arg)))
        return self.catalog


def _artists(track: dict) -> str | None:
    names = [a["name"] for a in track.get("artists") or [] if a and a.get("name")]
    return ", ".join(names) or None


def collect(
    out: Path,
    *,
    playlists: Sequence[str] = (),
    user: str | None = None,
    query: str | None = None,
    catalog: str | Path | None = None,
    limit: int | None = None,
    force: bool = False,
    seed: int = 0,
    progress: Progress | None = None,
    client: spotipy.Spotify | None = None,
    warn: Callable[[str], None] = _stderr_warning,
) -> dict:
    """Build a cover dataset at OUT from Spotify playlists; the dataset's info plus a report.

    Sources: playlists (URLs, URIs or ids), a user's public playlists, a playlist search;
    at most `limit` playlists in all. Rerunning after an interruption with the same
    arguments continues where it stopped. `seed` picks the train/valid/test split. `warn`
    gets each one-line warning once (default: printed to stderr).
    """
    ids = [parse_playlist(ref) for ref in playlists]
    if not (ids or user or query):
        raise UserError("say which playlists to collect: --playlist, --user or --query")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, not {limit}")
    if catalog is not None:
        resolve_catalog(catalog)  # a mistyped name fails before any request
    source = json.dumps(
        {
            "spotify": {"playlists": ids, "user": user, "query": query, "limit": limit},
            "catalog": None if catalog is None else str(catalog),
        },
        sort_keys=True,
    )
    with ExitStack() as stack, _spotify_errors():
        run = _Collector(client or client_from_env(), catalog, warn, stack)
        if user:
            ids += run.user_playlists(user, limit)
        if query:
            ids += run.search(query, limit)
        ids = list(dict.fromkeys(ids))[:limit]
        if not ids:
            raise UserError("no playlists to collect: the user and the search gave none")
        writer = stack.enter_context(
            DatasetWriter(Path(out), source=source, force=force, seed=seed)
        )
        resumed = 0
        for pid in ids:
            if writer.is_done(f"spotify:playlist:{pid}"):
                resumed += 1
            else:
                run.playlist(writer, pid)
            if progress is not None:
                progress(1)
        report = writer.finish()
    report.update(
        playlists={"listed": len(ids), "resumed": resumed},
        features_from=dict(run.features_from),
        warnings=run.warnings,
    )
    return report
