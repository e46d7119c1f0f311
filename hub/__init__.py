"""The county hub: ingest, registry, health, 十户联防 alert engine, forwarding, console."""

__version__ = "0.1.0"
