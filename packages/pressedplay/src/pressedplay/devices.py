"""Which torch device a command runs on: one rule for train, evaluate and predict."""

from __future__ import annotations

from typing import Literal, get_args

import torch

from pressedplay.errors import UserError

Device = Literal["auto", "cpu", "cuda", "mps"]
NAMES: tuple[str, ...] = get_args(Device)


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """auto: CUDA, else Apple's MPS, else the CPU; an unknown or unavailable choice is a
    UserError. Under torchrun, CUDA means this process's GPU (`local_rank`)."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name not in NAMES:
        raise UserError(f"unknown device {name!r}; use {', '.join(NAMES)}")
    if name == "auto":
        name = "cuda" if cuda else "mps" if mps else "cpu"
    if name == "cuda":
        if not cuda:
            raise UserError("--device cuda: no CUDA GPU is available here")
        return torch.device("cuda", local_rank)
    if name == "mps" and not mps:
        raise UserError("--device mps: Apple's MPS is not available here")
    return torch.device(name)
