"""Fixtures for pressedplay: an in-process CLI runner."""

from __future__ import annotations

from collections.abc import Callable
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
