"""Device config pushes and their history (issue 20, docs/zones.md): the ``configs`` room."""
