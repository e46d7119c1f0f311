"""The on-device agent: capture, motion, person detection, events, outbox, MQTT link."""

__version__ = "0.1.0"
