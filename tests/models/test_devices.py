"""check_device: a --device that torch cannot use here is a usage error before any work; cpu always passes.
resolve_device and the precision helpers: what a role's ``device`` and ``precision`` settings mean here."""

from __future__ import annotations

import contextlib

import pytest
import torch

from core.errors import ConfigError, UsageError
from core.models import devices
from core.models.devices import (
    autocast,
    check_device,
    decoding_precision,
    default_precision,
    effective_precision,
    inference_weights,
    resolve_device,
)


def test_cpu_and_no_device_pass() -> None:
    assert check_device("cpu") == "cpu"
    assert check_device(None) is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("cuda", "CUDA is not available on this machine"),
        ("cuda:1", "CUDA is not available on this machine"),
        ("gpu", "is not a device torch knows"),
        ("cuda:x", "is not a device torch knows"),
        ("meta", "unsupported device type 'meta'"),
    ],
)
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


# --- a role's device and precision settings ---------------------------------------------------------------


def test_auto_is_cuda_when_available_and_cpu_here(monkeypatch) -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto", "x.device").type == expected  # cpu on a machine without CUDA
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", "x.device") == torch.device("cpu")
    assert resolve_device("cpu", "x.device") == torch.device("cpu")


def test_an_unindexed_cuda_is_the_gpu_of_the_local_rank(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda", "x.device", local_rank=3) == torch.device("cuda", 1)
    assert resolve_device("auto", "x.device", local_rank=0) == torch.device("cuda", 0)
    assert resolve_device("cuda:1", "x.device", local_rank=0) == torch.device("cuda", 1)  # named: kept


def test_a_device_this_machine_lacks_is_a_usage_error_naming_the_setting(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError, match="prover_trainer.device cuda: CUDA is not available"):
        resolve_device("cuda", "prover_trainer.device")


def test_bf16_applies_on_cuda_and_falls_back_to_fp32_elsewhere_with_a_warning(caplog) -> None:
    assert effective_precision("bf16", torch.device("cuda", 0)) == "bf16"
    assert effective_precision("fp32", torch.device("cpu")) == "fp32"
    with caplog.at_level("WARNING"):
        assert effective_precision("bf16", torch.device("cpu"), "evaluator.precision") == "fp32"
    assert "evaluator.precision bf16 applies on CUDA only" in caplog.text
    with pytest.raises(ConfigError, match="trainer precision 'fp16'"):
        effective_precision("fp16", torch.device("cpu"), "trainer precision")


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_autocast_only_for_bf16_on_cuda() -> None:
    assert isinstance(autocast(torch.device("cpu"), "bf16"), contextlib.nullcontext)
    assert isinstance(autocast(torch.device("cuda", 0), "fp32"), contextlib.nullcontext)
    assert isinstance(autocast(torch.device("cuda", 0), "bf16"), torch.autocast)
    assert default_precision(torch.device("cpu")) == "fp32" and default_precision(torch.device("cuda")) == "bf16"


def test_decoding_in_bf16_on_a_cpu_needs_native_bfloat16(monkeypatch, caplog) -> None:
    monkeypatch.setattr(devices, "cpu_has_bf16", lambda: True)
    assert decoding_precision("bf16", torch.device("cpu"), "prover_actor.precision") == "bf16"
    assert decoding_precision("fp32", torch.device("cpu")) == "fp32"
    monkeypatch.setattr(devices, "cpu_has_bf16", lambda: False)
    with caplog.at_level("WARNING"):
        assert decoding_precision("bf16", torch.device("cpu"), "prover_actor.precision") == "fp32"
    assert "prover_actor.precision bf16 needs CUDA or a CPU with native bfloat16" in caplog.text
    with pytest.raises(ConfigError, match="policy precision 'fp16'"):
        decoding_precision("fp16", torch.device("cpu"), "policy precision")


def test_cpu_bf16_is_read_from_the_cpu_flags(monkeypatch, tmp_path) -> None:
    import builtins

    real_open = builtins.open
    for flags, expected in (("fpu avx512f avx512_bf16 sse", True), ("fpu amx_bf16", True), ("fpu avx512f", False)):
        info = tmp_path / "cpuinfo"
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(
            builtins, "open", lambda path, *a, _i=info, **k: real_open(_i if path == "/proc/cpuinfo" else path, *a, **k)
        )
        assert devices.cpu_has_bf16() is expected
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: real_open(tmp_path / "missing", *a, **k))
    assert devices.cpu_has_bf16() is False


def test_a_policy_decoding_in_bf16_on_a_cpu_uses_a_copy_and_leaves_the_model_in_fp32(monkeypatch) -> None:
    from core.metamath.embedded import embedded_database_path
    from core.metamath.reader import read_database
    from core.models.formats import build_vocabulary
    from core.models.training import new_model
    from core.search.model_policy import ModelPolicy

    monkeypatch.setattr(devices, "cpu_has_bf16", lambda: True)
    vocab = build_vocabulary(read_database(embedded_database_path()))
    model = new_model(vocab, "tiny", seed=0)
    policy = ModelPolicy(model, vocab, device="cpu", precision="bf16")
    assert policy.precision == "bf16" and policy.model is not model
    assert policy.model.embed.weight.dtype == torch.bfloat16 and model.embed.weight.dtype == torch.float32
    plain = ModelPolicy(model, vocab, device="cpu")  # the twin: fp32 decodes with the model itself
    assert plain.model is model and plain.precision == "fp32"
    assert inference_weights(model, torch.device("cpu"), "fp32") is model
