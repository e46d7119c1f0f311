"""The bottom of the hub: what every room shares and none of them owns.

``inbound`` (a message as it arrives, and the verdict on it), ``directory``
(the in-memory registry cache), ``items`` (what is handed to the platform)
and ``forwarding`` (the port that hand-over goes through). Nothing here
imports another room of the hub; ``tests/test_import_graph.py`` keeps it so.
"""
