"""Datagram classification (RFC 7983; RTP vs RTCP as RFC 5761 says): ``cffi_build/fast.h``.
"""

from __future__ import annotations

from enum import IntEnum

from worker._fast._lib import Buffer, ffi, lib


class Kind(IntEnum):
    """What a datagram is, by RFC 7983 demultiplexing."""

    OTHER = lib.MW_KIND_OTHER
    STUN = lib.MW_KIND_STUN
    DTLS = lib.MW_KIND_DTLS
    RTP = lib.MW_KIND_RTP
    RTCP = lib.MW_KIND_RTCP


_KINDS: tuple[Kind, ...] = tuple(sorted(Kind))


def classify(data: Buffer) -> Kind:
    """Classify one datagram (STUN, DTLS, RTP, RTCP or other).

    For the control plane and tests: a receive batch is classified in one C call by
    ``RecvBatch.classify``."""
    code: int = lib.mw_classify(data if type(data) is bytes else ffi.from_buffer(data), len(data))
    return _KINDS[code]


