"""The thin shell that runs the machines: the deterministic simulator
(``runtime.sim``) and, on lab nodes, heartbeats, transport, the database and
resource monitors.  Only this package and ``hw`` touch sockets, disks and
processes."""
