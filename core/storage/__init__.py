"""The storage and coordination protocol: the only code that touches shared files (see docs/PROTOCOL.md).

Jobs share nothing but an experiment root (a path or any fsspec URL: ``file://``, ``s3://``, ``gs://``, ...):
a frozen configuration, streams of zstd shards of JSON records with cursors for exactly-once consumption,
versioned checkpoints, and heartbeats.

    root = ExperimentRoot.create_or_open(url, config)
    with ShardWriter(root, "generator-actor-00", max_records=64, max_age_s=5.0) as w:
        w.append({"id": ...})
    reader = StreamReader(root, ["generator-actor-00"], cursor)
    for batch in reader.poll(): ...
    CheckpointStore(root, "prover").publish(model.state_dict(), {"step": step, "cursor": cursor.to_json()})
"""

from __future__ import annotations

from core.storage.backend import location_exists
from core.storage.checkpoints import (
    CheckpointInfo,
    CheckpointStore,
    load_checkpoint,
    load_checkpoint_file,
    save_checkpoint_file,
)
from core.storage.heartbeats import Heartbeat, read_heartbeats
from core.storage.root import ExperimentRoot, RootLocation, inspect_root
from core.storage.streams import (
    GROUP_SHARES_BY_RECORD,
    Cursor,
    ShardBatch,
    ShardWriter,
    StreamReader,
    clean_temporaries,
    close_gaps,
    committed_cursor,
    group_cursor,
    list_quarantined,
    low_water,
    newest_commit,
    prune_stream,
    pruned_prefix,
    read_shard,
    restore_quarantined,
    stream_bounds,
    stream_gaps,
)

__all__ = [
    "GROUP_SHARES_BY_RECORD",
    "CheckpointInfo",
    "CheckpointStore",
    "Cursor",
    "ExperimentRoot",
    "Heartbeat",
    "RootLocation",
    "ShardBatch",
    "ShardWriter",
    "StreamReader",
    "clean_temporaries",
    "close_gaps",
    "committed_cursor",
    "group_cursor",
    "inspect_root",
    "list_quarantined",
    "load_checkpoint",
    "load_checkpoint_file",
    "location_exists",
    "low_water",
    "newest_commit",
    "prune_stream",
    "pruned_prefix",
    "read_heartbeats",
    "read_shard",
    "restore_quarantined",
    "save_checkpoint_file",
    "stream_bounds",
    "stream_gaps",
]
