"""``wolfpackd``: the cluster service of one lab node, over TCP, UDP heartbeats and resource monitors.

``config``      one schema, four layers (defaults < file < environment < cluster-wide values), timing checks
``catalog``     the cluster's objects in the hive, and what their updates mean to the failover manager
``store``       the hive and quorum log as GUM's database; the machines' durable fields
``node``        :class:`DaemonNode`: the machines of ``runtime/node`` on asyncio timers and the transport
``resources``   resource machines bound to resources in monitor processes
``transfer``    the database transfer of a join
``operations``  administrator requests as checked global updates
``rpc``         admin requests to another node over the transport
``admin``       the HTTP/JSON admin API
``service``     everything assembled in one task group
``trace``       the NDJSON transition log and its replay through the machines
``main``        the ``wolfpackd`` command
"""
