"""Wolfpack: a formally specified failover cluster service (the MSCS design).

The distribution's parts live in sibling folders of the source tree and are
installed as subpackages: ``wolfpack.spec`` (machines as data),
``wolfpack.machines`` (live machines), ``wolfpack.proofs`` (z3),
``wolfpack.runtime`` (daemon) and ``wolfpack.hw`` (SCSI).  This package
holds the command line and the exception tree.
"""

__version__ = "0.1.0"
