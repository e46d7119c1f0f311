"""``xl-provision release``: the county office's side of signed updates (issue 17, docs/ota.md).

Stable API (the hub and the tests call it; change docs/ota.md first):

- ``provisioning.release.repo``:
  ``TufDir(state_tuf_dir)`` (where the keys and the default repository live),
  ``init_repository(tuf, repo, now=None) -> Repository``,
  ``sign_targets(repo, tuf, targets_md, now=None)`` (offline key),
  and re-exported from ``xlrelease``: ``Repository``, ``RepositoryError``,
  ``refresh_snapshot``, ``refresh_timestamp``.
- ``provisioning.release.build.add_release(repo, tuf, ReleaseInput(...), now=None) -> ReleaseReport``.
- ``provisioning.release.rotate.rotate_key(repo, tuf, role, now=None) -> RotationReport``.
- ``provisioning.release.listing.releases(repo) -> list[ReleaseInfo]``.
- ``provisioning.release.deltas.make_delta(old, new) / apply_delta(old, patch)``.

The online signing (snapshot, timestamp) lives in the top-level ``xlrelease``
package so that the hub can import it without importing ``provisioning``
(which imports ``hub``).
"""
