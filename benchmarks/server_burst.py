"""Benchmark `pressedplay serve` under a burst of uploads (issue 14).

Starts the app on 127.0.0.1 in this process (a randomly initialised VAE checkpoint, or
--model), then sends --uploads concurrent POSTs to /api/predict and, meanwhile, GETs
/api/config every 50 ms. Two bursts:

- hostile: an 85 KB 16-bit 6,300 x 6,300 PNG (a 40-megapixel decode if it were taken);
- covers: 640 x 640 synthetic JPEG covers, real work for the model.

For each it prints the median and worst /api/config latency during the burst, the
median and p99 upload latency, how the uploads were answered (200, 422, 503), and the
process's resident memory before, at its peak during, and 2 s after the burst.

    uv run python benchmarks/server_burst.py [--uploads 50] [--runs 3]

Targets (issue 14): /api/config under 100 ms, upload p99 under 5 s, resident memory
under 1.5 GB during and after the burst.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
import torch
from PIL import Image

from pressedplay import catalog_csv, checkpoints, synth_covers
from pressedplay.features import NAMES
from pressedplay.model import VAEAttention
from pressedplay.server import create_app, running


def rss_gb() -> float:
    """This process's resident memory now (Linux /proc)."""
    with open(f"/proc/{os.getpid()}/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def hostile_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("I;16", (6300, 6300)).save(buffer, "PNG")
    return buffer.getvalue()


def cover_jpeg(seed: int) -> bytes:
    rng = np.random.default_rng([7, seed])
    return synth_covers.render(synth_covers.cover_tracks(rng, 20).mean(axis=0), rng, 640)


def burst(url: str, payloads: list[bytes]) -> dict:
    """Every payload POSTed at once while /api/config is polled; latencies and memory."""
    config_ms: list[float] = []
    peak = [rss_gb()]
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            start = time.perf_counter()
            requests.get(url + "/api/config", timeout=60).raise_for_status()
            config_ms.append((time.perf_counter() - start) * 1000)
            peak[0] = max(peak[0], rss_gb())
            time.sleep(0.05)

    def upload(data: bytes) -> tuple[int, float]:
        start = time.perf_counter()
        files = {"file": ("cover.png", data, "application/octet-stream")}
        response = requests.post(url + "/api/predict", files=files, timeout=120)
        return response.status_code, time.perf_counter() - start

    before = rss_gb()
    poller = threading.Thread(target=poll)
    poller.start()
    with ThreadPoolExecutor(len(payloads)) as pool:
        answers = list(pool.map(upload, payloads))
    done.set()
    poller.join()
    time.sleep(2)
    seconds = sorted(s for _, s in answers)
    return {
        "config_median_ms": statistics.median(config_ms),
        "config_max_ms": max(config_ms),
        "upload_median_s": statistics.median(seconds),
        "upload_p99_s": seconds[min(len(seconds) - 1, int(0.99 * len(seconds)))],
        "statuses": dict(Counter(status for status, _ in answers)),
        "rss_before_gb": before,
        "rss_peak_gb": peak[0],
        "rss_after_gb": rss_gb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default=None, help="a run directory [default: random VAE]")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PRESSEDPLAY_HOME"] = str(Path(tmp) / "home")
        model = args.model
        if model is None:  # speed and memory do not depend on the weights
            model = str(Path(tmp) / "run" / "best.pt")
            torch.manual_seed(0)
            zeros, ones = np.zeros(len(NAMES)), np.ones(len(NAMES))
            checkpoints.save(
                Path(model), checkpoints.payload(VAEAttention(), zeros, ones, epoch=0, step=0)
            )
        catalog_csv.import_csv(Path("tests/pressedplay/fixtures/spotify_songs_sample.csv"))
        app = create_app(model=model, feedback_db=Path(tmp) / "feedback.db", env_file=None)
        bursts = {
            "hostile 16-bit PNG": [hostile_png()] * args.uploads,
            "640x640 JPEG covers": [cover_jpeg(i) for i in range(args.uploads)],
        }
        with running(app) as url:
            for name, payloads in bursts.items():
                runs = [burst(url, payloads) for _ in range(args.runs)]
                print(f"\n{name}: {args.uploads} concurrent uploads, median of {args.runs} runs")
                for key in runs[0]:
                    if key == "statuses":
                        print(f"  statuses: {[r['statuses'] for r in runs]}")
                    else:
                        print(f"  {key:<18} {statistics.median(r[key] for r in runs):8.3f}")
                config_ms = statistics.median(r["config_max_ms"] for r in runs)
                p99 = statistics.median(r["upload_p99_s"] for r in runs)
                memory = max(max(r["rss_peak_gb"], r["rss_after_gb"]) for r in runs)
                print(
                    f"  targets: config max < 100 ms {'met' if config_ms < 100 else 'NOT met'}, "
                    f"upload p99 < 5 s {'met' if p99 < 5 else 'NOT met'}, "
                    f"memory < 1.5 GB {'met' if memory < 1.5 else 'NOT met'}"
                )


if __name__ == "__main__":
    main()
