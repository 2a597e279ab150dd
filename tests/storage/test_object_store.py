"""Object-store behaviour on a real S3 server (the local one of the ``s3_bucket`` fixture): publishing is a
conditional write, so of two publishers racing on one checkpoint version or one shard exactly one wins and the
other gets the documented error with nothing overwritten; and a job sees what other jobs published (no stale
listing kept by s3fs). The rest of the protocol suite runs on ``s3://`` through ``root_url``."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import fsspec
import pytest
import torch

from core.errors import CheckpointConflictError, StreamConflictError
from core.storage import CheckpointStore, ExperimentRoot, ShardWriter, read_shard, stream_bounds
from core.storage.backend import FsspecBackend

from .helpers import CONFIG

RACES = 5


@pytest.fixture
def s3_url(s3_bucket: str) -> str:
    return f"{s3_bucket}/{uuid.uuid4().hex}/exp"


def another_job(url: str) -> ExperimentRoot:
    """The root as a job in another process opens it: its own S3 client, sharing no state with this one."""
    root = ExperimentRoot.open(url)
    fs = fsspec.filesystem("s3", skip_instance_cache=True, use_listings_cache=False)
    root.backend = FsspecBackend(fs, url.removeprefix("s3://"))
    return root


def race(*contenders: Callable[[], Any]) -> list[Any]:
    """Run the contenders at once on threads (released together); each one's result or raised error."""
    start = threading.Barrier(len(contenders))
    outcomes: list[Any] = [None] * len(contenders)

    def run(i: int) -> None:
        start.wait()
        try:
            outcomes[i] = contenders[i]()
        except Exception as error:  # noqa: BLE001 - the outcome under test: which contender raised what
            outcomes[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(contenders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def weights(value: float) -> dict[str, torch.Tensor]:
    return {"layer.weight": torch.full((2, 3), value)}


def test_the_server_refuses_a_second_exclusive_create(s3_url: str) -> None:
    """The store itself, below our code: the second ``"xb"`` of a name fails and the first object stays."""
    fs = fsspec.filesystem("s3")
    path = s3_url.removeprefix("s3://") + "/object"
    with fs.open(path, "xb") as f:
        f.write(b"first")
    with pytest.raises(FileExistsError), fs.open(path, "xb") as f:
        f.write(b"second")
    assert fs.cat_file(path) == b"first"


def test_two_trainers_racing_on_a_version_one_wins_and_nothing_is_overwritten(s3_url: str) -> None:
    ExperimentRoot.create_or_open(s3_url, CONFIG)
    for version in range(RACES):
        stores = [CheckpointStore(another_job(s3_url), "prover") for _ in range(2)]
        # each with a stale view of the versions: both publish `version`, as two trainers of one model would
        outcomes = race(*(partial(s._publish_as, version, weights(i), {"by": i}) for i, s in enumerate(stores)))
        errors = [o for o in outcomes if isinstance(o, Exception)]
        assert len(errors) == 1 and isinstance(errors[0], CheckpointConflictError), outcomes
        assert f"prover: version {version} already exists" in str(errors[0])
        winner = next(i for i, o in enumerate(outcomes) if not isinstance(o, Exception))
        tensors, info = CheckpointStore(ExperimentRoot.open(s3_url), "prover").load(version)
        assert info.meta == {"by": winner} and torch.equal(tensors["layer.weight"], weights(winner)["layer.weight"])
    names = ExperimentRoot.open(s3_url).backend.listdir("checkpoints/prover")
    assert len([n for n in names if n.endswith(".safetensors")]) == RACES  # the losers' weights are removed


def test_two_writers_racing_on_a_shard_one_wins_and_the_other_stops(s3_url: str) -> None:
    ExperimentRoot.create_or_open(s3_url, CONFIG)
    writers = [ShardWriter(another_job(s3_url), "gen-0", max_records=1, max_age_s=60) for _ in range(2)]
    outcomes = race(*(partial(w.append, {"writer": i}) for i, w in enumerate(writers)))
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], StreamConflictError), outcomes
    winner = next(i for i, o in enumerate(outcomes) if not isinstance(o, Exception))
    root = ExperimentRoot.open(s3_url)
    assert stream_bounds(root, "gen-0") == (0, 1)
    assert read_shard(root, "gen-0", 0)[1] == [{"writer": winner}]


def test_a_job_sees_what_another_job_published_after_it_looked(s3_url: str) -> None:
    """s3fs keeps listings by default: a job that listed a folder must still see files published since."""
    root = ExperimentRoot.create_or_open(s3_url, CONFIG)
    reader = CheckpointStore(root, "prover")
    reader.publish(weights(0.0), {"by": "reader"})
    before = set(root.backend.listdir("checkpoints/prover"))
    assert reader.versions() == [0]
    CheckpointStore(another_job(s3_url), "prover").publish(weights(1.0), {"by": "other"})
    new = set(root.backend.listdir("checkpoints/prover")) - before
    assert reader.versions() == [0, 1] and len(new) == 2, new  # the weights and the sidecar of version 1
    assert all(root.backend.exists(f"checkpoints/prover/{name}") for name in new)
    assert reader.latest().meta == {"by": "other"}


def test_an_empty_payload_never_overwrites_either(s3_url: str) -> None:
    """s3fs commits an empty ``"xb"`` file without its condition: the backend publishes it conditionally."""
    backend = ExperimentRoot.create_or_open(s3_url, CONFIG).backend
    backend.create("quarantine/full", b"precious")
    with pytest.raises(FileExistsError):
        backend.create("quarantine/full", b"")
    assert backend.read("quarantine/full") == b"precious"
    assert backend.create("quarantine/empty", b"") == 0 and backend.read("quarantine/empty") == b""  # its twin
    with pytest.raises(FileExistsError):
        backend.create("quarantine/empty", b"")
