"""Video clips at the hub (issue 18, docs/clips.md): uploads received over the
update server's mTLS port (resumable, sha256-checked, stored once), the index,
"fetch clip" requests, the upload policy pushed to devices, and retention."""
