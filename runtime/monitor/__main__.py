"""``python -m wolfpack.runtime.monitor``: a resource monitor process (started by the daemon)."""

from wolfpack.runtime.monitor.process import main

raise SystemExit(main())
