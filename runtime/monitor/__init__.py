"""Resource monitors: separate processes that call resource types' entry points.

``protocol``      the JSON-lines messages between the daemon and a monitor
``shared_state``  the call record in shared memory that names the call that crashed a monitor (R5)
``process``       the monitor process itself (``python -m wolfpack.runtime.monitor``)
``client``        the daemon's asyncio handle: spawns, talks to, watches and restarts one monitor
"""
