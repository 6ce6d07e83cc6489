"""Hardware layer (SCSI reservations for the shared-disk quorum).  Empty
until the hw issue lands."""
