"""Fixtures of every test: the processes tests start keep compiled programs to themselves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def compile_cache(tmp_path_factory) -> Path:
    """trecs' and pressedplay's commands keep JAX's compiled programs in the user's cache
    folder; processes the tests start keep theirs in the session's instead. This process
    keeps none: JAX read its settings when it was imported, before this."""
    folder = tmp_path_factory.mktemp("jax-cache")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(folder)
    return folder
