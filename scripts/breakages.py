"""Check that the learning-logic tests catch deliberate one-line breakages (issue 16).

    python scripts/breakages.py [NAME ...]      # all breakages, or those named; exits 1 if one survives

Each breakage replaces one line of the code (the exact text must be found once), runs the tests that pin
it, and restores the file whatever happens. A breakage "survives" when its tests still pass: then the
tests no longer pin that behaviour. Run it from the project root on a clean working tree; it takes
a few minutes (each breakage runs a handful of fast tests).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROLLOUT = "tests/adversarial/test_rollout_logic.py"
LEARNING = "tests/jobs/test_learning_logic.py"
HINDSIGHT = "tests/adversarial/test_hindsight.py"
POLICY = "tests/search/test_model_policy.py"


def learning(test: str) -> tuple[str, ...]:
    return (f"{LEARNING}::{test}",)


def rollout(test: str) -> tuple[str, ...]:
    return (f"{ROLLOUT}::{test}",)


@dataclass(frozen=True)
class Breakage:
    name: str
    path: str
    original: str
    broken: str
    tests: tuple[str, ...]


BREAKAGES = [
    Breakage(
        "reinforce-weights-all-one",
        "jobs/generator_trainer.py",
        'weights += [advantage] * len(item["examples"])',
        'weights += [1.0] * len(item["examples"])',
        learning("test_reinforce_raises_rewarded_and_lowers_unrewarded_rollouts"),
    ),
    Breakage(
        "baseline-never-updated",
        "jobs/generator_trainer.py",
        'job.extra_state["baseline"] = value if seen == 0 else decay * baseline(job) + (1 - decay) * value',
        'job.extra_state["baseline"] = baseline(job)',
        learning("test_the_baseline_follows_the_rewards"),
    ),
    Breakage(
        "prover-trainer-ignores-its-flag",
        "jobs/prover_trainer.py",
        "if not record.for_prover_trainer:",
        "if False:",
        learning("test_the_prover_trainer_keeps_exactly_the_records_flagged_for_it"),
    ),
    Breakage(
        "generator-trainer-ignores-its-flag",
        "jobs/generator_trainer.py",
        "if not record.for_generator_trainer:",
        "if False:",
        learning("test_the_generator_trainer_keeps_exactly_the_records_flagged_for_it"),
    ),
    Breakage(
        "generator-send-only-failed-ignored",
        "core/adversarial/records.py",
        "for_generator_trainer=generation.generated and (not proved or not generator_send_only_failed),",
        "for_generator_trainer=generation.generated,",
        learning("test_result_records_carry_the_outcome_reward_and_routing"),
    ),
    Breakage(
        "prover-send-only-failed-ignored",
        "core/adversarial/topology.py",
        "given = not proved or not send_only_failed",
        "given = True",
        learning("test_result_records_carry_the_outcome_reward_and_routing"),
    ),
    Breakage(
        "failures-counted-as-proofs",
        "jobs/prover_actor.py",
        "successes = sum(r.proved for r in tries)",
        "successes = sum(not r.proved for r in tries)",
        learning("test_result_records_carry_the_outcome_reward_and_routing"),
    ),
    Breakage(
        "hard-reward-inverted",
        "core/adversarial/rewards.py",
        "return 1.0 if successes == 0 else 0.0",
        "return 1.0 if successes > 0 else 0.0",
        learning("test_result_records_carry_the_outcome_reward_and_routing"),
    ),
    Breakage(
        "band-attempts-forced-to-one",
        "jobs/prover_actor.py",
        'return config.rewards.attempts if config.rewards.kind == "band" else 1',
        "return 1",
        learning("test_band_rewards_search_each_goal_attempts_times"),
    ),
    Breakage(
        "band-needs-no-sampling-prover",
        "configs/experiment.py",
        'if self.rewards.kind == "band" and self.prover_actor.search.prover != "forward-sampling":',
        "if False:",
        ("tests/configs/test_configs.py::test_band_reward_needs_a_sampling_prover",),
    ),
    Breakage(
        "best-picks-the-worst",
        "core/adversarial/generation.py",
        "candidates = sorted(nodes, key=lambda n: (-self.score(n), n.index))",
        "candidates = sorted(nodes, key=lambda n: (self.score(n), n.index))",
        rollout("test_best_selection_takes_the_best_node_by_each_heuristic"),
    ),
    Breakage(
        "last-is-not-last",
        "core/adversarial/generation.py",
        "candidates = [nodes[-1]]",
        "candidates = sorted(nodes, key=lambda n: (-self.score(n), n.index))",
        rollout("test_last_selection_takes_the_last_node"),
    ),
    Breakage(
        "token-frequency-ignored",
        "core/adversarial/generation.py",
        "frequencies = [self._token_frequency.get(token, 0.0) for token in node.statement[1:]] or [0.0]",
        "frequencies = [0.0]",
        rollout("test_best_selection_takes_the_best_node_by_each_heuristic"),
    ),
    Breakage(
        "too-long-filter-removed",
        "core/adversarial/generation.py",
        "if len(node.statement) + sum(len(h) for h in hypotheses) > self.max_statement_tokens:",
        "if False:",
        rollout("test_too_long_rejects_exactly_the_nodes_over_the_limit"),
    ),
    Breakage(
        "equals-hypothesis-filter-removed",
        "core/adversarial/generation.py",
        "if node.statement in hypotheses:",
        "if False:",
        rollout("test_a_node_that_restates_a_used_hypothesis_is_rejected"),
    ),
    Breakage(
        "replay-min-ignored",
        "jobs/_trainer.py",
        "ready = len(job.buffer) >= max(section.replay_min, 1)",
        "ready = len(self.buffer) >= 1",
        learning("test_batches_wait_for_replay_min_then_mix_by_supervised_weight"),
    ),
    Breakage(
        "supervised-weight-ignored",
        "jobs/_trainer.py",
        "n_generated = section.batch_size - round(section.batch_size * section.supervised_weight) if ready else 0",
        "n_generated = section.batch_size // 2 if ready else 0",
        learning("test_batches_wait_for_replay_min_then_mix_by_supervised_weight"),
    ),
    Breakage(
        "refill-disabled",
        "jobs/_trainer.py",
        'refill(job, rules, latest.meta.get("windows", {}).get(str(job.rt.rank), {}), cursor)',
        "pass",
        learning("test_a_restarted_trainer_refills_its_buffer_from_the_committed_window"),
    ),
    Breakage(
        "completion-always-fails",
        "core/adversarial/generation.py",
        "given = {v: tuple(e) for v, e in tactic.substitution.items()}",
        "return None",
        rollout("test_an_incomplete_tactic_is_completed_from_the_graph"),
    ),
    Breakage(
        "stop-before-anything-taken",
        "core/adversarial/generation.py",
        "return bool(rollout.steps) and len(rollout.steps) >= self.settings.min_steps",
        "return len(rollout.steps) >= self.settings.min_steps",
        rollout("test_a_stop_before_anything_was_made_is_never_taken"),
    ),
    Breakage(
        "early-stop-skip-removed",
        "core/adversarial/generation.py",
        "if not self.may_stop(rollout):",
        "if False:",
        rollout("test_a_stop_before_anything_was_made_is_never_taken"),
    ),
    Breakage(
        "min-steps-not-masked",
        "core/adversarial/generation.py",
        "ForwardQuery(r.env, None, may_stop=self.may_stop(r), inference_only=",
        "ForwardQuery(r.env, None, inference_only=",
        rollout("test_stop_is_masked_until_min_steps_then_allowed"),
    ),
    Breakage(
        "stop-token-never-masked",
        "core/search/model_policy.py",
        "mask = self._first_tokens(query.env, stop=generator and query.may_stop, inference_only=",
        "mask = self._first_tokens(query.env, stop=generator, inference_only=",
        ("tests/search/test_model_policy.py::test_forward_and_generator_proposals_follow_the_replay",),
    ),
    Breakage(
        "retention-removed",
        "jobs/_trainer.py",
        "job.store.retain(job.section.keep_checkpoints, RETENTION_GRACE_S)",
        "pass",
        learning("test_old_checkpoint_versions_are_pruned"),
    ),
    Breakage(
        "evaluator-every-ignored",
        "jobs/evaluator.py",
        "candidates = [v for v in versions if v not in done and (v % every == 0 or v == latest)]",
        "candidates = [v for v in versions if v not in done]",
        learning("test_the_evaluator_takes_every_nth_version_and_the_latest"),
    ),
    Breakage(
        "entropy-weight-unread",
        "jobs/generator_trainer.py",
        "_trainer.training(job).entropy_weight = job.rt.config.generator_trainer.entropy_weight",
        "pass",
        learning("test_the_entropy_bonus_spreads_the_policy"),
    ),
    Breakage(
        "entropy-bonus-not-in-loss",
        "core/models/training.py",
        "loss = loss - self.entropy_weight * entropy.sum() / total_tokens",
        "pass",
        learning("test_the_entropy_bonus_spreads_the_policy"),
    ),
    Breakage(
        "trainer-not-reseeded-on-resume",
        "jobs/_trainer.py",
        "reseed(job, trainer.steps)",
        "pass",
        learning("test_a_resumed_trainer_reseeds_from_its_step"),
    ),
    Breakage(
        "generator-actor-restart-unseeded",
        "jobs/generator_actor.py",
        "rt.restart = sum(writer.next_seq for writer in writers)",
        "pass",
        learning("test_a_restarted_generator_actor_seeds_from_the_shards_it_published"),
    ),
    Breakage(
        "seed-from-the-clock",
        "jobs/_role.py",
        "return job_seed(self.config.seed, self.name, self.restart)",
        "return job_seed(self.config.seed, self.name, int(self.started))",
        learning("test_job_seeds_are_reproducible_and_never_read_the_clock"),
    ),
    Breakage(
        "hindsight-keeps-held-out-statements",
        "core/adversarial/hindsight.py",
        "if node.statement in workspace.held_out_statements:",
        "if False:",
        learning("test_hindsight_never_trains_on_a_held_out_statement"),
    ),
    Breakage(
        "hindsight-kernel-check-skipped",
        "core/adversarial/hindsight.py",
        "check_tree(workspace.db, workspace.grammar, theorem, node.tree, workspace.kernel)",
        "pass",
        (f"{HINDSIGHT}::test_an_intermediate_theorem_the_kernel_refuses_is_skipped_and_counted",),
    ),
    Breakage(
        "prover-trainer-kernel-check-skipped",
        "jobs/prover_trainer.py",
        "check_tree(ws.db, ws.grammar, theorem, tree, ws.kernel)\n            trees.append((tree, own))",
        "trees.append((tree, own))",
        ("tests/jobs/test_prover_only.py::test_prover_only_refuses_a_held_out_theorem_and_a_proof_of_another_theorem",),
    ),
    Breakage(
        "subgoal-kernel-check-skipped",
        "jobs/prover_trainer.py",
        'f"{root.label}.s{index + 1}")\n            check_tree(ws.db, ws.grammar, theorem, tree, ws.kernel)',
        'f"{root.label}.s{index + 1}")',
        ("tests/jobs/test_prover_only.py::test_a_corrupted_or_held_out_subgoal_is_never_learned",),
    ),
    Breakage(
        "prover-only-routes-failures",
        "core/adversarial/topology.py",
        "if learns == OWN_PROOFS:",
        "if False:",
        ("tests/adversarial/test_topology.py::test_what_the_prover_trainer_is_sent",),
    ),
    Breakage(
        "difficulty-medium-labelled-hard",
        "core/adversarial/rewards.py",
        'return "HARD" if successes <= 0 else "MEDIUM"',
        'return "HARD"',
        ("tests/adversarial/test_difficulty.py::test_the_label_is_the_measured_outcome",),
    ),
    Breakage(
        "compose-ignored",
        "core/adversarial/generation.py",
        "if not self.settings.compose or not rollout.steps:",
        "if True:",
        rollout("test_with_compose_a_step_that_uses_no_made_node_is_refused"),
    ),
    Breakage(
        "compose-asks-for-any-label",
        "core/adversarial/generation.py",
        "inference_only=bool(self.must_use(r))",
        "inference_only=False",
        rollout("test_with_compose_a_step_on_a_made_node_is_taken"),
    ),
    Breakage(
        "completion-ignores-required-nodes",
        "core/adversarial/generation.py",
        "enumerate(_building_on(choices, must_use) if must_use else _combinations(choices))",
        "enumerate(_combinations(choices))",
        rollout("test_completion_with_must_use_builds_on_those_nodes_largest_first"),
    ),
    Breakage(
        "inference-only-mask-ignored",
        "core/search/model_policy.py",
        "            if inference_only:",
        "            if False:",
        (f"{POLICY}::test_inference_only_queries_allow_only_assertions_with_essential_hypotheses",),
    ),
    Breakage(
        "generator-drops-partial-tactics",
        "core/search/model_policy.py",
        "partial=generator)",
        "partial=False)",
        (f"{POLICY}::test_generator_queries_keep_a_malformed_substitution_as_a_partial_tactic",),
    ),
]


def survives(breakage: Breakage) -> bool:
    """Apply ``breakage``, run its tests, restore the file; True if the tests still passed."""
    path = ROOT / breakage.path
    text = path.read_text()
    if text.count(breakage.original) != 1:
        raise SystemExit(
            f"breakage {breakage.name}: the line to break is not found exactly once in {breakage.path}; "
            f"update scripts/breakages.py"
        )
    try:
        path.write_text(text.replace(breakage.original, breakage.broken))
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *breakage.tests],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    finally:
        path.write_text(text)
    return result.returncode == 0


def main(names: list[str]) -> int:
    chosen = [b for b in BREAKAGES if not names or b.name in names]
    unknown = set(names) - {b.name for b in BREAKAGES}
    if unknown:
        print(f"unknown breakage(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    survivors = []
    for breakage in chosen:
        alive = survives(breakage)
        print(f"{'SURVIVED' if alive else 'caught  '}  {breakage.name}", flush=True)
        survivors += [breakage.name] if alive else []
    print(f"{len(chosen) - len(survivors)}/{len(chosen)} breakages caught")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
