"""The prover actor job end to end, in-process and fast (the embedded database, a tiny untrained prover the test
publishes, and a scripted search where the outcomes matter): in prover-only it searches its rank's share of the
train split in an order seeded per restart and routes its own proofs; elsewhere it answers every generation of
its streams once, in order, commits its input cursor and resumes after it; the band reward's attempts; the
routing of its own proofs; critic targets and the checkpoint's critic; hot reload and the fallback from a
damaged version; the status gauges, the idle wait, the shards published while busy or idle, the live metrics
(written against the mutants scripts/mutation.sh found)."""

from __future__ import annotations

import dataclasses
import logging
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
import torch

from configs.experiment import ExperimentConfig
from configs.presets import preset
from core.adversarial.records import GenerationRecord, ResultRecord
from core.adversarial.workspace import Workspace
from core.errors import ConfigError
from core.metamath.prooftree import tree_from_proof
from core.metrics import scalar_points
from core.models.checkpoint import publish_version
from core.models.critic import GoalCritic
from core.models.formats import build_vocabulary
from core.models.training import new_model
from core.search.runner import SearchResult
from core.storage import CheckpointStore, ExperimentRoot, ShardWriter, read_heartbeats, read_shard, stream_bounds
from jobs import prover_actor
from jobs._role import Runtime, job_seed
from tests.roles import experiment
from tests.sample_records import generation as sample_generation
from tests.sample_records import result as sample_result

FAST = ["database.path=embedded", "generator_trainer.bootstrap_steps=0", "prover_trainer.bootstrap_steps=0"]
MINUTES = 0.25  # a bound no run of these tests reaches: each ends on its records, or waits in vain under a mutant
ONE, TWO = "generator-actor-00-to-00", "generator-actor-01-to-00"  # the streams of prover actor 0


# --- helpers --------------------------------------------------------------------------------------------------


def run(root: ExperimentRoot, *, minutes: float = MINUTES, **bounds: Any) -> str:
    """Run a prover actor in this process (``rank`` in ``bounds``, else the default: 0); pytest's signal handlers
    are restored afterwards."""
    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        return prover_actor.main(root.url, minutes=minutes, **bounds)
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


def config_of(root: ExperimentRoot) -> ExperimentConfig:
    return ExperimentConfig.from_dict(root.config)


def workspace(root: ExperimentRoot) -> Workspace:
    database = config_of(root).database
    return Workspace.load(database.path, stop_at=database.stop_at, splits=database.splits,
                          split_salt=database.split_salt, forbidden=database.forbidden)  # fmt: skip


def publish_prover(
    root: ExperimentRoot, ws: Workspace, formats: tuple[str, ...] = ("backward",), critic: GoalCritic | None = None
) -> int:
    """Publish the next prover version: a tiny untrained model (and ``critic``); returns its number."""
    vocab = build_vocabulary(ws.db)
    model = new_model(vocab, "tiny", seed=0, max_source_len=256, max_target_len=64)
    store = CheckpointStore(root, "prover")
    return publish_version(store, model, vocab, "prover", {"step": 0}, formats=formats, critic=critic).version


def generated(ws: Workspace, start: int, count: int, stream: str = ONE) -> list[GenerationRecord]:
    """Train theorems sent as a generator's theorems would be (with a heuristic score)."""
    return [
        dataclasses.replace(
            GenerationRecord.of_database(t, tree_from_proof(ws.db, t, ws.kernel), source_stream=stream),
            source="generator",
            generator_version=0,
            heuristic=1.0,
        )
        for t in ws.train_theorems()[start : start + count]
    ]


def send(root: ExperimentRoot, stream: str, records: list[Any]) -> None:
    """Publish one shard of generation records (GenerationRecord or raw dicts) on ``stream``."""
    with ShardWriter(root, stream, max_records=1000, max_age_s=0, producer={"role": "generator_actor", "rank": 0},
                     **GenerationRecord.header_fields()) as writer:  # fmt: skip
        for record in records:
            writer.append(record.to_json() if isinstance(record, GenerationRecord) else record)


def results(root: ExperimentRoot, stream: str = "prover-actor-00") -> list[ResultRecord]:
    first, end = stream_bounds(root, stream)
    return [ResultRecord.parse(r, stream=stream) for seq in range(first, end) for r in read_shard(root, stream, seq)[1]]


def heartbeat(root: ExperimentRoot, rank: int = 0) -> dict[str, Any]:
    return next(b for b in read_heartbeats(root) if b["role"] == "prover_actor" and b["rank"] == rank)


class Search:
    """A scripted stand-in for ``prove_theorems``: attempt ``n`` of goal ``label`` in call ``c`` (from 1) is proved
    when ``outcome(label, n, c)``, with the database proof. Like the real search, a failure reports a solved
    subgoal only when asked for some, and every search a critic target only when asked for some. ``before(c)``
    runs as call ``c`` starts. Each call's goals and keyword arguments are kept in :attr:`calls`."""

    def __init__(self, outcome: Callable[[str, int, int], bool], before: Callable[[int], None] | None = None) -> None:
        self.outcome = outcome
        self.before = before
        self.calls: list[dict[str, Any]] = []
        self.tries: Counter[str] = Counter()

    def __call__(self, db: Any, theorems: list[Any], policy: Any, settings: Any, **kwargs: Any) -> list[SearchResult]:
        self.calls.append(dict(kwargs, labels=[t.label for t in theorems], policy=policy, settings=settings))
        if self.before is not None:
            self.before(len(self.calls))
        found = []
        for theorem in theorems:
            proved = self.outcome(theorem.label, self.tries[theorem.label], len(self.calls))
            self.tries[theorem.label] += 1
            tree = tree_from_proof(db, theorem, kwargs["kernel"])
            found.append(SearchResult(
                label=theorem.label, prover=settings.prover, proved=proved, proof=tree if proved else None,
                solved_subgoals=[(theorem.statement, tree)] if kwargs["max_solved_subgoals"] and not proved else [],
                critic_examples=[(theorem.statement, float(proved), 1)] if kwargs["max_critic_examples"] else [],
            ))  # fmt: skip
        return found


def never(label: str, attempt: int, call: int) -> bool:
    return False


# --- prover-only: the train split -------------------------------------------------------------------------------


def test_prover_only_searches_its_train_split_share_and_routes_its_own_proofs(tmp_path: Path, monkeypatch) -> None:
    root = experiment(tmp_path / "exp", "prover_only", *FAST, "prover_actor.search.batch_goals=2",
                      "prover_actor.max_solved_subgoals=3")  # fmt: skip
    ws = workspace(root)
    publish_prover(root, ws)
    train = {t.label: t for t in ws.train_theorems()}
    provable = set(list(train)[::2])
    search = Search(lambda label, attempt, call: label in provable)
    monkeypatch.setattr(prover_actor, "prove_theorems", search)
    looked: list[list[str]] = []
    maybe_prune = prover_actor.Pruner.maybe_prune

    def prune_spy(self: Any) -> int:
        looked.append(list(self.streams))
        return maybe_prune(self)

    monkeypatch.setattr(prover_actor.Pruner, "maybe_prune", prune_spy)
    assert run(root, max_records=5) == "finished"

    assert [len(call["labels"]) for call in search.calls] == [2, 2, 1]  # batch_goals, then what max_records leaves
    assert looked == [["prover-actor-00"]] * 3  # its stream's retention, looked at before each batch
    out = results(root)
    labels = [r.generation.goal.label for r in out]
    assert labels == [label for call in search.calls for label in call["labels"]]
    seed = job_seed(config_of(root).seed, "prover-actor-00", 0)
    assert labels == [t.label for t in islice(prover_actor.train_split_goals(ws, 0, 1, seed), 5)]
    for record in out:
        theorem = train[record.generation.goal.label]
        assert record.id.startswith("train-split-00/") and record.generation.source == "dataset"
        assert record.generation.proof == tree_from_proof(ws.db, theorem, ws.kernel).to_json()  # its database proof
        assert (record.proved, record.attempts, record.prover_version) == (theorem.label in provable, 1, 0)
        assert (record.proof is not None) == record.proved
        assert not record.for_generator_trainer  # no generator to reward
        assert record.for_prover_trainer  # its proof, or the subgoals its failed search solved
        assert bool(record.solved_subgoals) == (not record.proved)
    assert all(call["max_solved_subgoals"] == 3 for call in search.calls)
    header = read_shard(root, "prover-actor-00", 0)[0]
    assert (header["producer"]["role"], header["producer"]["rank"]) == ("prover_actor", 0)
    assert (header["record_type"], header["record_version"]) == ("result", ResultRecord.VERSION)
    assert header["cursor"] is None  # the train split has no cursor to commit
    beat = heartbeat(root)
    assert (beat["status"], beat["state"], beat["prover_version"], beat["critic"]) == ("finished", "proving", 0, False)
    assert (beat["records_in"], beat["records_out"], beat["attempted"]) == (5, 5, 5)
    assert beat["proved"] == sum(r.proved for r in out) and beat["pruned_shards"] == 0
    assert "quarantined" not in beat and "malformed_goals" not in beat


def test_a_restart_draws_a_new_order_and_each_rank_takes_its_own_share(tmp_path: Path, monkeypatch) -> None:
    root = experiment(tmp_path / "exp", "prover_only", *FAST, "prover_actor.count=2", "prover_actor.shard_records=1",
                      "prover_actor.search.batch_goals=2", "prover_actor.device=cpu",
                      "prover_actor.precision=bf16")  # fmt: skip
    ws = workspace(root)
    publish_prover(root, ws)
    monkeypatch.setattr(prover_actor, "prove_theorems", Search(never))
    policies: list[dict[str, Any]] = []
    policy_from_model = prover_actor.policy_from_model

    def policy_spy(loaded: Any, **options: Any) -> Any:
        policies.append(options)
        return policy_from_model(loaded, **options)

    monkeypatch.setattr(prover_actor, "policy_from_model", policy_spy)
    config = config_of(root)

    def drawn(rank: int, restart: int) -> list[str]:
        seed = job_seed(config.seed, f"prover-actor-{rank:02d}", restart)
        return [t.label for t in islice(prover_actor.train_split_goals(ws, rank, 2, seed), 2)]

    assert run(root, max_records=2) == "finished"
    assert stream_bounds(root, "prover-actor-00") == (0, 2)  # shard_records=1: a shard per result
    assert run(root, max_records=2) == "finished"  # its restart counter is the 2 shards published
    labels = [r.generation.goal.label for r in results(root)]
    assert labels == drawn(0, 0) + drawn(0, 2) and drawn(0, 0) != drawn(0, 2)
    seeds = [job_seed(config.seed, "prover-actor-00", restart) for restart in (0, 2)]
    assert [p["seed"] for p in policies] == seeds  # the policy samples with the job's seed too
    assert all(p["device"] == torch.device("cpu") and p["precision"] == "bf16" for p in policies)

    assert run(root, rank=1, max_records=2) == "finished"
    other = results(root, "prover-actor-01")
    assert [r.generation.goal.label for r in other] == drawn(1, 0)
    assert all(r.id.startswith("train-split-01/") for r in other)
    share = [t.label for i, t in enumerate(ws.train_theorems()) if i % 2 == 1]
    assert set(drawn(1, 0)) <= set(share) and not set(labels) & set(share)


def test_train_split_goals_cover_a_share_in_a_new_order_each_pass(tmp_path: Path) -> None:
    root = experiment(tmp_path / "exp", "prover_only", *FAST)
    ws = workspace(root)
    train = [t.label for t in ws.train_theorems()]
    n = len(train)
    drawn = [t.label for t in islice(prover_actor.train_split_goals(ws, 0, 1, seed=3), 2 * n)]
    assert sorted(drawn[:n]) == sorted(drawn[n:]) == sorted(train) and drawn[:n] != drawn[n:]
    assert drawn == [t.label for t in islice(prover_actor.train_split_goals(ws, 0, 1, seed=3), 2 * n)]
    assert drawn != [t.label for t in islice(prover_actor.train_split_goals(ws, 0, 1, seed=4), 2 * n)]
    assert sorted(t.label for t in islice(prover_actor.train_split_goals(ws, 0, 0, seed=3), n)) == sorted(train)
    for rank in range(3):
        share = sorted(label for i, label in enumerate(train) if i % 3 == rank)
        got = sorted(t.label for t in islice(prover_actor.train_split_goals(ws, rank, 3, seed=3), len(share)))
        assert got == share and not set(got) & ws.held_out_labels
    with pytest.raises(ConfigError, match=r"^prover actor 5: the train split gives it no theorem \(database.splits, "
                                          r"prover_actor.count\)$"):  # fmt: skip
        next(prover_actor.train_split_goals(ws, 5, 3, seed=3))


def test_a_job_without_a_checkpoint_waits_for_the_trainer_and_never_makes_one(tmp_path: Path, caplog) -> None:
    root = experiment(tmp_path / "exp", "prover_only", *FAST)
    with caplog.at_level(logging.INFO, logger="jobs._role"):
        assert run(root, minutes=0.01) == "finished"  # its time bound
    assert "prover-actor-00: waiting for prover checkpoint version 0 from the prover trainer" in caplog.messages
    assert heartbeat(root)["state"] == "waiting for prover checkpoint"
    assert CheckpointStore(root, "prover").latest() is None and stream_bounds(root, "prover-actor-00") == (0, 0)


def test_a_job_stopped_before_its_first_checkpoint_does_nothing(tmp_path: Path) -> None:
    root = experiment(tmp_path / "exp", "prover_only", *FAST)
    root.request_stop("test", ["prover-actor-00"])
    assert run(root) == "interrupted"
    assert CheckpointStore(root, "prover").latest() is None and stream_bounds(root, "prover-actor-00") == (0, 0)


def test_without_records_to_make_the_job_publishes_its_initial_gauges(tmp_path: Path, monkeypatch) -> None:
    root = experiment(tmp_path / "exp", "prover_only", *FAST)
    publish_prover(root, workspace(root))
    search = Search(never)
    monkeypatch.setattr(prover_actor, "prove_theorems", search)
    assert run(root, max_records=0) == "finished"
    beat = heartbeat(root)
    assert (beat["records_in"], beat["records_out"], beat["proved"], beat["attempted"]) == (0, 0, 0, 0)
    assert beat["state"] == "running" and search.calls == [] and stream_bounds(root, "prover-actor-00") == (0, 0)


def test_a_signal_ends_the_job_after_its_batch_of_batch_goals(tmp_path: Path, monkeypatch) -> None:
    root = experiment(tmp_path / "exp", "prover_only", *FAST, "prover_actor.search.batch_goals=3")
    publish_prover(root, workspace(root))
    search = Search(never, before=lambda call: signal.raise_signal(signal.SIGTERM))
    monkeypatch.setattr(prover_actor, "prove_theorems", search)
    assert run(root) == "interrupted"  # no record bound
    assert [len(call["labels"]) for call in search.calls] == [3] and len(results(root)) == 3
    assert heartbeat(root)["status"] == "interrupted" and heartbeat(root)["records_out"] == 3


# --- the generation streams ---------------------------------------------------------------------------------


def test_every_generation_is_answered_once_in_order_and_a_restart_resumes_after_the_cursor(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    root = experiment(tmp_path / "exp", "tiny", *FAST, "generator_actor.count=2", "prover_actor.shard_records=2")
    ws = workspace(root)
    publish_prover(root, ws)
    first, second = generated(ws, 0, 2), generated(ws, 2, 1, TWO)
    send(root, ONE, first)
    send(root, TWO, second)
    proved = {first[0].goal.label}
    search = Search(lambda label, attempt, call: label in proved)
    monkeypatch.setattr(prover_actor, "prove_theorems", search)
    with caplog.at_level(logging.INFO, logger="jobs.prover_actor"):
        assert run(root, max_records=3) == "finished"
    assert f"prover-actor-00: reading {ONE}, {TWO} from {{'{ONE}': 0, '{TWO}': 0}}" in caplog.messages
    out = results(root)
    assert [r.id for r in out] == [g.id for g in first + second]  # one shard at a time, round-robin
    assert [r.generation for r in out] == first + second
    assert [call["labels"] for call in search.calls] == [[g.goal.label for g in first], [second[0].goal.label]]
    assert [r.proved for r in out] == [True, False, False]
    assert [r.reward for r in out] == [0.0, 1.0, 1.0]  # hard: the generator is rewarded when the prover fails
    assert [r.for_generator_trainer for r in out] == [True] * 3
    assert [r.for_prover_trainer for r in out] == [False, True, True]  # the prover is sent its failures only
    assert all(not r.solved_subgoals and r.critic_examples for r in out)  # given proofs: no subgoals asked for
    assert all(call["max_solved_subgoals"] == 0 and call["max_critic_examples"] == 64 for call in search.calls)
    assert all(call["critic"] is None for call in search.calls)  # version 0 holds no critic
    end = stream_bounds(root, "prover-actor-00")[1]
    assert read_shard(root, "prover-actor-00", end - 1)[0]["cursor"] == {ONE: 1, TWO: 1}
    assert all(read_shard(root, "prover-actor-00", seq)[0]["cursor"] for seq in range(end))  # never uncommitted
    beat = heartbeat(root)
    assert (beat["records_in"], beat["records_out"], beat["quarantined"], beat["proved"]) == (3, 3, 0, 1)

    later = generated(ws, 3, 2)
    damaged = root.backend.location(f"streams/{ONE}/{1:012d}.zst")
    Path(damaged).parent.mkdir(parents=True, exist_ok=True)
    Path(damaged).write_bytes(b"not a shard")  # quarantined and skipped
    send(root, ONE, [later[0], {"id": "bad-1", "goal": {"nonsense": True}}])
    send(root, TWO, [later[1]])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="jobs.prover_actor"):
        assert run(root, max_records=2) == "finished"
    assert f"prover-actor-00: reading {ONE}, {TWO} from {{'{ONE}': 1, '{TWO}': 1}}" in caplog.messages
    out = results(root)
    assert [r.id for r in out] == [g.id for g in first + second] + [later[1].id, later[0].id]  # nothing twice
    last = stream_bounds(root, "prover-actor-00")[1] - 1
    assert read_shard(root, "prover-actor-00", last)[0]["cursor"] == {ONE: 3, TWO: 2}
    beat = heartbeat(root)
    assert (beat["records_in"], beat["malformed_goals"], beat["quarantined"], beat["records_out"]) == (3, 1, 1, 2)


def test_learning_from_its_own_proofs_routes_proved_goals_and_asks_for_solved_subgoals(
    tmp_path: Path, monkeypatch
) -> None:
    root = experiment(tmp_path / "exp", "tiny", *FAST, "prover_trainer.learn_from_own_proofs=true",
                      "prover_actor.max_solved_subgoals=2", "prover_trainer.critic=false")  # fmt: skip
    ws = workspace(root)
    publish_prover(root, ws)
    goals = generated(ws, 0, 2)
    send(root, ONE, goals)
    search = Search(lambda label, attempt, call: label == goals[0].goal.label)
    monkeypatch.setattr(prover_actor, "prove_theorems", search)
    assert run(root, max_records=2) == "finished"
    proved, failed = results(root)
    assert proved.proved and proved.for_prover_trainer  # its own proof, though it is sent failures only
    assert not failed.proved and failed.for_prover_trainer and len(failed.solved_subgoals) == 1
    assert [call["max_solved_subgoals"] for call in search.calls] == [2]
    assert [call["max_critic_examples"] for call in search.calls] == [0]  # no critic trained: no targets
    assert not proved.critic_examples and not failed.critic_examples


def test_the_band_reward_searches_each_goal_attempts_times(tmp_path: Path, monkeypatch) -> None:
    root = experiment(tmp_path / "exp", "tiny", *FAST, "rewards.kind=band", "rewards.attempts=3", "rewards.tau=0.5",
                      "prover_actor.search.prover=forward-sampling")  # fmt: skip
    ws = workspace(root)
    publish_prover(root, ws, ("forward",))
    goals = generated(ws, 0, 3)
    send(root, ONE, goals)
    rate = {goals[0].goal.label: 1, goals[1].goal.label: 3, goals[2].goal.label: 0}  # attempts proved, of 3
    search = Search(lambda label, attempt, call: attempt < rate[label])
    monkeypatch.setattr(prover_actor, "prove_theorems", search)
    assert run(root, max_records=3) == "finished"
    assert [call["labels"] for call in search.calls] == [[g.goal.label for g in goals]] * 3
    out = results(root)
    assert [(r.attempts, r.successes, r.proved) for r in out] == [(3, 1, True), (3, 3, True), (3, 0, False)]
    assert [r.reward for r in out] == [1.0, 0.0, 0.0]  # 1/3 is in (0, tau]; 3/3 is too easy, 0/3 too hard
    beat = heartbeat(root)
    assert (beat["attempted"], beat["proved"]) == (3, 2)


def test_the_first_prover_actor_of_fixed_prover_makes_version_zero_for_its_search(tmp_path: Path, monkeypatch) -> None:
    root = experiment(tmp_path / "exp", "fixed_prover", *FAST, "prover_actor.count=2",
                      "prover_trainer.examples=auto")  # fmt: skip
    ws = workspace(root)
    made: list[tuple[Any, ...]] = []

    def make(rt: Runtime, kind: str, section: Any, spec: Any, formats: tuple[str, ...]) -> None:
        made.append((rt.name, kind, section, spec, tuple(formats)))
        publish_prover(root, ws, tuple(formats))

    monkeypatch.setattr(prover_actor, "ensure_version_zero", make)
    monkeypatch.setattr(prover_actor, "prove_theorems", Search(never))
    send(root, ONE, generated(ws, 0, 1))
    send(root, "generator-actor-00-to-01", generated(ws, 1, 1, "generator-actor-00-to-01"))
    assert run(root, max_records=1) == "finished"
    config = config_of(root)
    assert made == [("prover-actor-00", "prover", config.prover_trainer, config.prover_model, ("backward",))]
    assert run(root, rank=1, max_records=1) == "finished"  # the others use it
    assert len(made) == 1 and len(results(root, "prover-actor-01")) == 1


# --- the prover checkpoint -----------------------------------------------------------------------------------


def test_a_newer_checkpoint_and_its_critic_are_used_from_the_next_batch(tmp_path: Path, monkeypatch) -> None:
    root = experiment(tmp_path / "exp", "prover_only", *FAST, "prover_actor.reload_seconds=0",
                      "prover_actor.search.batch_goals=2")  # fmt: skip
    ws = workspace(root)
    publish_prover(root, ws)

    def publish_after_first(call: int) -> None:
        if call == 1:
            publish_prover(root, ws, critic=GoalCritic(buckets=64, dim=4, hidden=4))

    search = Search(never, before=publish_after_first)
    monkeypatch.setattr(prover_actor, "prove_theorems", search)
    assert run(root, max_records=4) == "finished"
    assert [r.prover_version for r in results(root)] == [0, 0, 1, 1]
    first, second = search.calls
    assert first["critic"] is None and isinstance(second["critic"], GoalCritic)
    assert first["policy"] is not second["policy"]
    assert first["max_critic_examples"] == second["max_critic_examples"] == 64
    beat = heartbeat(root)
    assert (beat["prover_version"], beat["critic"]) == (1, True)


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path: Path, monkeypatch) -> None:
    root = experiment(tmp_path / "exp", "prover_only", *FAST)
    ws = workspace(root)
    publish_prover(root, ws)
    newest = CheckpointStore(root, "prover").info(publish_prover(root, ws))
    weights = Path(root.backend.location(f"checkpoints/prover/{newest.path.rpartition('/')[2]}"))
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    monkeypatch.setattr(prover_actor, "prove_theorems", Search(never))
    assert run(root, max_records=2) == "finished"
    assert [r.prover_version for r in results(root)] == [0, 0]
    assert heartbeat(root)["prover_version"] == 0


# --- publishing: busy, idle, new input ------------------------------------------------------------------------


def test_with_nothing_to_read_but_a_damaged_shard_the_job_idles_until_its_time_bound(tmp_path: Path) -> None:
    root = experiment(tmp_path / "exp", "tiny", *FAST)
    publish_prover(root, workspace(root))
    damaged = Path(root.backend.location(f"streams/{ONE}/{0:012d}.zst"))
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"not a shard")
    assert run(root, minutes=0.01) == "finished"
    beat = heartbeat(root)
    assert (beat["state"], beat["quarantined"]) == ("idle (no new generations)", 1)
    assert (beat["records_in"], beat["records_out"]) == (0, 0) and stream_bounds(root, "prover-actor-00") == (0, 0)


def test_results_are_published_within_shard_seconds_while_the_actor_is_busy(tmp_path: Path, monkeypatch) -> None:
    root = experiment(tmp_path / "exp", "tiny", *FAST, "prover_actor.shard_records=100",
                      "prover_actor.shard_seconds=0.1")  # fmt: skip
    ws = workspace(root)
    publish_prover(root, ws)
    for goal in generated(ws, 0, 3):
        send(root, ONE, [goal])
    published: list[int] = []

    def before(call: int) -> None:
        published.append(stream_bounds(root, "prover-actor-00")[1])
        if call == 2:
            time.sleep(0.15)  # a slow search: the first result is now older than shard_seconds

    monkeypatch.setattr(prover_actor, "prove_theorems", Search(never, before=before))
    assert run(root, max_records=3) == "finished"
    assert published[2] == 1  # published after the second batch, before the third
    assert len(results(root)) == 3


def test_an_idle_actor_publishes_what_it_holds_and_takes_up_new_generations(tmp_path: Path, monkeypatch) -> None:
    root = experiment(tmp_path / "exp", "tiny", *FAST, "prover_actor.shard_records=100",
                      "prover_actor.shard_seconds=0.1")  # fmt: skip
    ws = workspace(root)
    publish_prover(root, ws)
    goals = generated(ws, 0, 3)
    send(root, ONE, goals[:2])
    monkeypatch.setattr(prover_actor, "prove_theorems", Search(never))
    waits: list[tuple[float, dict[str, Any], int]] = []

    def sleep(self: Runtime, seconds: float) -> None:
        waits.append((seconds, dict(self.counters), stream_bounds(root, "prover-actor-00")[1]))
        if len(waits) == 1:
            time.sleep(0.15)  # no generation for a while: what it holds is older than shard_seconds
        elif len(waits) == 2:
            send(root, ONE, goals[2:])

    monkeypatch.setattr(Runtime, "sleep", sleep)
    assert run(root, max_records=3) == "finished"
    assert [r.id for r in results(root)] == [g.id for g in goals]
    assert len(waits) == 2 and all(0 < seconds <= 1 for seconds, _, _ in waits)
    counters = waits[0][1]
    assert counters["state"] == "idle (no new generations)"
    assert (counters["records_out"], counters["quarantined"]) == (2, 0)
    assert waits[1][2] == 1  # published while waiting
    assert heartbeat(root)["state"] == "proving"


# --- live metrics --------------------------------------------------------------------------------------------


def test_the_live_metrics_describe_each_window_of_results(tmp_path: Path, monkeypatch) -> None:
    root = experiment(tmp_path / "exp", "prover_only", *FAST, "prover_actor.search.batch_goals=2",
                      "metrics.every_seconds=3600")  # fmt: skip
    publish_prover(root, workspace(root))
    monkeypatch.setattr(prover_actor, "prove_theorems", Search(lambda label, attempt, call: call == 1))
    written: list[tuple[dict[str, Any], bool, bool]] = []
    timed_scalars = Runtime.timed_scalars

    def spy(self: Runtime, values: Any, *, force: bool = False) -> bool:
        wrote = timed_scalars(self, values, force=force)
        written.append((dict(values), force, wrote))
        return wrote

    monkeypatch.setattr(Runtime, "timed_scalars", spy)
    start = time.time()
    assert run(root, max_records=4) == "finished"
    elapsed = time.time() - start
    assert [(force, wrote) for _, force, wrote in written] == [(False, True), (False, False), (True, True)]
    assert [values["actor/proved_rate"] for values, _, _ in written] == [1.0, 0.0, 0.0]  # a window: since the last
    assert [values["actor/mean_reward"] for values, _, _ in written] == [0.0, 1.0, 1.0]
    assert all(values["actor/proved_rate_generated"] is None for values, _, _ in written)  # no generated goal
    assert written[0][0]["actor/prover_version"] == 0
    assert [values["actor/results_per_s"] >= 2 / elapsed for values, _, _ in written] == [True] * 3
    tags = {tag for tag, _ in scalar_points(str(tmp_path / "exp" / "tensorboard" / "prover-actor-00"))}
    assert {"actor/results_per_s", "actor/proved_rate", "actor/mean_reward", "actor/prover_version"} <= tags


class ScalarsStub:
    """A runtime's ``timed_scalars``: answers in turn whether each unforced point was written (forced: always)."""

    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self.points: list[tuple[dict[str, Any], bool]] = []

    def timed_scalars(self, values: dict[str, Any], *, force: bool = False) -> bool:
        self.points.append((values, force))
        return True if force else self.answers.pop(0)


def test_a_metrics_window_holds_the_results_until_a_point_is_written() -> None:
    one, two, three = (sample_result(sample_generation(f"g/{i}", source="generator"), proved=i == 1) for i in (1, 2, 3))
    rt = ScalarsStub([False, True, False])
    start = time.time()
    window = prover_actor.MetricsWindow()
    window.add(rt, [])  # type: ignore[arg-type]  # the stub stands in for the runtime
    assert rt.points == []  # nothing to describe
    window.add(rt, [one])  # type: ignore[arg-type]
    window.add(rt, [two])  # type: ignore[arg-type]
    elapsed = time.time() - start
    assert [values["actor/proved_rate"] for values, _ in rt.points] == [1.0, 0.5]  # held, then both written
    assert rt.points[1][0]["actor/results_per_s"] >= 2 / elapsed
    window.flush(rt)  # type: ignore[arg-type]
    assert len(rt.points) == 2  # nothing since the last point
    window.add(rt, [three])  # type: ignore[arg-type]
    window.flush(rt)  # type: ignore[arg-type]
    assert [(values["actor/proved_rate"], force) for values, force in rt.points[2:]] == [(0.0, False), (0.0, True)]
    assert rt.points[3][0]["actor/results_per_s"] >= 1 / (time.time() - start)


def test_result_scalars_describe_a_window() -> None:
    generated_proved = dataclasses.replace(sample_result(sample_generation("g/1", source="generator"), proved=True),
                                           prover_version=3)  # fmt: skip
    generated_failed = sample_result(sample_generation("g/2", source="generator"), reward=1.0)
    dataset_proved = dataclasses.replace(sample_result(sample_generation("g/3"), proved=True, reward=0.5),
                                         prover_version=4)  # fmt: skip
    window = [generated_proved, generated_failed, dataset_proved]
    scalars = prover_actor.result_scalars(window, 2.0)
    assert scalars["actor/results_per_s"] == pytest.approx(1.5)
    assert scalars["actor/proved_rate"] == pytest.approx(2 / 3)
    assert scalars["actor/proved_rate_generated"] == pytest.approx(0.5)  # of the generated goals only
    assert scalars["actor/mean_reward"] == pytest.approx(0.5)
    assert scalars["actor/prover_version"] == 4  # the newest result's
    instant = prover_actor.result_scalars(window, 0.0)["actor/results_per_s"]
    assert instant is not None and instant > 1e6  # no division by zero


# --- the search's settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["prover_actor.search.prover=backward"], 7),
        (["prover_actor.search.prover=htps"], 7),
        (["prover_actor.search.prover=forward-greedy"], 0),  # a forward search has no goal graph
        (["prover_actor.search.prover=backward", "prover_trainer.critic=false"], 0),
    ],
    ids=["backward", "htps", "forward", "no-critic"],
)
def test_critic_targets_are_asked_of_graph_searches_when_a_critic_is_trained(
    overrides: list[str], expected: int
) -> None:
    config = preset("tiny").with_overrides(["prover_trainer.critic_max_examples=7", *overrides])
    assert prover_actor.critic_examples_per_search(config, config.prover_actor.search) == expected


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    root = experiment(tmp_path / "exp", "tiny", *FAST)
    rt = Runtime.start("prover_actor", str(root.url), 0, None)
    yield rt
    rt._closed.set()


def test_the_search_time_is_counted_in_milliseconds(runtime: Runtime, monkeypatch) -> None:
    ws = runtime.workspace
    goals = [(g, g.goal.theorem(ws)) for g in generated(ws, 0, 2)]
    monkeypatch.setattr(prover_actor, "prove_theorems", Search(never))
    clock = iter([100.0, 101.2345678, 200.0, 200.5])
    monkeypatch.setattr(prover_actor.time, "perf_counter", lambda: next(clock))
    box = {"policy": None, "version": 0}
    settings = runtime.config.prover_actor.search
    assert len(prover_actor.prove_goals(runtime, goals, box, settings)) == 2
    assert runtime.counters["search_seconds"] == 1.235
    prover_actor.prove_goals(runtime, goals, box, settings)
    assert runtime.counters["search_seconds"] == pytest.approx(1.735)
