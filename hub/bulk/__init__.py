"""Bulk operations on a selection of devices (issue 21): jobs and their per-device results."""
