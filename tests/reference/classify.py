"""Pure-Python reference of datagram classification (RFC 7983, with RFC 5761 for RTP vs RTCP)."""

from __future__ import annotations

OTHER, STUN, DTLS, RTP, RTCP = range(5)

STUN_HEADER_BYTES = 20
DTLS_RECORD_HEADER_BYTES = 13
RTP_HEADER_BYTES = 12
RTCP_HEADER_BYTES = 4


def classify(data: bytes) -> int:
    if not data:
        return OTHER
    first = data[0]
    if first <= 3:
        return STUN if len(data) >= STUN_HEADER_BYTES else OTHER
    if 20 <= first <= 63:
        return DTLS if len(data) >= DTLS_RECORD_HEADER_BYTES else OTHER
    if 128 <= first <= 191:
        if len(data) < RTCP_HEADER_BYTES:
            return OTHER
        if 192 <= data[1] <= 223:
            return RTCP
        return RTP if len(data) >= RTP_HEADER_BYTES else OTHER
    return OTHER
