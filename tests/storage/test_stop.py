"""Rule P19: a stop request is one small file, replaced atomically; jobs named in it (or all) stop."""

from __future__ import annotations

import pytest

from core.errors import StorageError
from core.storage import ExperimentRoot
from core.storage.root import STOP_FILE

from .helpers import CONFIG


def test_stop_request_for_every_job_then_withdrawn(root: ExperimentRoot) -> None:
    assert root.stop_request() is None
    assert not root.stop_requested("prover-actor-00")
    request = root.request_stop("user asked")
    assert request["jobs"] is None and request["reason"] == "user asked"
    reopened = ExperimentRoot.open(root.url)  # another job sees it
    assert reopened.stop_requested("prover-actor-00") and reopened.stop_requested("evaluator-00")
    assert reopened.clear_stop()
    assert not root.stop_requested("prover-actor-00")
    assert not root.clear_stop()  # nothing left to withdraw


def test_stop_request_naming_jobs_stops_only_them(root: ExperimentRoot) -> None:
    root.request_stop("final evaluation done", jobs=["evaluator-00"])
    assert root.stop_requested("evaluator-00")
    assert not root.stop_requested("prover-actor-00")
    root.request_stop("everything", jobs=None)  # a later request replaces the earlier one
    assert root.stop_requested("prover-actor-00")


def test_bad_job_names_are_rejected(root: ExperimentRoot) -> None:
    with pytest.raises(StorageError, match="invalid job name"):
        root.request_stop("x", jobs=["../escape"])
    assert root.stop_request() is None


def test_an_unreadable_stop_request_stops_everything(root: ExperimentRoot) -> None:
    root.backend.replace(STOP_FILE, b"{not json")
    assert root.stop_requested("generator-actor-00")
    root.backend.replace(STOP_FILE, b'{"jobs": "evaluator-00"}')  # jobs must be a list
    assert root.stop_requested("generator-actor-00")


def test_the_stop_file_is_not_configuration(root_url: str) -> None:
    root = ExperimentRoot.create_or_open(root_url, CONFIG)
    root.request_stop("stop")
    assert ExperimentRoot.create_or_open(root_url, CONFIG).config == root.config
