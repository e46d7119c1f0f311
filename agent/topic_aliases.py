"""MQTT 5 topic aliases for one connection: each topic's 30-odd bytes travel once.

Every uplink topic is ``xl/v1/<20-digit device>/<channel>`` (31-33 bytes),
sent with every heartbeat, event and snapshot. With an alias the broker
remembers it for the connection and later publishes carry a 2-byte number
instead. Aliases live and die with the connection, so a fresh set starts at
each CONNACK, limited by the broker's Topic Alias Maximum (Mosquitto: 10).
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


class TopicAliases:
    def __init__(self) -> None:
        self._alias: dict[str, int] = {}
        self._max = 0

    def reset(self, connack_properties: object) -> None:
        """A new connection: forget every alias; the broker's CONNACK says how many it takes."""
        self._alias = {}
        self._max = int(getattr(connack_properties, "TopicAliasMaximum", 0) or 0)

    def publish(self, client: mqtt.Client, topic: str, payload: bytes, qos: int, retain: bool = False) -> Any:
        props = None
        alias = self._alias.get(topic)
        if alias is None and len(self._alias) < self._max:
            alias = self._alias[topic] = len(self._alias) + 1  # this publish carries the topic and sets it
        elif alias is not None:
            topic = ""
        if alias is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.TopicAlias = alias
        return client.publish(topic, payload, qos=qos, retain=retain, properties=props)
