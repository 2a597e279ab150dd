"""``python -m jobs.prove --checkpoint``: a legacy trainer checkpoint works; a bad one exits 1 with one line."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.metamath.embedded import embedded_database_path
from core.metamath.reader import read_database
from core.metamath.writer import rewrite_proofs
from core.models.checkpoint import LEGACY_TRAINER_KEY, model_weights, policy_meta, save_policy_file
from core.models.formats import build_vocabulary
from core.models.training import new_model
from jobs import prove as prove_job
from jobs._cli import main

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FOREIGN_MM = """$c |- ( ) -> P Q wff $.
$v a b $.
fa $f wff a $. fb $f wff b $.
q-p $a wff P $. q-q $a wff Q $. q-imp $a wff ( a -> b ) $.
q-ax $a |- ( a -> ( b -> a ) ) $.
q-th $p |- ( P -> ( Q -> P ) ) $= ? $.
"""


def prove(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobs.prove", *map(str, args)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A holes database, a good policy file, a legacy trainer .pt, and their bad twins."""
    folder = tmp_path_factory.mktemp("prove-checkpoints")
    holes = folder / "holes.mm"
    rewrite_proofs(embedded_database_path(), {"mp2": ["?"], "syl": ["?"]}, holes)
    vocab = build_vocabulary(read_database(embedded_database_path()))
    model = new_model(vocab, "tiny", seed=0)
    good = folder / "good.safetensors"
    save_policy_file(str(good), model, vocab, "prover")
    legacy = io.BytesIO()
    torch.save(
        {
            "format": "advprover-checkpoint",
            "format_version": 1,
            "meta": policy_meta(model, vocab, "prover"),
            "state_dict": {**model_weights(model), LEGACY_TRAINER_KEY: {"steps": 5, "optimizer": {}}},
        },
        legacy,
    )
    (folder / "legacy.pt").write_bytes(legacy.getvalue())
    (folder / "garbage.safetensors").write_bytes(b"not a checkpoint at all\n" * 4)
    (folder / "truncated.safetensors").write_bytes(good.read_bytes()[:-64])
    save_policy_file(str(folder / "generator.safetensors"), model, vocab, "generator")
    with torch.no_grad():
        next(model.parameters()).fill_(float("inf"))
    save_policy_file(str(folder / "diverged.safetensors"), model, vocab, "prover")
    (folder / "foreign.mm").write_text(FOREIGN_MM)
    return {"holes": holes, "folder": folder}


@pytest.mark.parametrize("checkpoint", ["legacy.pt"])  # a .safetensors file: tests/test_journey.py
def test_a_legacy_trainer_checkpoint_runs(files, checkpoint: str) -> None:
    out = files["folder"] / f"out-{checkpoint}.mm"
    run = prove(files["holes"], "--out", out, "--checkpoint", files["folder"] / checkpoint, "--expansions", "1")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1].startswith("proved ") and out.is_file()


def test_a_checkpoint_given_as_a_file_url_runs(files) -> None:
    """Its twin, a file:// URL naming no file, exits 2: tests/jobs/test_prove.py."""
    out = files["folder"] / "out-url.mm"
    run = prove(
        files["holes"], "--out", out, "--checkpoint", f"file://{files['folder']}/good.safetensors", "--expansions", "1"
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1].startswith("proved ") and out.is_file()


@pytest.mark.parametrize(
    "checkpoint, database, workers, message",
    [
        ("garbage.safetensors", "holes", 2, "not a checkpoint file"),  # read before any worker starts
        ("truncated.safetensors", "holes", 1, "truncated"),
        ("generator.safetensors", "holes", 1, "a generator checkpoint, but a prover is needed"),
        ("diverged.safetensors", "holes", 1, "not finite"),
        ("good.safetensors", "foreign", 1, "knows none of the"),
    ],
)
def test_a_bad_checkpoint_exits_1_with_one_line(
    files, checkpoint: str, database: str, workers: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through jobs.prove's command line in this process (``python -m jobs.prove`` runs the same
    jobs._cli.main; its wiring is exercised by the subprocess tests above)."""
    db = files["holes"] if database == "holes" else files["folder"] / "foreign.mm"
    out = files["folder"] / "bad-out.mm"
    argv = [str(db), "--out", str(out), "--checkpoint", str(files["folder"] / checkpoint), "--workers", str(workers)]
    code = main(prove_job.prove, argv)
    captured = capsys.readouterr()
    assert code == 1, (captured.out, captured.err)
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and checkpoint in errors[0], captured.err
    assert "Traceback" not in captured.err and not out.exists()
