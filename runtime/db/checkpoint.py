"""Checkpoint files of the quorum log directory, and atomic file replacement.

A checkpoint is a hive snapshot (:mod:`wolfpack.runtime.db.snapshot`) saved
as ``checkpoint-<seq>.hive`` in the quorum log directory, ``<seq>`` being the
hive's ``last_seq`` (20 digits, so names sort by number).  Like MSCS
(``chkNNN.tmp``, KB172951) only the newest checkpoint is kept once the log
has been compacted behind it.

Durability.  :func:`write_atomic` writes ``<name>.tmp``, fsyncs it, renames it
over ``<name>`` and fsyncs the directory: after it returns the new file is
durable, and a crash at any point leaves either the old file or the new one,
never a mix (a leftover ``.tmp`` is removed the next time the log opens).
With ``durable=False`` (tests, simulator) the fsyncs are skipped.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from wolfpack.errors import DatabaseError
from wolfpack.runtime.db.snapshot import CorruptSnapshot, HiveContent, decode_snapshot

CHECKPOINT_PATTERN = re.compile(r"checkpoint-(\d{20})\.hive")
TMP_SUFFIX = ".tmp"


def checkpoint_path(directory: Path, seq: int) -> Path:
    """Where the checkpoint taken at ``seq`` lives."""
    return directory / f"checkpoint-{seq:020d}.hive"


def list_checkpoints(directory: Path) -> list[int]:
    """The sequence numbers of the checkpoints in ``directory``, oldest first."""
    found = (CHECKPOINT_PATTERN.fullmatch(entry.name) for entry in directory.iterdir())
    return sorted(int(match.group(1)) for match in found if match)


def fsync_dir(directory: Path) -> None:
    """Make the directory's entries (created, renamed, removed files) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically (temporary file, fsync, rename, fsync of the directory)."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


def write_checkpoint(directory: Path, seq: int, snapshot: bytes, *, durable: bool = True) -> Path:
    """Save a hive snapshot taken at ``seq`` as a checkpoint file, atomically."""
    path = checkpoint_path(directory, seq)
    write_atomic(path, snapshot, durable=durable)
    return path


def read_checkpoint(directory: Path, seq: int) -> tuple[bytes, HiveContent]:
    """Read and verify the checkpoint taken at ``seq``: its bytes and decoded content."""
    path = checkpoint_path(directory, seq)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DatabaseError(f"cannot read the checkpoint {path}: {error}") from None
    try:
        content = decode_snapshot(data)
    except CorruptSnapshot as error:
        raise DatabaseError(
            f"the checkpoint {path} is corrupt ({error}); the quorum log behind it was compacted, so the "
            "database cannot be rebuilt from this directory: receive it from a sponsor or restore a backup"
        ) from None
    if content.last_seq != seq:
        raise DatabaseError(
            f"the checkpoint {path} holds update {content.last_seq}, not {seq} as its name says; "
            "it was renamed or copied by hand: put back the right file or receive the database from a sponsor"
        )
    return data, content


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete ``*.tmp`` files left by a crash during :func:`write_atomic`; return what was removed."""
    removed = [entry for entry in directory.iterdir() if entry.name.endswith(TMP_SUFFIX)]
    for entry in removed:
        entry.unlink()
    return removed
