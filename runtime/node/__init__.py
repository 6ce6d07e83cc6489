"""One node's cluster service, shared by the simulator and the daemon.

``host``    :class:`MachineHost`: feed an event to a machine, carry out its effects (I/O left to subclasses)
``app``     :class:`NodeApp`: global-update payloads, the submit queue, groups and resources driven by the
            failover manager, hooks for devices and database transfers
``layout``  the machines a node runs, built from the specs for a cluster and its groups
"""
