"""Fill the ``?`` proofs of a Metamath database with a prover: ``python -m jobs.prove DATABASE.mm --out OUT.mm``.

Every ``|-`` theorem whose proof is incomplete (contains ``?``) is searched in the context of the labels
that precede it (never citing a theorem whose own proof is incomplete, nor one whose comment says
``(New usage is discouraged.)`` unless ``--allow-discouraged``); OUT.mm is DATABASE.mm with each found
proof written in compressed form and laid out as set.mm does (:mod:`core.metamath.writer`, the input's
line endings kept), everything else untouched, so ``metamath 'read "OUT.mm"' 'verify proof *' exit``
accepts it. ``--out`` and ``--json`` are checked before the search (their folders must exist and be
writable); ``--out`` may not be DATABASE.mm itself (by any name or link) unless ``--in-place`` is given,
which replaces it keeping its mode and links (:mod:`core.files`). One line per theorem is printed as its
search ends, then ``proved K of N in T s``. Without ``--checkpoint`` the model-free baseline
(:mod:`core.search.baseline`) proposes the tactics; with one, the backward prover adds the baseline's
candidates after the model's proposals (:mod:`core.search.merged`) unless ``--merge_baseline=false``.
``--prover htps`` searches with HyperTree proof search (:mod:`core.search.htps`) instead of best-first; its
parameters have flags of their names in :class:`core.search.htps.HtpsSettings` (``--exploration``,
``--virtual-loss``, ``--num-tactics``, ``--depth-limit``, ``--size-limit``, ``--succ-expansions``,
``--critic-value``; ``--num-tactics`` and ``--depth-limit`` default to ``--candidates`` and ``--max-depth``,
the others to the experiment configuration's defaults, :class:`core.search.settings.HtpsParameters`),
refused with any other prover. A checkpoint that holds a goal critic (:mod:`core.models.critic`, trained by
the prover trainer) is used by the backward and htps provers (HTPS: the values of new goals; best-first:
the goal order): by default whenever it has one, with ``--critic`` always (a checkpoint without one is then
an error), with ``--no-critic`` never.

``--split test|valid|train`` evaluates the database's split instead (each theorem in its own context,
itself forbidden; nothing is written but the ``--json`` summary of :func:`core.search.evaluation.summarize`).

Examples::

    python -m jobs.prove my.mm --out my.filled.mm --expansions 256
    python -m jobs.prove ../shared/data/metamath/prop.mm --split test --expansions 64 --json base64.json
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json as jsonlib
import logging
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from core.errors import AdvproverError, ConfigError, MetamathError, UsageError
from core.files import check_output_path, refuse_overwriting_input, same_file, write_text
from core.metamath.comments import database_discouraged_labels
from core.metamath.database import Assertion, Database
from core.metamath.prooftree import ProofTree, check_tree, proof_tokens
from core.metamath.reader import read_database
from core.metamath.splits import SplitRatios, split_theorems
from core.metamath.syntax import Grammar
from core.metamath.verifier import Kernel
from core.metamath.writer import rewrite_proofs
from core.search.baseline import BaselinePolicy
from core.search.evaluation import ProgressLog, prove_theorems, summarize
from core.search.htps import Critic, HtpsSettings
from core.search.policy import Policy
from core.search.runner import SearchResult, SearchSettings
from core.search.settings import RANK_POOL
from core.storage import location_exists
from jobs._cli import run_cli

logger = logging.getLogger("jobs.prove")

PROVE_CANDIDATES = 32  # default k (see the candidates argument); searches elsewhere keep search.candidates
Prover = Literal["backward", "forward-greedy", "forward-sampling", "htps"]
Split = Literal["train", "valid", "test"]


def prove(
    database: str,
    *,
    out: str | None = None,
    checkpoint: str | None = None,
    device: str | None = None,
    prover: Prover = "backward",
    expansions: int = 64,
    timeout_s: float = 30.0,
    candidates: int = PROVE_CANDIDATES,
    max_depth: int = 24,
    temperature: float = 1.0,
    only: list[str] | None = None,
    workers: int = 1,
    batch: int = 16,
    seed: int = 0,
    split: Split | None = None,
    split_ratios: str = "80/10/10",
    split_salt: str = "",
    json: str | None = None,
    allow_discouraged: bool = False,
    in_place: bool = False,
    merge_baseline: bool = True,
    fill_lemmas: bool = False,
    truth_table: bool = False,
    rank_baseline: bool = False,
    rank_pool: int = RANK_POOL,
    critic: bool | None = None,
    exploration: float | None = None,
    virtual_loss: int | None = None,
    num_tactics: int | None = None,
    depth_limit: int | None = None,
    size_limit: int | None = None,
    succ_expansions: int | None = None,
    critic_value: float | None = None,
) -> int:
    """Fill the ? proofs of DATABASE into --out OUT.mm (or evaluate a --split); see the module docstring.

    Args:
        database: the .mm file.
        out: where to write the database with the found proofs (required unless --split).
        checkpoint: a prover checkpoint file or experiment root, a path or URL (default: the model-free baseline).
        device: where the checkpoint's model runs (cpu, cuda, ...; default: cuda when available).
        prover: backward | forward-greedy | forward-sampling | htps (HyperTree proof search, core.search.htps;
            expansions and timeout_s apply to it too; its own parameters are the htps flags below).
        expansions: budget per theorem, in policy queries.
        timeout_s: budget per theorem, in charged seconds.
        candidates: proposals per query (k; a best-first search expands each goal once, so k bounds its
            branching: 32 was chosen on prop.mm's valid split, where at 64 expansions it proves 47/98 against
            18/98 at k = 8 with the baseline, 65/98 against 58/98 with a learned prover).
        max_depth: deepest backward goal / longest forward rollout.
        temperature: sampling temperature (forward-sampling).
        only: comma-separated labels: search only these theorems.
        workers: processes, each with its own policy.
        batch: searches run at once per process (their policy calls are batched).
        seed: seed of the baseline policy.
        split: evaluate this split of the database's theorems instead of its ? theorems.
        split_ratios: train/valid/test ratios of the split.
        split_salt: salt of the split hash.
        json: write the JSON summary (per-theorem outcomes included) here.
        allow_discouraged: let proofs cite theorems marked "(New usage is discouraged.)".
        in_place: allow --out to be DATABASE itself (replaced, keeping its mode and links).
        merge_baseline: with --checkpoint and the backward or htps prover, add the model-free baseline's
            candidates after the model's proposals (false: the model's alone).
        fill_lemmas: with --merge_baseline, also try each lemma the model proposes that leaves one variable
            free with that variable filled by every subexpression of the goal, the theorem and its hypotheses.
        truth_table: with the backward or htps prover, search last the goals that the theorem's hypotheses do
            not entail by truth table (core.search.truth_table; reads set.mm's propositional notation).
        rank_baseline: with --checkpoint and the backward or htps prover, let the model rank the baseline's
            candidates instead of decoding its own (core.search.ranked; faster on a CPU).
        rank_pool: with --rank_baseline, the baseline's candidates the model scores per goal.
        critic: use the checkpoint's goal critic (backward and htps provers; default: when it has one;
            true: it must have one; false: never).
        exploration: htps: the PUCT exploration constant (default 1.0).
        virtual_loss: htps: virtual visits of a pending selection (default 1).
        num_tactics: htps: proposals per expansion (default: --candidates).
        depth_limit: htps: goals this deep are never expanded (default: --max-depth).
        size_limit: htps: the search stops when its graph holds this many goals (default 10000).
        succ_expansions: htps: leaves expanded per step, in one policy call (default 8).
        critic_value: htps: the value of a new goal without a critic (default 0.5).
    """
    start = time.perf_counter()
    _check_arguments(database, out, checkpoint, workers, batch, split)
    _check_critic(critic, checkpoint, prover)
    if device is not None:
        from core.models.devices import check_device

        check_device(device)
    _check_outputs(database, out, json, in_place)
    try:
        settings = SearchSettings(
            prover=prover,
            expansions=expansions,
            timeout_s=timeout_s,
            candidates=candidates,
            temperature=temperature,
            max_depth=max_depth,
            batch_goals=batch,
            merge_baseline=merge_baseline,
            fill_lemmas=fill_lemmas,
            truth_table=truth_table,
            rank_baseline=rank_baseline,
            rank_pool=rank_pool,
            critic=critic is not False,
        )
    except ConfigError as error:
        raise _under_its_flag(error) from None
    htps = _htps_settings(
        settings,
        exploration=exploration,
        virtual_loss=virtual_loss,
        num_tactics=num_tactics,
        depth_limit=depth_limit,
        size_limit=size_limit,
        succ_expansions=succ_expansions,
        critic_value=critic_value,
    )
    if htps is not None:
        settings = dataclasses.replace(settings, htps=htps.parameters())  # the JSON summary's settings show them
    db = read_database(database)
    _check_outputs_not_included(db, out, json)
    forbidden = {a.label for a in db.incomplete_theorems()}  # never cite a theorem that is not proved
    if not allow_discouraged:
        forbidden |= _discouraged(db)
    theorems = _split_targets(db, split, split_ratios, split_salt, only) if split else _incomplete_targets(db, only)
    logger.info(
        "%s: %d theorem(s) to search with %s, %s, %d expansions, %.1f s each",
        database,
        len(theorems),
        checkpoint or "the model-free baseline",
        prover,
        expansions,
        timeout_s,
    )
    spec = _PolicySpec(database, checkpoint, device, seed, critic)
    results = _search(db, theorems, spec, settings, forbidden, workers, batch, htps)
    grammar, kernel = Grammar(db), Kernel(db)
    by_label = {t.label: t for t in theorems}
    proofs = {
        r.label: _compressed_proof(db, grammar, kernel, by_label[r.label], r.proof)
        for r in results
        if r.proved and r.proof is not None
    }
    results = [
        dataclasses.replace(r, proved=False, proof=None, stop_reason="kernel_rejected")
        if r.proved and proofs.get(r.label) is None
        else r
        for r in results
    ]
    if out is not None:
        rewrite_proofs(database, {label: p for label, p in proofs.items() if p is not None}, out, keep_links=in_place)
        logger.info("wrote %s", out)
    elapsed = time.perf_counter() - start
    if json is not None:
        summary = summarize(results, settings=settings, include_proofs=True, elapsed_s=elapsed)
        summary.update(database=database, split=split, policy=checkpoint or "baseline", seed=seed,
                       htps=dataclasses.asdict(htps) if htps is not None else None)  # fmt: skip
        _write_json(json, summary)
    proved = sum(r.proved for r in results)
    print(f"proved {proved} of {len(results)} in {elapsed:.1f} s", flush=True)
    return 0


# --- arguments and targets ------------------------------------------------------------------------


def _check_arguments(
    database: str, out: str | None, checkpoint: str | None, workers: int, batch: int, split: str | None
) -> None:
    if not os.path.isfile(database):
        raise UsageError(f"{database}: no such file")
    if split is None and out is None:
        raise UsageError(
            "--out OUT.mm is required (where the database with the found proofs is written), "
            "unless --split evaluates a split"
        )
    if split is not None and out is not None:
        raise UsageError("--out has no meaning with --split (nothing is written but --json)")
    if checkpoint is not None and not location_exists(checkpoint):
        raise UsageError(f"--checkpoint {checkpoint}: no such file, folder or URL")
    if workers < 1 or batch < 1:
        raise UsageError(f"--workers and --batch must be >= 1, got {workers} and {batch}")


def _check_critic(critic: bool | None, checkpoint: str | None, prover: str) -> None:
    if critic and checkpoint is None:
        raise UsageError("--critic needs --checkpoint (a prover checkpoint that holds a goal critic)")
    if critic and prover not in ("backward", "htps"):
        raise UsageError(f"--critic applies to --prover backward or htps, not {prover}")


def _htps_settings(settings: SearchSettings, **given: float | None) -> HtpsSettings | None:
    """The HTPS settings of ``--prover htps`` (None for another prover); UsageError naming the flag of a bad
    value, or of an htps flag given to another prover."""
    overrides = {name: value for name, value in given.items() if value is not None}
    if settings.prover != "htps":
        if overrides:
            flags = ", ".join(_flag_name(name) for name in overrides)
            raise UsageError(f"{flags} appl{'ies' if len(overrides) == 1 else 'y'} to --prover htps only")
        return None
    try:
        return HtpsSettings.from_search(settings, **overrides)
    except ConfigError as error:
        raise _under_its_flag(error) from None


def _flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _under_its_flag(error: ConfigError) -> AdvproverError:
    """A refused search or HTPS setting reported under the flag the user typed (``--batch``, which sets
    ``batch_goals``, is checked before, by :func:`_check_arguments`; HTPS settings taken from the search
    settings, ``num_expansions`` and ``timeout_s``, were checked there)."""
    return error if error.field is None else UsageError(f"{_flag_name(error.field)}: {error}")


def _check_outputs(database: str, out: str | None, json: str | None, in_place: bool) -> None:
    """Fail before the search if an output cannot be written, or would overwrite the input by accident."""
    if in_place and out is None:
        raise UsageError("--in-place needs --out (it allows --out to be the input file)")
    if out is not None:
        check_output_path(out, "--out")
        refuse_overwriting_input(database, out, "--out", in_place=in_place)
    if json is not None:
        check_output_path(json, "--json")
        refuse_overwriting_input(database, json, "--json", in_place=False)
        if out is not None and same_file(json, out):
            raise UsageError(f"--json {json} is also --out; give two different paths")


def _check_outputs_not_included(db: Database, out: str | None, json: str | None) -> None:
    """Fail before the search if an output is a file that DATABASE includes (``--in-place`` or not)."""
    for flag, path in (("--out", out), ("--json", json)):
        included = [name for name in db.files[1:] if path is not None and same_file(name, path)]
        if included:
            raise UsageError(f"{flag} {path} is {included[0]}, a file that {db.path} includes; give another path")


def _discouraged(db: Database) -> set[str]:
    """The labels marked "(New usage is discouraged.)", which found proofs may not cite."""
    labels = database_discouraged_labels(db)
    if labels:
        logger.info(
            "%d theorem(s) marked (New usage is discouraged.) are not cited (--allow-discouraged allows them)",
            len(labels),
        )
    return labels


def _incomplete_targets(db: Database, only: Sequence[str] | None) -> list[Assertion]:
    targets = []
    for theorem in db.incomplete_theorems():
        if only is not None and theorem.label not in only:
            continue
        if theorem.typecode != db.provable_typecode:
            logger.warning(
                "%s: skipped, a %r theorem (only %r theorems are searched)",
                theorem.label,
                theorem.typecode,
                db.provable_typecode,
            )
        elif os.path.realpath(theorem.file) != os.path.realpath(db.path):
            logger.warning(
                "%s: skipped, its proof is in the included file %s, which is not rewritten", theorem.label, theorem.file
            )
        else:
            targets.append(theorem)
    if only is not None:
        _check_only(only, {t.label for t in db.incomplete_theorems()}, "theorems with an incomplete (?) proof")
    return targets


def _split_targets(db: Database, split: str, ratios: str, salt: str, only: Sequence[str] | None) -> list[Assertion]:
    theorems = split_theorems(db, SplitRatios.parse(ratios), salt)[split]
    if only is not None:
        _check_only(only, {t.label for t in theorems}, f"theorems of the {split} split")
        theorems = [t for t in theorems if t.label in only]
    return theorems


def _check_only(only: Sequence[str], available: set[str], what: str) -> None:
    unknown = [label for label in only if label not in available]
    if unknown:
        raise UsageError(
            f"--only names {', '.join(unknown[:10])}, which {'is' if len(unknown) == 1 else 'are'} not among the {what}"
        )


# --- policies -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _PolicySpec:
    """What each process needs to build its own policy."""

    database: str
    checkpoint: str | None
    device: str | None
    seed: int
    critic: bool | None = None  # --critic: None (when the checkpoint has one), True (required) or False

    def build(self, db: Database, grammar: Grammar) -> tuple[Policy, Critic | None]:
        """The policy, and the checkpoint's critic when it is used (UsageError if --critic finds none)."""
        if self.checkpoint is None:
            return BaselinePolicy(db, grammar=grammar, seed=self.seed), None
        from core.models.checkpoint import read_model  # only here: it imports torch
        from core.search.model_policy import policy_from_model

        loaded = read_model(self.checkpoint, kind="prover", db=db, device=self.device)
        if self.critic and loaded.critic is None:
            raise UsageError(
                f"--critic: the checkpoint {self.checkpoint} holds no goal critic (the prover trainer publishes "
                "one with prover_trainer.critic=true once it has trained it); leave --critic out"
            )
        policy = policy_from_model(loaded, device=self.device)
        critic = loaded.critic if self.critic is not False else None
        logger.info("loaded prover policy from %s (%d parameters, formats %s, on %s, %s)", self.checkpoint,
                    policy.model.num_parameters(), ",".join(policy.formats), policy.device,
                    "with its goal critic" if critic is not None else "no goal critic")  # fmt: skip
        return policy, critic

    def check(self, db: Database) -> None:
        """Read the checkpoint here: a bad one fails with its message (not in a worker, nor unnoticed)."""
        if self.checkpoint is not None:
            from core.models.checkpoint import read_model  # only here: it imports torch

            loaded = read_model(self.checkpoint, kind="prover", db=db)
            if self.critic and loaded.critic is None:
                raise UsageError(f"--critic: the checkpoint {self.checkpoint} holds no goal critic; leave --critic out")


# --- searching ------------------------------------------------------------------------------------


def _search(
    db: Database,
    theorems: Sequence[Assertion],
    spec: _PolicySpec,
    settings: SearchSettings,
    forbidden: set[str],
    workers: int,
    batch: int,
    htps: HtpsSettings | None = None,
) -> list[SearchResult]:
    if workers > 1 or not theorems:
        spec.check(db)
    if not theorems:
        return []
    width = max(len(t.label) for t in theorems)
    progress = ProgressLog(len(theorems), lambda result: _print_line(result, width))
    if workers == 1:
        grammar = Grammar(db)
        policy, critic = spec.build(db, grammar)
        return prove_theorems(db, theorems, policy, settings, forbidden=forbidden, grammar=grammar, batch=batch,
                              on_result=progress, htps=htps, critic=critic)  # fmt: skip
    return _search_in_processes(theorems, spec, settings, forbidden, workers, batch, progress, htps)


def _print_line(result: SearchResult, width: int) -> None:
    outcome = "proved" if result.proved else f"failed ({result.stop_reason})"
    size = f"  size {result.proof_size}" if result.proved else ""
    print(
        f"{result.label:<{width}}  {outcome:<22} {result.expansions:>6} expansions  {result.time_s:8.2f} s{size}",
        flush=True,
    )


def _search_in_processes(
    theorems: Sequence[Assertion],
    spec: _PolicySpec,
    settings: SearchSettings,
    forbidden: set[str],
    workers: int,
    batch: int,
    on_result: Callable[[SearchResult], None],
    htps: HtpsSettings | None = None,
) -> list[SearchResult]:
    labels = [t.label for t in theorems]
    size = max(1, min(batch, math.ceil(len(labels) / (2 * workers))))
    chunks = [labels[i : i + size] for i in range(0, len(labels), size)]
    found: dict[str, SearchResult] = {}
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_worker_start, initargs=(spec, logging.getLogger().level)
    ) as pool:
        htps_dict = dataclasses.asdict(htps) if htps is not None else None
        futures = [
            pool.submit(_worker_prove, chunk, settings.to_dict(), sorted(forbidden), batch, htps_dict)
            for chunk in chunks
        ]
        for future in concurrent.futures.as_completed(futures):
            for record in future.result():
                result = SearchResult.from_json(record)
                found[result.label] = result
                on_result(result)
    return [found[label] for label in labels]


_WORKER: dict[str, Any] = {}


def _worker_start(spec: _PolicySpec, level: int) -> None:
    logging.basicConfig(level=max(level, logging.WARNING), format="%(levelname)s %(name)s: %(message)s")
    db = read_database(spec.database)
    grammar = Grammar(db)
    policy, critic = spec.build(db, grammar)
    _WORKER.update(db=db, grammar=grammar, kernel=Kernel(db), policy=policy, critic=critic)


def _worker_prove(
    labels: list[str], settings: dict[str, Any], forbidden: list[str], batch: int, htps: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    db: Database = _WORKER["db"]
    theorems = [db.assertion(label) for label in labels]
    results = prove_theorems(
        db,
        theorems,
        _WORKER["policy"],
        SearchSettings.from_dict(settings),
        forbidden=forbidden,
        grammar=_WORKER["grammar"],
        kernel=_WORKER["kernel"],
        batch=batch,
        htps=HtpsSettings(**htps) if htps is not None else None,
        critic=_WORKER["critic"],
    )
    return [r.to_json() for r in results]


# --- output ---------------------------------------------------------------------------------------


def _compressed_proof(
    db: Database, grammar: Grammar, kernel: Kernel, theorem: Assertion, proof: ProofTree
) -> list[str] | None:
    """The found proof in compressed form, checked again by the kernel (``None``, logged, if it fails)."""
    try:
        check_tree(db, grammar, theorem, proof, kernel)
        tokens = proof_tokens(db, grammar, theorem, proof, compressed=True)
        kernel.verify(theorem.with_proof(tokens))
    except MetamathError as error:
        logger.error("BUG: the proof found for %s does not verify, it is not written: %s", theorem.label, error)
        return None
    return tokens


def _write_json(path: str, data: dict[str, Any]) -> None:
    write_text(path, jsonlib.dumps(data, indent=1) + "\n")
    logger.info("wrote %s", path)


if __name__ == "__main__":
    run_cli(prove)
