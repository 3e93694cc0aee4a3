"""Input ownership: one owner per landing file, decided atomically, bound to a batch id.

Usage::

    ledger = ClaimLedger(settings.storage.claims_path("events"))
    claim = ledger.claim("ingest-batch:events", 7, ["file:/lake/landing/events/a.jsonl"])
    claim.files          # the files batch 7 of this writer owns (a replay gets the same list)
    ledger.last("ingest-batch:events")   # the writer's newest claim: complete it after a crash
    ledger.owner("file:/lake/landing/events/a.jsonl")  # ("ingest-batch:events", 7)

The stream and the night may read the same landing zone at once. Each claim is one JSON
entry, numbered like Delta's log (``00000000000000000007.json``) and created with an
exclusive create, so two writers racing for the next number cannot both win: the loser
reads the winner's entry and claims what is left. A claim is written before any table sees
the batch, and names the batch id it belongs to, so a rerun after a crash knows exactly
which files its unfinished batch held.

Every :data:`CHECKPOINT_EVERY` entries the writer of the last one also writes a checkpoint
(``00000000000000000099.checkpoint.json``: every claim so far), so a cold start reads the
newest checkpoint and the entries after it, not the whole ledger.

The exclusive create needs a file system that has one: a local disk, NFS, or a mounted
volume (Databricks ``/Volumes`` and ``/dbfs``). Object-store URIs have no such operation
through this module; :meth:`ClaimLedger.__init__` refuses them.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from medallion.errors import MedallionError

_ENTRY = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint\.json$")

#: A checkpoint after every this many entries.
CHECKPOINT_EVERY = 100


@dataclass(frozen=True)
class Claim:
    """What one batch of one writer owns: ``files`` as Spark names them (``file:/...``)."""

    number: int
    writer: str
    batch_id: int
    files: tuple[str, ...]
    claimed_at: str


class ClaimLedger:
    """The numbered claim entries of one feed's landing zone, read incrementally."""

    def __init__(self, folder: str) -> None:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", folder) and not folder.startswith("file:"):
            raise MedallionError(
                f"the claim ledger needs a file system with exclusive create, not {folder}: "
                "set storage.claims to a local path or a mounted volume"
            )
        self.folder = folder
        self._next = 0  # the first entry number not read yet
        self._claims: list[Claim] = []
        self._owners: dict[str, Claim] = {}
        self._by_batch: dict[tuple[str, int], Claim] = {}

    # ------------------------------------------------------------------ reading

    def refresh(self) -> ClaimLedger:
        """Read the entries written since the last refresh (by any writer)."""
        if self._next == 0 and not os.path.isdir(self.folder):
            return self
        if self._next == 0:
            names = os.listdir(self.folder)
            after = self._read_checkpoint(names)
            numbers = sorted(int(m.group(1)) for name in names if (m := _ENTRY.match(name)))
            for number in numbers:
                if number > after:
                    self._read(number)
        # Later entries are probed by number, as Delta's log is: no listing per claim.
        while self._read(self._next):
            pass
        return self

    def _read(self, number: int) -> bool:
        try:
            with open(self._path(number)) as handle:
                entry = json.load(handle)
        except FileNotFoundError:
            return False
        except json.JSONDecodeError:
            time.sleep(0.01)  # being written by an exclusive create (see _create_exclusive)
            return False
        self._add(number, entry)
        return True

    def _add(self, number: int, entry: dict) -> None:
        claim = Claim(
            number, entry["writer"], int(entry["batch_id"]), tuple(entry["files"]), entry["claimed_at"]
        )
        self._claims.append(claim)
        self._by_batch.setdefault((claim.writer, claim.batch_id), claim)
        for path in claim.files:
            self._owners.setdefault(path, claim)
        self._next = max(self._next, number + 1)

    def _read_checkpoint(self, names: list[str]) -> int:
        """Load the newest readable checkpoint among ``names``; the last entry number it holds, or -1."""
        for number in sorted(
            (int(m.group(1)) for name in names if (m := _CHECKPOINT.match(name))), reverse=True
        ):
            try:
                with open(os.path.join(self.folder, f"{number:020d}.checkpoint.json")) as handle:
                    entries = json.load(handle)["entries"]
            except (OSError, ValueError, KeyError):
                continue  # a damaged checkpoint: an older one, or the entries themselves, still hold it
            for entry in entries:
                self._add(int(entry["number"]), entry)
            self._next = number + 1
            return number
        return -1

    def _write_checkpoint(self, number: int) -> None:
        """Every claim up to entry ``number``, in one file written aside and renamed into place
        (whoever writes it, its content is the same)."""
        entries = [
            {
                "number": c.number,
                "writer": c.writer,
                "batch_id": c.batch_id,
                "files": list(c.files),
                "claimed_at": c.claimed_at,
            }
            for c in self._claims
            if c.number <= number
        ]
        if len(entries) != number + 1:
            return  # this ledger has not read every entry up to it
        staging = os.path.join(self.folder, f".{number:020d}.checkpoint.{os.getpid()}.tmp")
        with open(staging, "w") as handle:
            json.dump({"entries": entries}, handle)
        os.replace(staging, os.path.join(self.folder, f"{number:020d}.checkpoint.json"))

    def _path(self, number: int) -> str:
        return os.path.join(self.folder, f"{number:020d}.json")

    def owner(self, path: str) -> tuple[str, int] | None:
        """``(writer, batch_id)`` of the claim that owns ``path``, as of the last refresh."""
        claim = self._owners.get(path)
        return None if claim is None else (claim.writer, claim.batch_id)

    def claimed(self) -> set[str]:
        """Every file some claim owns, as of the last refresh."""
        return set(self._owners)

    def last(self, writer: str) -> Claim | None:
        """The writer's claim with the highest batch id, as of the last refresh."""
        mine = [c for c in self._claims if c.writer == writer]
        return max(mine, key=lambda c: c.batch_id) if mine else None

    def batch(self, writer: str, batch_id: int) -> Claim | None:
        return self._by_batch.get((writer, batch_id))

    # ------------------------------------------------------------------ claiming

    def claim(self, writer: str, batch_id: int, files: Iterable[str]) -> Claim:
        """Claim for ``(writer, batch_id)`` those of ``files`` no other batch owns.

        A batch claims once: if ``(writer, batch_id)`` already has a claim (a replay after
        a crash), that claim is returned as it is, whatever ``files`` holds. A batch left
        with no file to own writes no entry.
        """
        if not writer or ":" not in writer:
            raise ValueError(f"writer must be '<app>:<feed>', got {writer!r}")
        wanted = list(dict.fromkeys(files))
        while True:
            self.refresh()
            existing = self._by_batch.get((writer, batch_id))
            if existing is not None:
                return existing
            own = tuple(path for path in wanted if path not in self._owners)
            claimed_at = datetime.now(UTC).isoformat()
            if not own:
                return Claim(-1, writer, batch_id, (), claimed_at)
            entry = {"writer": writer, "batch_id": batch_id, "files": list(own), "claimed_at": claimed_at}
            number = self._next
            if self._create(number, json.dumps(entry).encode()):
                self._read(number)
                if (number + 1) % CHECKPOINT_EVERY == 0:
                    self._write_checkpoint(number)
                return self._by_batch[(writer, batch_id)]
            # Another writer took this number first: read its entry and try the next one.

    def _create(self, number: int, payload: bytes) -> bool:
        os.makedirs(self.folder, exist_ok=True)
        # Written aside, then linked into place: the link fails if the name exists, and a
        # reader never sees a half-written entry.
        staging = os.path.join(self.folder, f".{number:020d}.{os.getpid()}.{id(payload)}.tmp")
        with open(staging, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(staging, self._path(number))
            return True
        except FileExistsError:
            return False
        except OSError:
            # No hard links here (some FUSE mounts): an exclusive create is still atomic;
            # a reader that finds the entry half-written reads it again later.
            return self._create_exclusive(number, payload)
        finally:
            os.unlink(staging)

    def _create_exclusive(self, number: int, payload: bytes) -> bool:
        try:
            fd = os.open(self._path(number), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        return True
