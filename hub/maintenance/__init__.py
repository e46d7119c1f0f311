"""Maintenance windows and alarm snoozes (issue 21, "Operator alarms"): the ``maintenance`` room.

It sits below the health rules, which ask it whether a device's alarms are
quiet, and above the foundation only (hub/README.md, "Maintenance windows").
"""
