"""Retention of personal data by class (issue 21, docs/retention.md).

- ``prune``: one pass over events, snapshots, health history and the audit
  logs, in batches of ``retention.batch`` rows, one short transaction each,
  with ``retention.pause_s`` between them; ``dry_run`` walks the same batches
  without deleting.
- ``job``: the hourly pass as a hub Extension (hub/periodic.py), with its
  counts on /metrics and in the log.
- ``cli``: ``xl-hub retention run [--dry-run]``.

Clips are a class of their own with their own job (hub/clips/retention.py);
the CLI shows and runs them beside the others. The room sits above the
console because the console's audit table is one of the classes it prunes.
"""
