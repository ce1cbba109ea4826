"""The `trecs` command line: parses, calls the library, prints."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

# typer vendors click; its exception types are not re-exported publicly.
from typer._click.exceptions import ClickException, NoArgsIsHelpError

from trecs import __version__
from trecs.compile_cache import keep_compiled_programs
from trecs.display import markup_safe, printable
from trecs.errors import UserError
from trecs.inputs import check_output

app = typer.Typer(
    help="trecs: playlist continuation with a transformer over the Million Playlist Dataset.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
# Piped output is not cut to 80 columns: tables of links and figures stay readable.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        print(f"trecs {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """trecs: playlist continuation with a transformer over the Million Playlist Dataset."""


def _progress(hidden: bool = False) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=hidden or not err.is_terminal,
    )


JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
ForceOption = Annotated[bool, typer.Option("--force", help="Replace OUT if it already exists.")]


@app.command("synth-mpd")
def synth_mpd(
    out_dir: Annotated[Path, typer.Argument(help="Folder to create, laid out like the MPD.")],
    playlists: Annotated[int, typer.Option(min=1, help="Number of playlists.")] = 10_000,
    tracks: Annotated[
        int, typer.Option(min=250, help="Number of distinct tracks in the catalog.")
    ] = 50_000,
    seed: Annotated[
        int, typer.Option(min=0, help="Random seed; the output is identical per seed.")
    ] = 0,
    zip_: Annotated[
        bool, typer.Option("--zip", help="Also write OUT_DIR.zip in the MPD zip layout.")
    ] = False,
    force: ForceOption = False,
    json_: JsonOption = False,
) -> None:
    """Write synthetic playlists in the MPD format (slices, md5sums) plus catalog.csv.

    The data has planted structure (genres, Zipf popularity, album runs) so that models
    and baselines can be compared on it; the audio features in catalog.csv cluster by genre.
    """
    from trecs.synth import synth_mpd as run

    with _progress() as progress:
        task = progress.add_task("writing slices", total=None, detail="")
        report = run(
            out_dir,
            playlists=playlists,
            tracks=tracks,
            seed=seed,
            make_zip=zip_,
            force=force,
            on_slice=lambda done, total: progress.update(task, completed=done, total=total),
        )
    if json_:
        print(json.dumps(report.__dict__))
        return
    out.print(
        f"wrote {report.playlists:,} playlists ({report.entries:,} entries, {report.tracks:,} tracks) "
        f"in {report.slices} slices to {report.out_dir}"
        + (f" and {report.zip}" if report.zip else "")
    )


@app.command("build-db")
def build_db(
    out_db: Annotated[Path, typer.Argument(help="sqlite database to create.")],
    inputs: Annotated[
        list[Path],
        typer.Argument(help="The MPD zip (read in place), folders holding slices, or slice files."),
    ],
    split: Annotated[
        str, typer.Option(help="Train, validation and test fractions of playlists.")
    ] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option(min=0, help="Seed of the split assignment.")] = 42,
    features: Annotated[
        Path | None,
        typer.Option(
            help="CSV of audio features (TidyTuesday or Kaggle layout), joined on track id."
        ),
    ] = None,
    force: ForceOption = False,
    lenient: Annotated[
        bool, typer.Option(help="Skip invalid playlists (and report why) instead of stopping.")
    ] = False,
    verify_md5: Annotated[
        bool,
        typer.Option(
            "--verify-md5",
            help="Also hash every slice against the input's md5sums (as `trecs verify` does) while building.",
        ),
    ] = False,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Processes decoding slices (default: one per core).")
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Build the sqlite database from MPD slices, validating every playlist.

    Writes to a temporary file and renames it at the end, so an error or interrupt never
    leaves a partial database. Splits are assigned by a seeded hash of each playlist id.
    Run `trecs verify` on a downloaded archive first (or pass --verify-md5).
    """
    from trecs.build_db import build_database, parse_split

    fractions = parse_split(split)
    with _progress() as progress:
        task = progress.add_task("building", total=None, detail="")
        count = {"playlists": 0, "slices": 0}

        def on_slice(tables, total: int) -> None:
            count["playlists"] += len(tables.playlists)
            count["slices"] += 1
            progress.update(
                task,
                completed=count["slices"],
                total=total,
                detail=f"{count['playlists']:,} playlists",
            )

        report = build_database(
            out_db,
            inputs,
            split=fractions,
            seed=seed,
            features=features,
            force=force,
            lenient=lenient,
            verify_md5=verify_md5,
            workers=workers,
            on_slice=on_slice,
        )
    if json_:
        print(json.dumps(report.as_dict()))
        return
    rate = report.playlists / max(report.seconds, 1e-9)
    splits = ", ".join(f"{name} {n:,}" for name, n in report.splits.items())
    out.print(
        f"built {report.path}: {report.playlists:,} playlists, {report.entries:,} entries, "
        f"{report.tracks:,} tracks ({splits}) in {report.seconds:.1f} s ({rate:,.0f} playlists/s)"
    )
    if features is not None:
        out.print(
            f"audio features for {report.tracks_with_audio_features:,} of {report.tracks:,} tracks"
        )
    for reason, n in sorted(report.skipped.items(), key=lambda item: -item[1]):
        out.print(f"skipped {n:,} playlists: {markup_safe(reason)}")


@app.command()
def verify(
    inputs: Annotated[
        list[Path], typer.Argument(help="MPD zips or folders that hold an md5sums file.")
    ],
    json_: JsonOption = False,
) -> None:
    """Check every slice against the md5sums shipped with the MPD (exit 2 on any mismatch)."""
    from trecs.mpd import verify_mpd

    with _progress() as progress:
        task = progress.add_task("verifying", total=None, detail="")
        count = verify_mpd(
            inputs, on_slice=lambda done, total: progress.update(task, completed=done, total=total)
        )
    if json_:
        print(json.dumps({"slices": count, "ok": True}))
        return
    out.print(f"{count} slices match their md5sums")


@app.command()
def info(
    db: Annotated[Path, typer.Argument(help="A database made by `trecs build-db`.")],
    json_: JsonOption = False,
) -> None:
    """Count playlists, entries, tracks, artists and albums, per split and with audio features."""
    from trecs.db import database_info

    summary = database_info(db)
    if json_:
        print(json.dumps(summary))
        return
    table = Table(title=str(db), show_header=False)
    for key in (
        "playlists",
        "entries",
        "tracks",
        "artists",
        "albums",
        "tracks_with_audio_features",
    ):
        table.add_row(key.replace("_", " "), f"{summary[key]:,}")
    for name, split in summary["splits"].items():
        table.add_row(
            f"{name} split", f"{split['playlists']:,} playlists, {split['entries']:,} entries"
        )
    out.print(table)


def _native_output_to_stderr() -> None:
    """Keep stdout for what trecs prints (`--json` records): the collectives' C++ library
    (gloo) writes its connection lines to file descriptor 1, so that descriptor becomes
    stderr and Python's stdout moves to a copy of the original one."""
    sys.stdout.flush()
    original = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = open(original, "w", encoding=sys.stdout.encoding, buffering=1)  # noqa: SIM115


@app.command("train")
def train_command(
    run_dir: Annotated[
        Path, typer.Argument(help="Run directory: config, vocabulary, checkpoints, logs.")
    ] = Path("runs/trecs/default"),
    db: Annotated[
        Path | None, typer.Option(help="Database from `trecs build-db` [default: data/mpd.db].")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML file with TrainConfig fields (see README)."),
    ] = None,
    num_steps: Annotated[int | None, typer.Option(min=1, help="Total optimisation steps.")] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Playlists per step (global).")
    ] = None,
    lr: Annotated[
        float | None, typer.Option(min=0.0, help="Peak AdamW learning rate [default: 2e-3].")
    ] = None,
    loss: Annotated[
        str | None, typer.Option(help="uniform, label-in-denominator, logq (default) or full.")
    ] = None,
    num_tracks: Annotated[
        int | None, typer.Option(min=4, help="Embedding rows; at least the vocabulary size.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, help="Seed of initialisation, data order and sampling.")
    ] = None,
    data_workers: Annotated[
        int | None, typer.Option(min=0, help="Grain worker processes reading sqlite.")
    ] = None,
    shard_table: Annotated[
        bool | None,
        typer.Option(
            "--shard-table/--replicate-table",
            help="Split the embedding table's rows across devices [default: replicate].",
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue RUN_DIR from its last complete checkpoint.")
    ] = False,
    coordinator_address: Annotated[
        str | None, typer.Option(help="Multi-host: host:port of process 0 (jax.distributed).")
    ] = None,
    num_processes: Annotated[
        int | None, typer.Option(min=1, help="Multi-host: number of processes.")
    ] = None,
    process_id: Annotated[
        int | None, typer.Option(min=0, help="Multi-host: this process's index.")
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Train the playlist transformer (defaults: the configuration the README measures, on
    data/mpd.db into runs/trecs/default). Logs go to RUN_DIR/metrics.jsonl and
    RUN_DIR/tensorboard; checkpoints to RUN_DIR/checkpoints. With several processes only
    process 0 shows progress and prints."""
    from trecs.config import train_config
    from trecs.parallel import initialize, is_primary
    from trecs.train import train

    if num_processes is not None:
        _native_output_to_stderr()
    initialize(coordinator_address, num_processes, process_id)
    primary = is_primary()
    settings = train_config(
        run_dir,
        config,
        resume=resume,
        db=db,
        num_steps=num_steps,
        batch_size=batch_size,
        seed=seed,
        data_workers=data_workers,
        lr=lr,
        loss=loss,
        num_tracks=num_tracks,
        shard_table=shard_table,
    )

    with _progress(hidden=not primary) as progress:
        task = progress.add_task("training", total=settings.num_steps, detail="")

        def on_log(record: dict) -> None:
            detail = f"loss {record['loss']:.3f}" if record["loss"] is not None else "loss nan"
            if record["valid_loss"] is not None:
                detail += f" valid {record['valid_loss']:.3f}"
            detail += f" {record['playlists_per_s']:.0f} playlists/s"
            progress.update(task, completed=record["step"], detail=detail)
            if not err.is_terminal and not json_:
                out.print(json.dumps(record))

        last = train(
            run_dir,
            settings,
            resume=resume,
            on_log=on_log if primary else None,
            on_notice=_notice if primary else None,
        )
    if not primary:
        return
    if json_:
        print(json.dumps(last))
    else:
        out.print(
            f"trained {run_dir}: step {last.get('step')}, loss {last.get('loss')}, valid loss {last.get('valid_loss')}"
        )


@app.command("generate")
def generate_command(
    run_dir: Annotated[
        Path,
        typer.Argument(
            help="A run directory from `trecs train`, or a ranker from `trecs train-ranker`."
        ),
    ] = Path("runs/trecs/default"),
    db: Annotated[Path | None, typer.Option(help="Database [default: the run's].")] = None,
    track: Annotated[
        list[str] | None,
        typer.Option(
            help="Seed: a Spotify URI or link, or words of a title and artist (repeatable)."
        ),
    ] = None,
    length: Annotated[
        int, typer.Option(min=1, max=10_000, help="Tracks to add (at most 10,000).")
    ] = 50,
    top_k: Annotated[
        int, typer.Option(min=1, help="Sample among the k best tracks (at most all of them).")
    ] = 20,
    temperature: Annotated[float, typer.Option(min=1e-6, help="Softmax temperature.")] = 1.0,
    greedy: Annotated[bool, typer.Option(help="Always take the best track (no sampling).")] = False,
    allow_eop: Annotated[bool, typer.Option(help="Let the model end the playlist early.")] = False,
    seed: Annotated[int, typer.Option(min=0, help="Sampling seed.")] = 0,
    title: Annotated[
        str | None, typer.Option(help="The playlist's title, read by the model with the seeds.")
    ] = None,
    format_: Annotated[
        str, typer.Option("--format", help="table, json or m3u (M3U8 of Spotify URIs).")
    ] = "table",
) -> None:
    """Continue a playlist from seed tracks (or from nothing) with a trained model: a run
    samples its continuation, a ranker lists its best tracks in order."""
    from trecs.generate import Settings, continue_from_run, m3u

    if format_ not in ("table", "json", "m3u"):
        raise UserError(f"--format {format_!r}: expected table, json or m3u")
    settings = Settings(length, top_k, temperature, greedy, allow_eop, seed)
    result = continue_from_run(run_dir, track or [], settings, db, title)
    for notice in result.notices:
        err.print(f"notice: {markup_safe(notice)}")
    if format_ == "json":
        print(json.dumps({"seeds": [s.label for s in result.seeds], "tracks": result.tracks}))
    elif format_ == "m3u":
        sys.stdout.write(m3u(result.tracks))
    else:
        table = Table("#", "track", "artist", "album", "link", title="continuation")
        for t in result.tracks:
            names = (markup_safe(t[key]) for key in ("name", "artist", "album", "link"))
            table.add_row(str(t["position"]), *names)
        out.print(table)


def _notice(message: str) -> None:
    """A library's notice (a damaged checkpoint passed over) as one stderr line."""
    err.print(f"notice: {message}", markup=False, highlight=False)


def _metrics_table(title: str, metrics: dict) -> Table:
    """R-precision, NDCG and clicks per challenge category, with 95% intervals."""
    from trecs.challenge import label

    table = Table("category", "playlists", "R-precision", "NDCG", "clicks", title=title)
    for group, by_metric in metrics.items():
        table.add_row(
            label(group),
            str(by_metric["r_precision"].count),
            *(
                f"{by_metric[m].mean:.4f} ± {by_metric[m].ci95:.4f}"
                for m in ("r_precision", "ndcg")
            ),
            f"{by_metric['clicks'].mean:.2f} ± {by_metric['clicks'].ci95:.2f}",
        )
    return table


def _shortfall_notices(shortfall: dict[int, int], per_category: int) -> None:
    for category, missing in shortfall.items():
        err.print(
            f"notice: category {category}: {per_category - missing} of {per_category} "
            "playlists (the split has no more eligible ones)"
        )


CategoriesOption = Annotated[
    str,
    typer.Option(
        help="Challenge categories, comma-separated: 1 title only, 2 title + first track, "
        "3 title + first 5, 4 first 5, 5 title + first 10, 6 first 10, 7 title + first 25, "
        "8 title + 25 random, 9 title + first 100, 10 title + 100 random."
    ),
]


@app.command("evaluate")
def evaluate_command(
    model: Annotated[
        str,
        typer.Argument(
            help="A run or ranker directory, or a baseline: popularity, cooccurrence, "
            "playlist-knn, title."
        ),
    ],
    db: Annotated[Path, typer.Option(help="Database from `trecs build-db`.")] = Path("data/mpd.db"),
    split: Annotated[str, typer.Option(help="Split whose playlists are evaluated.")] = "test",
    num_playlists: Annotated[
        int, typer.Option(min=1, help="Playlists to evaluate, spread over the categories.")
    ] = 2000,
    categories: CategoriesOption = "1,2,3,4,5,6,7,8,9,10",
    n: Annotated[int, typer.Option(min=1, help="Recommendations per playlist.")] = 500,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of the playlist and random-seed draws.")
    ] = 0,
    save_recommendations: Annotated[
        Path | None, typer.Option(help="Write one JSON line per playlist with its recommendations.")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(help="PNG of R-precision and NDCG by category, with the baselines."),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Score recommendations with the RecSys Challenge 2018 metrics (R-precision, NDCG,
    clicks) in the challenge's ten categories, with 95% confidence intervals."""
    from trecs import evaluate as ev
    from trecs.challenge import parse_categories

    numbers = parse_categories(categories)
    for output in (save_recommendations, plot):
        if output is not None:
            check_output(output, [db], force=True)
    compared = ev.compare_split(
        model,
        db,
        split,
        num_playlists,
        numbers,
        n,
        seed,
        baselines=plot is not None,
        on_notice=_notice,
    )
    _shortfall_notices(compared.shortfall, compared.per_category)
    cases, results = compared.cases, compared.results
    if save_recommendations is not None:
        ev.save_recommendations(save_recommendations, cases, compared.model, db)
    if plot is not None:
        ev.plot(results, plot)
    if json_:
        print(json.dumps({"cases": len(cases), "n": n, "metrics": ev.as_json(results)}))
        return
    for name, result in results.items():
        title = f"{name}: {len(cases)} playlists, {n} recommendations"
        out.print(_metrics_table(title, result.metrics))


challenge_app = typer.Typer(
    help="The RecSys Challenge 2018's files: make a challenge set, recommend, score.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(challenge_app, name="challenge")


@challenge_app.command("make")
def challenge_make(
    db: Annotated[Path, typer.Argument(help="Database from `trecs build-db`.")],
    out_dir: Annotated[
        Path, typer.Argument(help="Folder to write challenge_set.json and ground_truth.json to.")
    ],
    per_category: Annotated[
        int, typer.Option(min=1, help="Playlists per category (the challenge had 1,000).")
    ] = 1000,
    split: Annotated[str, typer.Option(help="Split whose playlists are used.")] = "test",
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of the playlist and random-seed draws.")
    ] = 0,
    force: Annotated[
        bool, typer.Option("--force", help="Replace OUT_DIR if it holds a challenge already.")
    ] = False,
    json_: JsonOption = False,
) -> None:
    """Write a challenge set in the official format and its ground truth, from one split."""
    from trecs.challenge import CATEGORIES, make_challenge

    made = make_challenge(db, out_dir, per_category, seed, split, force)
    _shortfall_notices(made.shortfall, per_category)
    if json_:
        print(
            json.dumps(
                {"out_dir": str(made.out_dir), "counts": made.counts, "shortfall": made.shortfall}
            )
        )
        return
    table = Table("category", "playlists", title=f"wrote {out_dir}")
    for number, count in made.counts.items():
        table.add_row(f"{number}: {CATEGORIES[number]}", f"{count:,}")
    out.print(table)


@challenge_app.command("recommend")
def challenge_recommend(
    model: Annotated[
        str,
        typer.Argument(
            help="A run or ranker directory, or a baseline: popularity, cooccurrence, playlist-knn."
        ),
    ],
    challenge_set: Annotated[
        Path,
        typer.Argument(help="challenge_set.json: ours (`challenge make`) or the official one."),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Submission CSV to write (.gz: gzipped).")
    ],
    db: Annotated[
        Path | None, typer.Option(help="Database to recommend from [default: the model's].")
    ] = None,
    team: Annotated[str, typer.Option(help="Team name on the team_info line.")] = "trecs",
    email: Annotated[
        str, typer.Option(help="Contact email on the team_info line.")
    ] = "trecs@example.com",
    batch_size: Annotated[int, typer.Option(min=1, help="Playlists per recommender call.")] = 256,
    force: Annotated[bool, typer.Option("--force", help="Replace OUTPUT if it exists.")] = False,
) -> None:
    """Recommend 500 tracks for every playlist of a challenge set and write a submission."""
    from trecs.challenge import read_challenge, recommend_challenge, write_submission
    from trecs.recommenders import load

    check_output(output, [challenge_set, *([db] if db else []), Path(model)], force)
    recommender = load(model, db, _notice)
    db = db or recommender.db
    check_output(output, [db], force)
    challenge = read_challenge(challenge_set, db)
    if challenge.unknown_seeds:
        err.print(
            f"notice: {challenge.unknown_seeds:,} of {challenge.seeds:,} seed tracks are not in "
            f"{db} and were dropped from the queries"
        )
    with _progress() as progress:
        task = progress.add_task("recommending", total=len(challenge.queries), detail="")
        recommended = recommend_challenge(
            recommender,
            challenge,
            db,
            batch_size,
            on_batch=lambda done, total: progress.update(task, completed=done),
        )
    if recommended.filled:
        err.print(
            f"notice: {recommended.filled:,} playlists got fewer than 500 tracks from "
            f"{recommender.name}; completed with the most popular tracks"
        )
    write_submission(output, team, email, [q.pid for q in challenge.queries], recommended.uris)
    out.print(
        f"wrote {output}: {len(challenge.queries):,} playlists x 500 tracks ({recommender.name})"
    )


@challenge_app.command("score")
def challenge_score(
    submission: Annotated[Path, typer.Argument(help="Submission CSV (or .csv.gz).")],
    truth: Annotated[Path, typer.Argument(help="ground_truth.json from `trecs challenge make`.")],
    db: Annotated[
        Path | None,
        typer.Option(help="Database for the artists of recommended tracks [default: the truth's]."),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Check a submission as the official checker does, then score it per category."""
    from trecs.challenge import metrics_json, score

    scores = score(submission, truth, db)
    for notice in scores.notices:
        err.print(f"notice: {markup_safe(notice)}")
    if json_:
        print(json.dumps({"team_name": scores.team_name, "metrics": metrics_json(scores.metrics)}))
        return
    count = scores.metrics["all"]["r_precision"].count
    out.print(
        _metrics_table(f"{submission} ({scores.team_name}): {count} playlists", scores.metrics)
    )


@app.command("train-ranker")
def train_ranker_command(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write: ranker.json, model.txt.")],
    run: Annotated[Path, typer.Option(help="Transformer run directory (a candidate generator).")],
    db: Annotated[Path | None, typer.Option(help="Database [default: the run's].")] = None,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of the training cases and of LightGBM.")
    ] = 0,
    candidates: Annotated[
        int, typer.Option(min=10, help="Candidates per playlist, at most.")
    ] = 1000,
    max_cases: Annotated[
        int,
        typer.Option(
            min=50,
            help="Cases to train on, at most (fewer: faster, weaker); room the valid "
            "split leaves goes to cross-fitted train-split cases.",
        ),
    ] = 20_000,
    force: ForceOption = False,
    json_: JsonOption = False,
) -> None:
    """Train the two-stage recommender: candidates from the run, co-occurrence,
    playlist-kNN, the title model and popularity, ordered by a LightGBM lambdarank model
    trained on challenge cases of the valid split (and, on a small one, cross-fitted
    cases of the train split). Use OUT_DIR wherever a model is taken."""
    from trecs.ranker import Settings, train_ranker

    with _progress() as progress:
        task = progress.add_task("candidates", total=None, detail="")
        report = train_ranker(
            out_dir,
            run,
            db,
            seed=seed,
            settings=Settings(candidates=candidates),
            max_cases=max_cases,
            force=force,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            on_notice=_notice,
        )
    if json_:
        print(json.dumps(report))
        return
    figures = report["validation"]
    best = report["best_generator"]
    extra = ""
    if report["relaxed_cases"]:
        extra += f", {report['relaxed_cases']:,} relaxed ones"
    if report["cross_fitted_cases"]:
        extra += (
            f", {report['cross_fitted_cases']:,} cross-fitted train ones in "
            f"{report['folds']} fold{'s' if report['folds'] > 1 else ''}"
        )
    out.print(
        f"trained {out_dir}: {report['cases']:,} valid-split challenge cases{extra} "
        f"({report['fit_cases']:,} fitted, {report['holdout_cases']:,} held out), "
        f"{report['candidates_per_case']:.0f} candidates per case holding "
        f"{report['candidate_recall']:.1%} of the held-out tracks"
    )
    out.print(
        f"held-out NDCG {figures['ranker']['ndcg']:.4f}, R-precision "
        f"{figures['ranker']['r_precision']:.4f}; best generator alone ({best}) "
        f"{figures[best]['ndcg']:.4f}, {figures[best]['r_precision']:.4f}"
    )


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so temporary files are removed on the way out."""
    raise KeyboardInterrupt


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 2 bad input, 130 interrupted."""
    signal.signal(signal.SIGTERM, _terminate)
    keep_compiled_programs()
    try:
        result = app(args=argv, prog_name="trecs", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        print(exc.ctx.get_help())
        return 0
    except ClickException as exc:
        print(f"error: {printable(exc.format_message())}", file=sys.stderr)
        return 2
    except UserError as exc:
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full or read-only disk, a vanished file: outputs are atomic
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {printable(where + (exc.strerror or str(exc)))}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:  # a database damaged after it was opened
        print(f"error: database: {printable(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    if result == 130:  # typer turns KeyboardInterrupt into exit code 130
        print("error: interrupted", file=sys.stderr)
    return result if isinstance(result, int) else 0


def main() -> None:
    sys.exit(run())
