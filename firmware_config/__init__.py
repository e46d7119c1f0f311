"""Templates that land on the Pi (systemd unit and drop-ins, config.txt
fragment, first-boot script, agent.yaml) or on the hub (Mosquitto config).

They are plain text with ``@{name}`` placeholders, rendered by
``provisioning.templates``; ``$`` is left alone so shell and systemd syntax
need no escaping.
"""
