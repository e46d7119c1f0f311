"""The hub's end-to-end receipts (protocol/receipts.py): after a commit, tell
each device which of its kept messages ("q" numbers) this worker has now
committed, so the device can delete them.

A receipt is the only thing that lets a device forget a message, so it is
sent only for what this worker's own commit made final: stored, a
duplicate of something stored, or rejected (a rejected message never becomes
valid by being sent again; without a receipt the device would re-send it for
ever). A worker knows nothing of the other workers' commits and does not
need to: each receipt is true on its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from hub.core.inbound import Accepted, Inbound, Rejected
from protocol.codec import encode, seq_of
from protocol.errors import ProtocolError
from protocol.qos import DELIVERY
from protocol.receipts import receipts_for
from protocol.topics import Channel, parse_topic, receipt_topic

RECEIPT_QOS = DELIVERY[Channel.RECEIPT].qos


def committed_seqs(batch: Sequence[Inbound], verdicts: Sequence[Accepted | Rejected]) -> dict[str, list[int]]:
    """Device → the "q" numbers a committed batch settles. Messages without
    "q" (older devices, heartbeats, presence) are left to the PUBACK alone."""
    out: dict[str, list[int]] = defaultdict(list)
    for msg, verdict in zip(batch, verdicts, strict=True):
        if isinstance(verdict, Accepted):
            seq = getattr(verdict.message, "seq", None)
            if seq is not None:
                out[verdict.device.device_id].append(seq)
            continue
        # Rejections are rare: parsing the topic and payload again costs nothing that matters.
        try:
            topic = parse_topic(msg.topic)
        except ProtocolError:
            continue  # no device to tell
        seq = seq_of(topic.channel, msg.payload)
        if topic.device is not None and seq is not None:
            out[topic.device].append(seq)
    return out


def receipt_publications(seqs: dict[str, list[int]]) -> list[tuple[str, bytes, int]]:
    """(topic, payload, qos): one receipt per device, coalesced into ranges."""
    return [
        (receipt_topic(device), encode(r), RECEIPT_QOS)
        for device, numbers in seqs.items()
        for r in receipts_for(numbers)
    ]
