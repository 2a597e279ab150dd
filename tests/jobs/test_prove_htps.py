"""``jobs.prove`` with ``--prover htps`` and a goal critic: the HTPS flags reach the search and a bad value is
refused naming its flag, before any work; a checkpoint's critic is used when it has one, always with
``--critic`` (an error without one) and never with ``--no-critic``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.errors import UsageError
from core.metamath.embedded import embedded_database_path
from core.metamath.reader import read_database
from core.metamath.writer import rewrite_proofs
from core.models.checkpoint import save_policy_file
from core.models.critic import GoalCritic
from core.models.formats import build_vocabulary
from core.models.training import new_model
from core.search.runner import SearchResult
from jobs import prove as prove_job

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A database with two ``?`` proofs, and a tiny prover checkpoint with a critic and one without."""
    folder = tmp_path_factory.mktemp("prove-htps")
    holes = folder / "holes.mm"
    rewrite_proofs(embedded_database_path(), {"mp2": ["?"], "syl": ["?"]}, holes)
    vocab = build_vocabulary(read_database(embedded_database_path()))
    model = new_model(vocab, "tiny", seed=0)
    save_policy_file(str(folder / "critic.safetensors"), model, vocab, "prover", critic=GoalCritic(buckets=256))
    save_policy_file(str(folder / "plain.safetensors"), model, vocab, "prover")
    return {"holes": holes, "critic": folder / "critic.safetensors", "plain": folder / "plain.safetensors"}


@pytest.fixture
def spy(monkeypatch) -> list[dict[str, Any]]:
    """The keyword arguments of every ``prove_theorems`` call of ``jobs.prove`` (the searches still run)."""
    calls: list[dict[str, Any]] = []
    real = prove_job.prove_theorems

    def recording(*args: Any, **kwargs: Any) -> list[SearchResult]:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(prove_job, "prove_theorems", recording)
    return calls


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"exploration": -1.0}, "--exploration: htps exploration must be >= 0.0, got -1.0"),
        ({"virtual_loss": -2}, "--virtual-loss: htps virtual_loss must be an integer >= 0, got -2"),
        ({"num_tactics": 0}, "--num-tactics: htps num_tactics must be an integer >= 1, got 0"),
        ({"depth_limit": 0}, "--depth-limit: htps depth_limit must be an integer >= 1"),
        ({"size_limit": 0}, "--size-limit: htps size_limit must be an integer >= 1"),
        ({"succ_expansions": 0}, "--succ-expansions: htps succ_expansions must be an integer >= 1"),
        ({"critic_value": 1.5}, "--critic-value: htps critic_value must be in [0.0, 1.0], got 1.5"),
    ],
)
def test_a_bad_htps_value_is_refused_naming_its_flag(files, tmp_path: Path, flags, message: str, spy) -> None:
    with pytest.raises(UsageError) as error:
        prove_job.prove(str(files["holes"]), out=str(tmp_path / "out.mm"), prover="htps", **flags)
    assert message in str(error.value)
    assert not spy and not (tmp_path / "out.mm").exists()  # before any work


def test_htps_flags_are_refused_with_another_prover(files, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--exploration, --size-limit apply to --prover htps only"):
        prove_job.prove(str(files["holes"]), out=str(tmp_path / "out.mm"), exploration=2.0, size_limit=10)


def test_the_htps_flags_reach_the_search_and_the_summary(files, tmp_path: Path, spy) -> None:
    summary = tmp_path / "summary.json"
    prove_job.prove(str(files["holes"]), out=str(tmp_path / "out.mm"), prover="htps", expansions=16, exploration=2.5,
                    virtual_loss=3, num_tactics=4, depth_limit=6, size_limit=500, json=str(summary))  # fmt: skip
    [call] = spy
    htps = call["htps"]
    assert (htps.exploration, htps.virtual_loss, htps.num_tactics, htps.depth_limit) == (2.5, 3, 4, 6)
    assert (htps.size_limit, htps.num_expansions) == (500, 16)
    assert json.loads(summary.read_text())["htps"]["exploration"] == 2.5
    assert call["critic"] is None  # the baseline: no checkpoint, no critic


def test_the_checkpoints_critic_is_used_when_it_has_one(files, tmp_path: Path, spy) -> None:
    common = {"out": str(tmp_path / "out.mm"), "prover": "htps", "expansions": 4, "merge_baseline": False}
    prove_job.prove(str(files["holes"]), checkpoint=str(files["critic"]), **common)
    assert isinstance(spy[-1]["critic"], GoalCritic) and spy[-1]["htps"] is not None
    prove_job.prove(str(files["holes"]), checkpoint=str(files["critic"]), critic=True, **common)
    assert isinstance(spy[-1]["critic"], GoalCritic)
    prove_job.prove(str(files["holes"]), checkpoint=str(files["critic"]), critic=False, **common)
    assert spy[-1]["critic"] is None
    prove_job.prove(str(files["holes"]), checkpoint=str(files["plain"]), **common)
    assert spy[-1]["critic"] is None  # none in the checkpoint: searched without


def test_critic_without_one_in_the_checkpoint_is_refused(files, tmp_path: Path, spy) -> None:
    common = {"out": str(tmp_path / "out.mm"), "prover": "htps", "expansions": 4}
    with pytest.raises(UsageError, match="holds no goal critic"):
        prove_job.prove(str(files["holes"]), checkpoint=str(files["plain"]), critic=True, **common)
    with pytest.raises(UsageError, match="--critic needs --checkpoint"):
        prove_job.prove(str(files["holes"]), critic=True, **common)
    with pytest.raises(UsageError, match="--critic applies to --prover backward or htps"):
        prove_job.prove(str(files["holes"]), checkpoint=str(files["critic"]), critic=True,
                        **{**common, "prover": "forward-greedy"})  # fmt: skip
    assert not spy


def test_the_command_line_names_the_flag_and_exits_2(files, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "jobs.prove", str(files["holes"]), "--out", str(tmp_path / "o.mm"), "--prover", "htps",
         "--virtual_loss", "-1"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2 and "--virtual-loss" in run.stderr and "Traceback" not in run.stderr
