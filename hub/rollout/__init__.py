"""Rollouts of an agent release to the fleet, cohort by cohort (issue 17, docs/ota.md section 4).

``create`` (hub.rollout.store) resolves each cohort's devices once, when the
rollout is made, so what an operator approved is what runs. ``RolloutEngine``
(hub.rollout.engine) is then one ``tick`` at a time: it reads each device's
version and update state from what ingest stored, advances cohorts by their
thresholds, halts past the failure threshold, and sends ``update`` commands
inside the maintenance window. Every step is a row of ``rollout_audit``.
"""
