"""The replicated configuration database (the hive, in SQLite) and the quorum log."""
