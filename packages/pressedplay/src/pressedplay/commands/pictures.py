"""`predict`, `generate`, `feedback` and `serve`: a picture's features, its playlist, a
verdict on it, and the web page doing the same. Each parses its options, calls one use case
of pressedplay.picture (or the server) and renders the answer."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pressedplay.commands.catalogs import fetched
from pressedplay.commands.console import err, out
from pressedplay.commands.options import (
    CatalogOption,
    DeviceOption,
    FeedbackDbOption,
    JsonOption,
    ModelOption,
)
from pressedplay.errors import UserError

if TYPE_CHECKING:  # the heavy imports wait until a command runs
    import spotipy

    from pressedplay.picture import Continuation, Picture
    from pressedplay.predict import Predictor

ImageArgument = Annotated[Path, typer.Argument(metavar="IMG", help="The picture to match.")]
GenreOption = Annotated[
    list[str] | None,
    typer.Option(metavar="G", help="Keep tracks of this catalog genre (repeatable)."),
]
GenreMappingOption = Annotated[
    Path | None,
    typer.Option(
        metavar="MAPPING.json",
        help="With --spotify: your own {fine genre: [genres]} mapping for top artists.",
    ),
]
TracksOption = Annotated[int, typer.Option("--n", min=1, help="Tracks in the playlist.")]
ArtistCapOption = Annotated[int, typer.Option(min=1, help="At most this many per artist.")]
FormatOption = Annotated[str, typer.Option("--format", help="table, json or m3u.")]
SpotifyOption = Annotated[
    bool,
    typer.Option(
        "--spotify",
        help="Save as a private playlist in your Spotify account with the image as cover; "
        "without --genre, filter by your top artists' genres.",
    ),
]
ContinueOption = Annotated[
    Path | None,
    typer.Option(
        "--continue",
        metavar="TRECS_RUN",
        help="Seed tracks nearest the picture, continued by this trecs run's transformer "
        "and reranked toward the picture (needs pressedplay[trecs]).",
    ),
]
MpdDbOption = Annotated[
    Path | None,
    typer.Option(
        metavar="MPD_DB",
        help="With --continue: the trecs database with audio features [default: the run's].",
    ),
]
FeatureWeightOption = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="With --continue: 0 ranks the transformer's candidates by its score alone, "
        "1 by distance to the picture's features alone [default: 0.6].",
    ),
]
SeedsOption = Annotated[
    int | None,
    typer.Option(
        min=1, help="With --continue: seed tracks, nearest the picture, one per artist [5]."
    ),
]
CandidatesOption = Annotated[
    int | None,
    typer.Option(
        min=1, help="With --continue: the transformer's best tracks reranked per step [100]."
    ),
]


def predict_command(
    images: Annotated[
        list[Path], typer.Argument(metavar="IMG...", help="Images to predict features for.")
    ],
    model: ModelOption = None,
    plot: Annotated[
        Path | None, typer.Option(metavar="RADAR.png", help="Also draw the features as a radar.")
    ] = None,
    sample: Annotated[
        bool, typer.Option(help="Draw from the latent instead of using its mean.")
    ] = False,
    seed: Annotated[int, typer.Option(min=0, help="Seed of --sample.")] = 0,
    device: DeviceOption = "cpu",
    json_: JsonOption = False,
) -> None:
    """The eight audio features of each image, in original units (loudness in dB).

    Images that cannot be read are reported one line each; the others are still answered
    (exit code 2 if any failed).
    """
    from pressedplay.predict import load_predictor, predict_files
    from pressedplay.render import feature_table

    predictor = load_predictor(model, device=device, sample=sample, seed=seed)
    results = predict_files(images, predictor)
    failed = [r for r in results if "error" in r]
    if plot is not None and len(failed) < len(results):
        from pressedplay.plots import radar

        radar([r for r in results if "features" in r], plot)
    if json_:
        print(json.dumps(results))
    else:
        out.print(f"model: {predictor.name}")
        if len(failed) < len(results):
            out.print(feature_table(results))
        if plot is not None and len(failed) < len(results):
            out.print(f"radar chart -> {plot}")
    for result in failed:
        err.print(f"error: {result['image']}: {result['error']}", highlight=False)
    if failed:
        raise typer.Exit(2)


def _load(image: Path, model: str | None, device: str) -> tuple[Predictor, Picture]:
    """The predictor, then the picture (a bad model is said before a bad file)."""
    from pressedplay.picture import read_picture
    from pressedplay.predict import load_predictor

    predictor = load_predictor(model, device=device)
    return predictor, read_picture(image)


def _continuation(run: Path | None, db: Path | None, **knobs: float | None) -> Continuation | None:
    """--continue's settings, or None without it; UserError for its options given alone
    (`knobs`: the options' values by their names without dashes) or without trecs."""
    given = {"db": db, **knobs}
    if run is None:
        alone = [
            f"--{name.replace('_', '-')}" for name, value in given.items() if value is not None
        ]
        if alone:
            raise UserError(f"{', '.join(alone)} only go with --continue TRECS_RUN")
        return None
    from pressedplay.continuation import require_trecs
    from pressedplay.picture import Continuation

    _keep_compiled_programs()  # before require_trecs imports JAX, which reads it
    require_trecs()  # before the model is loaded and the picture predicted
    return Continuation(run, db, **{k: v for k, v in knobs.items() if v is not None})


def _keep_compiled_programs() -> None:
    """--continue compiles trecs programs: kept between commands in JAX's compilation
    cache, as trecs' own commands keep them. Nothing without the trecs extra (then
    `require_trecs` says how to install it)."""
    try:
        from trecs.compile_cache import keep_compiled_programs
    except ImportError:
        return
    keep_compiled_programs()


def _spotify_login() -> spotipy.Spotify:
    """The user's Spotify client; where to log in is said when the cached login is gone."""
    from pressedplay.spotify_account import login_url, user_client

    client = user_client()
    url = login_url(client)
    if url:
        err.print(f"log in to Spotify in the browser window that opens, or open: {url}")
    return client


def generate_command(
    image: ImageArgument,
    model: ModelOption = None,
    catalog: CatalogOption = None,
    genre: GenreOption = None,
    genre_mapping: GenreMappingOption = None,
    n: TracksOption = 20,
    max_per_artist: ArtistCapOption = 2,
    format_: FormatOption = "table",
    spotify: SpotifyOption = False,
    continue_: ContinueOption = None,
    db: MpdDbOption = None,
    feature_weight: FeatureWeightOption = None,
    seeds: SeedsOption = None,
    candidates: CandidatesOption = None,
    device: DeviceOption = "cpu",
) -> None:
    """A playlist of catalog tracks whose features are nearest to the picture's, or with
    --continue a trecs transformer's continuation of the picture's nearest tracks."""
    if format_ not in ("table", "json", "m3u"):
        raise UserError(f"--format {format_!r}: expected table, json or m3u")
    if genre_mapping is not None and not spotify:
        raise UserError("--genre-mapping goes with --spotify (it maps your top artists' genres)")
    if continue_ is not None:
        given = [o for o, v in (("--catalog", catalog), ("--genre", genre)) if v is not None]
        given += ["--genre-mapping"] if genre_mapping is not None else []
        if given:
            raise UserError(
                f"{', '.join(given)} do not apply with --continue: its tracks come from the "
                "trecs database (--db)"
            )
    continuing = _continuation(
        continue_, db, feature_weight=feature_weight, seeds=seeds, candidates=candidates
    )
    from pressedplay.picture import playlist_for_picture

    predictor, picture = _load(image, model, device)
    answer = playlist_for_picture(
        picture,
        predictor,
        catalog=catalog if continuing is not None else fetched(catalog),
        genres=genre,
        genre_mapping=genre_mapping,
        n=n,
        max_per_artist=max_per_artist,
        continuing=continuing,
        spotify=_spotify_login if spotify else None,
    )
    _render_playlist(str(image), answer.playlist, answer.notices, format_)


def _render_playlist(image: str, result: dict, notices: list[str], format_: str) -> None:
    from pressedplay.playlist import to_m3u
    from pressedplay.render import print_playlist

    for note in notices:
        err.print(f"notice: {note}", highlight=False)
    for warning in result.get("spotify", {}).get("warnings", ()):
        err.print(f"warning: {warning}", highlight=False)
    if format_ == "json":
        print(json.dumps(result))
    elif format_ == "m3u":
        sys.stdout.write(to_m3u(result))
    else:
        print_playlist(out, image, result)
    if "spotify" in result:
        err.print(f"saved to Spotify: {result['spotify']['url']}", highlight=False)


def feedback_command(
    image: Annotated[Path, typer.Argument(metavar="IMG", help="The picture the playlist was for.")],
    like: Annotated[
        bool | None,
        typer.Option("--like/--dislike", help="Your verdict on the playlist for IMG."),
    ] = None,
    playlist: Annotated[
        str | None,
        typer.Option(
            metavar="FILE_OR_ID",
            help="The playlist judged: a `generate --format json|m3u` file or a Spotify "
            "playlist link or id.",
        ),
    ] = None,
    model: ModelOption = None,
    catalog: CatalogOption = None,
    feedback_db: FeedbackDbOption = None,
    device: DeviceOption = "cpu",
    json_: JsonOption = False,
) -> None:
    """Store a like or dislike for an image's playlist; `train --feedback` learns from them."""
    from pressedplay.picture import record_verdict

    if like is None:
        raise UserError("say --like or --dislike")
    predictor, picture = _load(image, model, device)
    report = record_verdict(
        picture,
        predictor,
        "like" if like else "dislike",
        playlist=playlist,
        catalog=catalog,
        feedback_db=feedback_db,
    )
    if json_:
        print(json.dumps(report))
        return
    out.print(
        f"stored {report['verdict']} #{report['id']} for {image} ({report['tracks']} tracks) "
        f"in {report['db']}",
        highlight=False,
    )


def serve_command(
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0: every network interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8000,
    model: ModelOption = None,
    catalog: CatalogOption = None,
    feedback_db: FeedbackDbOption = None,
    continue_: Annotated[
        Path | None,
        typer.Option(
            "--continue",
            metavar="TRECS_RUN",
            help="Playlists are this trecs run's continuations of the picture's nearest "
            "tracks, as `generate --continue` (needs pressedplay[trecs]).",
        ),
    ] = None,
    db: MpdDbOption = None,
    feature_weight: FeatureWeightOption = None,
    seeds: SeedsOption = None,
    candidates: CandidatesOption = None,
    device: DeviceOption = "cpu",
) -> None:
    """The web page: drop a picture, see its features and playlist, refine it by genre,
    like or dislike it, save it to Spotify. Its JSON API is described at /openapi.json."""
    from pressedplay.server import bind, create_app, hosts_for, serve, url

    web = create_app(
        model=model,
        catalog=fetched(catalog),
        feedback_db=feedback_db,
        device=device,
        allowed_hosts=hosts_for(host),
        continuing=_continuation(
            continue_, db, feature_weight=feature_weight, seeds=seeds, candidates=candidates
        ),
    )
    sock = bind(host, port)
    out.print(f"pressedplay: open {url(sock)} (Ctrl+C stops)", highlight=False)
    serve(web, sock)
