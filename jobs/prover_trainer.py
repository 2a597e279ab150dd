"""The prover trainer: learns from the proofs of the generated theorems the prover failed on.

    python -m jobs.prover_trainer --exp ROOT [--rank R] [--minutes M] [--max-steps N]

It reads the result streams of the prover actors (in a group of several trainers, every rank reads them
all and keeps the records it owns), keeps the records routed to it (by default the theorems the prover
failed), re-checks each generated proof with the kernel, and turns it into prover examples (backward
and/or forward format). Batches mix them with the database's train-split examples (``supervised_weight``).
See :mod:`jobs._trainer`.
"""

from __future__ import annotations

import logging
from core.adversarial.records import ResultRecord
from core.adversarial.topology import result_streams
from core.errors import MetamathError
from core.metamath.prooftree import ProofTree, check_tree
from core.models.examples import tree_examples
from core.models.training import Example
from jobs._cli import run_cli
from jobs._role import Runtime
from jobs._trainer import TrainerLoop, prover_formats

logger = logging.getLogger("jobs.prover_trainer")


class ProverTrainer(TrainerLoop):
    kind = "prover"
    input_record = ResultRecord

    def items(self, record: ResultRecord) -> tuple[list[Example], float] | None:
        if not record.for_prover_trainer:
            return None
        ws = self.rt.workspace
        try:
            theorem = record.generation.goal.theorem(ws)
            if theorem.label in ws.held_out_labels:
                self.rt.add("held_out_skipped")
                return None
            tree = ProofTree.from_json(record.generation.proof)
            check_tree(ws.db, ws.grammar, theorem, tree, ws.kernel)
        except MetamathError as error:
            self.rt.add("rejected_records")
            logger.warning("%s: skipping record %s: %s", self.rt.name, record.id, error)
            return None
        examples: list[Example] = []
        for fmt in self.formats:
            examples += tree_examples(self.codec, ws.db, theorem, tree, fmt)
        return examples, record.reward


def main(exp: str, rank: int = 0, minutes: float | None = None, max_steps: int | None = None) -> str:
    """Run prover trainer ``rank`` of the experiment at ``exp`` (until ``minutes`` or ``max_steps``)."""
    rt = Runtime.start("prover_trainer", exp, rank, minutes)
    config = rt.config
    section = config.prover_trainer
    streams = result_streams(config.prover_actor.count)
    formats = prover_formats(section.examples, config.prover_actor.search.prover)
    steps = max_steps if max_steps is not None else (section.max_steps or None)
    return ProverTrainer(rt, section, config.prover_model, formats, streams).run(steps)


if __name__ == "__main__":
    run_cli(main)
