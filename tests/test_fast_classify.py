"""Datagram classification in C against the pure-Python reference."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.reference import classify as ref
from worker._fast import Kind, classify

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
