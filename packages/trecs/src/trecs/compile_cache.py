"""JAX's persistent compilation cache, for the commands that compile trecs programs."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def keep_compiled_programs() -> None:
    """Keep compiled XLA programs between commands in JAX's compilation cache, in the
    user's cache folder (at the MPD's size each `trecs generate` compiled the same 3 s of
    programs). Set in the environment, read when JAX is first imported: call it before
    that; commands that never import JAX pay only the folder's creation. A
    JAX_COMPILATION_CACHE_DIR of one's own, or JAX_ENABLE_COMPILATION_CACHE=false, is
    left as it is. Where the folder cannot be made (a read-only home), there is no cache
    rather than a warning at every compile."""
    folder = Path(platformdirs.user_cache_dir("trecs")) / "jax"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(folder))
    # Every program: reading one back takes milliseconds, compiling even the smallest
    # 20-80 ms. With a 0.5 s minimum, those below it (the pool's pick, the title, the
    # readout) cost a `trecs generate` at the MPD's size about 1 s in every process.
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
