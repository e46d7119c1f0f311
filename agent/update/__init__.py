"""Over-the-air updates of the agent (issue 17; the contract is docs/ota.md).

Device side, install to rollback: ``install`` (a verified release into
``releases/<v>/``), ``switch`` (the ``current`` link and state.json),
``commit`` (the health gate in the running agent), ``guard`` (the stdlib-only
crash-loop guard systemd runs before each start), ``layout``, ``state`` and
``versions``. Download and TUF verification: ``fetch``, ``tuf_client``,
``manifest``. Nothing here is imported by the agent at start except the gate
and what it needs, all standard library.
"""
