"""Resource monitors: separate processes that call resource types' entry points."""
