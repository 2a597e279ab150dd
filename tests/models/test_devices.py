"""check_device: a --device that torch cannot use here is a usage error before any work; cpu always passes."""

from __future__ import annotations

import pytest
import torch

from core.errors import UsageError
from core.models.devices import check_device


def test_cpu_and_no_device_pass() -> None:
    assert check_device("cpu") == "cpu"
    assert check_device(None) is None


@pytest.mark.parametrize("text, message", [
    ("cuda", "CUDA is not available on this machine"),
    ("cuda:1", "CUDA is not available on this machine"),
    ("gpu", "is not a device torch knows"),
    ("cuda:x", "is not a device torch knows"),
    ("meta", "unsupported device type 'meta'"),
])
def test_devices_this_machine_cannot_use_are_usage_errors(text: str, message: str, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError, match=message):
        check_device(text)


def test_a_cuda_device_beyond_the_machines_count_is_a_usage_error(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert check_device("cuda:0") == "cuda:0"
    with pytest.raises(UsageError, match="has 1 CUDA device"):
        check_device("cuda:1")
