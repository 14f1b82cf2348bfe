"""Datagram classification in C against the pure-Python reference."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.reference import classify as ref
from worker._fast import Kind, classify, ffi, lib

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", Kind.OTHER),
        (b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12), Kind.STUN),  # binding request
        (b"\x01\x01" + bytes(18), Kind.STUN),
        (b"\x00\x01\x00\x00", Kind.OTHER),  # too short for a STUN header
        (b"\x16\xfe\xfd" + bytes(10), Kind.DTLS),  # handshake record, DTLS 1.2
        (b"\x17\xfe\xfd" + bytes(30), Kind.DTLS),  # application data
        (b"\x80\x60\x00\x01" + bytes(8), Kind.RTP),  # PT 96
        (b"\x80\xe0\x00\x01" + bytes(8), Kind.RTP),  # PT 96 with marker
        (b"\x80\xc8\x00\x06" + bytes(24), Kind.RTCP),  # SR
        (b"\x81\xc9\x00\x07", Kind.RTCP),  # RR header
        (b"\x8f\xcd\x00\x02", Kind.RTCP),  # RTPFB
        (b"\x80\xdf\x00\x00", Kind.RTCP),  # 223, last of the RTCP range
        (b"\x80\xe0", Kind.OTHER),
        (b"\x80\x60\x00", Kind.OTHER),
        (b"\x10" + bytes(30), Kind.OTHER),  # ZRTP range
        (b"\x40" + bytes(30), Kind.OTHER),  # TURN channel range
        (b"\xbf" + bytes(30), Kind.RTP),  # 191: the top of RFC 7983's RTP range
        (b"\xc0" + bytes(30), Kind.OTHER),  # 192: above it
    ],
)
def test_known_datagrams(data: bytes, kind: Kind) -> None:
    assert classify(data) == kind
    assert ref.classify(data) == int(kind)


def test_fixtures_classify_by_directory() -> None:
    expected = {"rtp": Kind.RTP, "rtcp": Kind.RTCP, "stun": Kind.STUN}
    seen = 0
    for folder, kind in expected.items():
        for path in sorted((FIXTURES / folder).glob("*.bin")):
            if "malformed" in path.name:  # kept for the parsers' error paths
                continue
            data = path.read_bytes()
            assert classify(data) == kind, path.name
            assert ref.classify(data) == int(kind), path.name
            seen += 1
    if seen == 0:
        pytest.skip("no captured fixtures")


@given(st.binary(max_size=64))
def test_random_bytes_agree(data: bytes) -> None:
    assert int(classify(data)) == ref.classify(data)


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=40))
def test_every_first_two_bytes_agree(first: int, second: int, rest: bytes) -> None:
    data = bytes([first, second]) + rest
    assert int(classify(data)) == ref.classify(data)
    assert int(classify(memoryview(bytearray(data)))) == ref.classify(data)


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=16))
def test_slot_batch_agrees_with_single_calls(datagrams: list[bytes]) -> None:
    """mw_classify_slots over a slab equals classify per datagram; out-of-slab entries: OTHER."""
    slot_size = 64
    slab = bytearray(slot_size * len(datagrams))
    slots = ffi.new("uint32_t[]", len(datagrams) + 2)
    lengths = ffi.new("uint32_t[]", len(datagrams) + 2)
    kinds = ffi.new("uint8_t[]", len(datagrams) + 2)
    order = list(range(len(datagrams)))[::-1]  # slots used out of order
    for i, data in enumerate(datagrams):
        start = order[i] * slot_size
        slab[start : start + len(data)] = data
        slots[i] = order[i]
        lengths[i] = len(data)
    n = len(datagrams)
    slots[n], lengths[n] = len(datagrams), 4  # a slot past the slab
    slots[n + 1], lengths[n + 1] = 0, slot_size + 1  # longer than a slot
    lib.mw_classify_slots(ffi.from_buffer(slab), len(slab), slot_size, slots, lengths, n + 2,
                          kinds)
    assert [kinds[i] for i in range(n)] == [ref.classify(d) for d in datagrams]
    assert (kinds[n], kinds[n + 1]) == (int(Kind.OTHER), int(Kind.OTHER))
