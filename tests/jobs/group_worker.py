"""One rank of a data-parallel prover trainer group, run as a process by test_group.py.

    python group_worker.py ROOT RANK STEPS

Runs the prover trainer of the experiment at ROOT as RANK (MASTER_ADDR and MASTER_PORT come from the
environment) for STEPS steps, then prints one JSON line: a digest of the weights the rank ends with, the
records it took, the positions (stream, shard, index) of the records it took, and its trainer's step.
"""

from __future__ import annotations

import hashlib
import json
import sys

from jobs._role import Runtime
from jobs._trainer import prover_formats
from jobs.prover_trainer import ProverTrainer


class RecordingTrainer(ProverTrainer):
    """The prover trainer, noting the position of every record it takes as its own."""

    taken: list[list[object]]

    def absorb(self, stream: str, position: tuple[int, int], record: dict, *, new: bool = True) -> int:
        if new and self.group.owns(stream, *position):
            self.taken.append([stream, *position])
        return super().absorb(stream, position, record, new=new)


def weights_digest(trainer: ProverTrainer) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(trainer.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def main(root: str, rank: int, steps: int) -> None:
    rt = Runtime.start("prover_trainer", root, rank, 5.0)
    config = rt.config
    formats = prover_formats(config.prover_trainer.examples, config.prover_actor.search.prover)
    trainer = RecordingTrainer(rt, config.prover_trainer, config.prover_model, formats, ["prover-actor-00"])
    trainer.taken = []
    status = trainer.run(steps)
    print(json.dumps({"status": status, "digest": weights_digest(trainer), "records_in": trainer.records_in,
                      "taken": trainer.taken, "step": trainer.trainer.steps, "device": str(trainer.device)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
