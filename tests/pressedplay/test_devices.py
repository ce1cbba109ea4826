"""One device rule for train, evaluate and predict."""

from __future__ import annotations

import pytest
import torch

from pressedplay.devices import pick_device
from pressedplay.errors import UserError


def test_auto_prefers_cuda_then_mps_then_cpu():
    assert pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "mps"
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        expected = "cpu"
    assert pick_device("auto").type == expected


def test_unknown_or_missing_devices_are_clear_errors():
    with pytest.raises(UserError, match="unknown device 'abacus'"):
        pick_device("abacus")
    if torch.cuda.is_available():
        assert pick_device("cuda", local_rank=0) == torch.device("cuda", 0)
    else:
        with pytest.raises(UserError, match="no CUDA GPU"):
            pick_device("cuda")
    if not torch.backends.mps.is_available():
        with pytest.raises(UserError, match="MPS is not available"):
            pick_device("mps")
