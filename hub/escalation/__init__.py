"""Escalation of unacknowledged 十户联防 alerts (issue 21, docs/escalation.md):
the chain's state and records (tables.py), the periodic job that runs due
steps (engine.py), the notification channels behind one port (channels.py),
and the forwarder sinks that deliver them durably (sinks.py)."""
