"""Heartbeats: a timer thread (C extension, with a pure-Python twin) that sends
and receives authenticated UDP heartbeats and signals suspicions to the loop."""
