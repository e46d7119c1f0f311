"""Serving the TUF repository to devices (issue 17, docs/ota.md section 4): an
HTTPS server with client certificates checked against the county CA and the
registry, HTTP Range for resumable downloads on metered links, bytes counted
per device, and the online timestamp re-signed on a timer."""
