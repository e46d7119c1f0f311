"""Receipts and the outbox number "q": ranges, the codec, and what a reader refuses."""

from __future__ import annotations

import pytest

from protocol.codec import (
    Snapshot,
    decode_ack,
    decode_event,
    decode_receipt,
    decode_snapshot,
    encode,
    encode_snapshot,
    seq_of,
    with_seq,
)
from protocol.errors import ProtocolError
from protocol.messages import Ack, Event
from protocol.receipts import MAX_RANGES, Receipt, covers, receipts_for, to_ranges

JPEG = b"\xff\xd8" + bytes(40) + b"\xff\xd9"


def test_ranges_merge_runs_and_keep_singletons() -> None:
    assert to_ranges([5, 3, 4, 9, 9, 1]) == [(1, 1), (3, 5), (9, 9)]
    assert encode(receipts_for([41, 42, 43, 50])[0]) == b'{"v":1,"q":[[41,43],50]}'
    assert covers([(3, 5)], 4) and not covers([(3, 5)], 6)


def test_many_ranges_split_into_receipts_under_the_size_limit() -> None:
    seqs = [10**15 + 2 * i for i in range(3 * MAX_RANGES + 1)]  # nothing adjacent: one range each
    receipts = receipts_for(seqs)
    assert len(receipts) == 4
    assert sorted(lo for r in receipts for lo, _ in r.ranges) == seqs
    for r in receipts:
        assert decode_receipt(encode(r)) == r  # encode refuses what is over the limit


@pytest.mark.parametrize(
    "bad",
    [
        b'{"v":1}',
        b'{"v":1,"q":[]}',
        b'{"v":1,"q":[0]}',
        b'{"v":1,"q":[[5,3]]}',
        b'{"v":1,"q":[[1,2,3]]}',
        b'{"v":1,"q":[true]}',
        b'{"v":1,"q":"1-3"}',
        b'{"v":2,"q":[1]}',
        b'{"v":1,"q":[9007199254740992]}',
    ],
)
def test_bad_receipts_are_refused(bad: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_receipt(bad)


def test_with_seq_numbers_events_acks_and_snapshots_and_seq_of_reads_it_back() -> None:
    ev = encode(Event(event_id=12884901929, kind="person", phase="start", time_ms=1764138000123, score=87))
    numbered = with_seq("event", ev, 41)
    assert numbered == ev[:-1] + b',"q":41}' and decode_event(numbered).seq == 41
    ack = encode(Ack(of="alert", ref_id="a-1", ok=True, time_ms=1764138000123))
    assert decode_ack(with_seq("ack", ack, 7)).seq == 7
    snap = encode_snapshot(Snapshot(12884901929, "start", 1764138000123, 320, 180, JPEG))
    got = decode_snapshot(with_seq("snap", snap, 8))
    assert got.seq == 8 and got.jpeg == JPEG
    assert seq_of("event", numbered) == 41 and seq_of("snap", with_seq("snap", snap, 8)) == 8
    assert seq_of("event", ev) is None and seq_of("event", b"\xff garbage") is None
    assert seq_of("health", b'{"v":1,"q":3}') is None  # heartbeats are not kept, so never receipted
    with pytest.raises(ProtocolError):
        with_seq("health", b'{"v":1,"t":1}', 3)
    assert Receipt(((1, 1),)).to_wire() == {"v": 1, "q": [1]}
