"""Benchmark `pressedplay predict`: milliseconds per image on CPU once the model is loaded.

Writes 32 synthetic JPEG covers of 640x640 (synth_covers.render: gradients, shapes,
stripes, grain; ~100 KB each, like cover art from Spotify's CDN) to a temporary folder,
saves a randomly initialised VAEAttention checkpoint (speed does not depend on the
weights), then times `predict.predict_files` from the files on disk:

- single: one image per call (read, validate with a full decode, squash in JPEG draft
  mode, one forward pass), the median over the images;
- batch: the 32 images in one call (one forward pass of 32), per image;

for the VAE and for the colour prior, each the median of --runs runs, plus the decode
alone (validation and squash, no model) for reference. The VAE is timed with torch's
default intra-op threads and with one: on a busy machine, threads that wait for each
other at every small convolution cost far more than they save.

    uv run python benchmarks/predict.py [--runs 5] [--images 32] [--size 640]

Target (issue 7): under 30 ms per image on CPU after loading.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pressedplay import checkpoints, predict, synth_covers
from pressedplay.features import NAMES
from pressedplay.model import VAEAttention

TARGET_MS = 30.0


def write_covers(folder: Path, n: int, size: int) -> list[Path]:
    paths = []
    for index in range(n):
        rng = np.random.default_rng([7, index])
        features = synth_covers.cover_tracks(rng, 20).mean(axis=0)
        path = folder / f"cover{index:02d}.jpg"
        path.write_bytes(synth_covers.render(features, rng, size=size))
        paths.append(path)
    return paths


def write_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    model = VAEAttention()
    mean, std = np.zeros(len(NAMES)), np.ones(len(NAMES))
    checkpoints.save(path, checkpoints.payload(model, mean, std, epoch=0, step=0))
    return path


def single_ms(paths: list[Path], predictor: predict.Predictor) -> float:
    """Median ms of predicting one image per call."""
    times = []
    for path in paths:
        start = time.perf_counter()
        predict.predict_files([path], predictor)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def batch_ms(paths: list[Path], predictor: predict.Predictor) -> float:
    """ms per image of predicting all images in one call."""
    start = time.perf_counter()
    results = predict.predict_files(paths, predictor, batch_size=len(paths))
    seconds = time.perf_counter() - start
    assert all("features" in r for r in results), results
    return seconds * 1000 / len(paths)


def decode_ms(paths: list[Path], size: int) -> float:
    """Median ms of validating and squashing one image (bytes in memory)."""
    data = [path.read_bytes() for path in paths]
    times = []
    for blob in data:
        start = time.perf_counter()
        predict.squash(blob, size)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--size", type=int, default=640)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pressedplay-bench-predict-") as tmp:
        folder = Path(tmp)
        paths = write_covers(folder, args.images, args.size)
        kilobytes = np.mean([p.stat().st_size for p in paths]) / 1024
        print(
            f"{args.images} JPEG covers of {args.size}x{args.size} (mean {kilobytes:.0f} KB), "
            f"CPU, torch {torch.__version__} with {torch.get_num_threads()} threads, "
            f"medians of {args.runs} runs"
        )
        checkpoint = write_checkpoint(folder / "run" / "best.pt")
        start = time.perf_counter()
        vae = predict.load_predictor(checkpoint, device="cpu")
        print(f"loading the VAE checkpoint: {(time.perf_counter() - start) * 1000:.0f} ms")
        decode = statistics.median(decode_ms(paths, 128) for _ in range(args.runs))
        print(f"validate + squash to 128 px alone: {decode:.1f} ms per image")

        default_threads = torch.get_num_threads()
        prior = predict.load_predictor("prior")
        cases = [(f"vae, {default_threads} threads", vae, default_threads)]
        if default_threads > 1:
            cases.append(("vae, 1 thread", vae, 1))
        cases.append(("colour prior", prior, default_threads))
        print(f"{'model':<20}{'single (ms)':>12}{f'batch of {args.images} (ms/img)':>24}  target")
        default_ok, one_thread_ok = [], []
        for name, predictor, threads in cases:
            torch.set_num_threads(threads)
            predict.predict_files(paths[:2], predictor)  # warm up allocator and caches
            single = statistics.median(single_ms(paths, predictor) for _ in range(args.runs))
            batch = statistics.median(batch_ms(paths, predictor) for _ in range(args.runs))
            ok = max(single, batch) < TARGET_MS
            print(f"{name:<20}{single:>12.1f}{batch:>24.1f}  {'met' if ok else 'not met'}")
            if threads == default_threads:
                default_ok.append(ok)
            if threads == 1 or predictor is prior:
                one_thread_ok.append(ok)
        torch.set_num_threads(default_threads)
        verdict = "met" if all(default_ok) else "not met"
        if not all(default_ok) and all(one_thread_ok):
            verdict += " with torch's default threads; met with one thread"
        print(f"target: under {TARGET_MS:.0f} ms per image on CPU after loading: {verdict}")


if __name__ == "__main__":
    main()
