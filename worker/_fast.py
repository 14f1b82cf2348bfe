"""The typed facade over the compiled hot path: the only module that imports ``worker._fastlib``.

The C behind it lives in ``cffi_build/`` (one ``.h``/``.c`` pair per area). Functions here take
Python buffers and return plain values or small result objects; the per-packet forwarding path
calls the batch functions, never a per-packet function in a loop.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from worker import _fastlib  # type: ignore[attr-defined]

ffi: Any = _fastlib.ffi
lib: Any = _fastlib.lib

Buffer = bytes | bytearray | memoryview


# ---- classify (cffi_build/fast.h) ---------------------------------------------------------


class Kind(IntEnum):
    """What a datagram is, by RFC 7983 demultiplexing."""

    OTHER = lib.MW_KIND_OTHER
    STUN = lib.MW_KIND_STUN
    DTLS = lib.MW_KIND_DTLS
    RTP = lib.MW_KIND_RTP
    RTCP = lib.MW_KIND_RTCP


def classify(data: Buffer) -> Kind:
    """Classify one datagram (STUN, DTLS, RTP, RTCP or other)."""
    return Kind(lib.mw_classify(ffi.from_buffer(data), len(data)))
