"""The update repository's on-disk form and the signing of its online roles (issue 17, docs/ota.md).

Neutral ground between the county office's release tooling
(``provisioning/release/``, which imports ``hub`` for the registry) and the
hub (``hub/updates/``, which re-signs timestamp and snapshot): the hub must
not import ``provisioning`` or the two packages would import each other.
Depends on python-tuf and securesystemslib only.

Stable API (other parts call it; change docs/ota.md first):

- ``xlrelease.store.Repository(path)``: a TUF repository folder
  (``metadata/``, ``targets/``). ``root()``, ``targets()``, ``snapshot()``,
  ``timestamp()`` load the newest of each role; ``write(md)`` writes one
  role's metadata atomically under its consistent-snapshot name (and
  ``metadata/root.json`` for a root); ``target_file(path, sha256)`` is where
  a target's bytes live.
- ``xlrelease.keys``: ``new_signer()``, ``write_signer(path, signer)`` (PEM,
  0600), ``load_signer(path)``, ``key_path(keys_dir, role)``
  (``<keys_dir>/<role>.pem``).
- ``xlrelease.online.refresh_timestamp(repo, online_keys_dir, expiry=ONE_DAY, now=None)``:
  a new ``timestamp.json`` for the current snapshot. Returns its version.
- ``xlrelease.online.refresh_snapshot(repo, online_keys_dir, expiry=SEVEN_DAYS, now=None)``:
  a new ``<N>.snapshot.json`` naming the newest ``<M>.targets.json`` on
  disk, then a new timestamp for it. Returns the snapshot's version.
- ``xlrelease.online.snapshot_is_behind(repo)``: whether targets metadata
  newer than the snapshot's is on disk (the office published a release).

``repo`` may be a ``Repository`` or the folder's ``Path``. Errors are
``xlrelease.store.RepositoryError`` with a message naming the file or key
at fault.
"""
