"""The thin shell that runs the machines on lab nodes (daemon, transport,
heartbeats, monitors).  Empty until the runtime issue lands: nothing here yet
touches sockets, disks or processes."""
