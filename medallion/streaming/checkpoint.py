"""What a streaming query's checkpoint says: its id, and the files a file-source batch listed.

Usage::

    from medallion.streaming.checkpoint import listed_files, query_id

    writer = f"scores:{query_id(checkpoint)}"       # stable across restarts
    listed_files(checkpoint, batch_id)              # ['/landing/events/a.jsonl', ...]
"""

from __future__ import annotations

import json
import os

from medallion.bronze import local_path


def query_id(checkpoint: str) -> str:
    """The query id Spark keeps in a checkpoint: stable across restarts, new for a new checkpoint.

    Keying exactly-once writes on it (not on the query name) means a deleted checkpoint
    starts a new txn sequence instead of silently skipping batch ids it thinks it has seen.
    """
    with open(os.path.join(checkpoint, "metadata")) as handle:
        return json.load(handle)["id"]


def listed_files(checkpoint: str, batch_id: int, source: int = 0) -> list[str]:
    """The files the file source listed for ``batch_id``, as local paths.

    Spark logs them in ``sources/<source>/<batch_id>`` (a version line, then one JSON entry a
    file), or, for every tenth batch, in ``<batch_id>.compact`` with every earlier batch's
    entries too. A file in the list that produced no row either was empty or vanished before
    it was read (``ignoreMissingFiles``): the caller tells them apart. Empty for a source that
    is not a file source, or a batch whose log is gone.
    """
    folder = os.path.join(checkpoint, "sources", str(source))
    for name in (str(batch_id), f"{batch_id}.compact"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            with open(path) as handle:
                lines = handle.read().splitlines()[1:]
            break
    else:
        return []
    files = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            return []  # not a file source's log (Kafka keeps offsets here)
        if isinstance(entry, dict) and entry.get("batchId") == batch_id and "path" in entry:
            files.append(local_path(entry["path"]))
    return files
