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

from core.models.training import train_loop
from core.storage import StreamReader
from jobs import _trainer, prover_trainer
from jobs._role import Runtime
from jobs._version_zero import prover_formats


def weights_digest(job: _trainer.TrainerJob) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(_trainer.training(job).model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def main(root: str, rank: int, steps: int) -> None:
    rt = Runtime.start("prover_trainer", root, rank, 5.0)
    config = rt.config
    formats = prover_formats(config.prover_trainer.examples, config.prover_actor.search.prover)
    taken: list[list[object]] = []

    job = _trainer.new_job(rt, "prover", config.prover_trainer, config.prover_model, formats)
    original_absorb = _trainer.absorb

    def recording_absorb(
        job: _trainer.TrainerJob,
        rules: _trainer.Rules,
        stream: str,
        position: tuple[int, int],
        record: dict,
        *,
        new: bool = True,
    ) -> int:
        if new and job.group.owns(stream, *position):
            taken.append([stream, *position])
        return original_absorb(job, rules, stream, position, record, new=new)

    _trainer.absorb = recording_absorb  # type: ignore[assignment]  # a process of its own: nothing to restore
    cursor = _trainer.start(job, prover_trainer.RULES)
    reader = StreamReader(rt.root, ["prover-actor-00"], cursor)
    batches = _trainer.stream_batches(job, prover_trainer.RULES, reader, steps)
    train_loop(_trainer.training(job), batches, after_step=lambda result: _trainer.record_step(job, result))
    status = _trainer.finish(job, reader)
    print(
        json.dumps(
            {
                "status": status,
                "digest": weights_digest(job),
                "records_in": job.records_in,
                "taken": taken,
                "step": _trainer.training(job).steps,
                "device": str(job.rt.device),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
