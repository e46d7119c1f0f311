"""The hub's MQTT connection: the paho client settings (``client``) and the
transport process that runs it apart from the hub (``transport``, and its
hub-side ``transport_proxy``). Used by ingest and by the console, which sends
commands through it."""
