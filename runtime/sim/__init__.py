"""A deterministic stand-in for the world the machines live in.

The simulator runs many nodes in one process over a virtual clock
(:mod:`.clock`), a simulated network with loss, delay, reordering,
duplication and partitions (:mod:`.network`), all driven by one seeded RNG:
the same seed gives the same run, byte for byte.  Nothing here touches a
socket, a file or the wall clock.
"""
