"""The replicated configuration database (the hive, in SQLite) and the quorum log.

* :mod:`.updates`: the operations of a global update, their validation and canonical encoding;
* :mod:`.hive`: :class:`Hive`, one node's database (reads for clients, writes only by global update);
* :mod:`.snapshot`: the checked snapshot format a sponsor sends and a checkpoint holds;
* :mod:`.checkpoint`: checkpoint files and atomic file replacement;
* :mod:`.log_records`: the record frame, the orphan rule and catch-up, shared by every quorum log;
* :mod:`.quorum_log`: :class:`QuorumLog`, the local quorum log with checkpoints, catch-up and the orphan rule.
"""

from wolfpack.runtime.db.hive import Hive, MissingKey, OutOfOrderUpdate
from wolfpack.runtime.db.quorum_log import CorruptLog, DivergedHive, LogRecord, QuorumLog, is_stale
from wolfpack.runtime.db.snapshot import CorruptSnapshot
from wolfpack.runtime.db.updates import InvalidOperation, validate_ops

__all__ = [
    "CorruptLog",
    "CorruptSnapshot",
    "DivergedHive",
    "Hive",
    "InvalidOperation",
    "LogRecord",
    "MissingKey",
    "OutOfOrderUpdate",
    "QuorumLog",
    "is_stale",
    "validate_ops",
]
