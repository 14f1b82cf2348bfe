"""Pure-Python reference for ``cffi_build/forward.c``: the fan-out of one received batch.

The same rules as the C, on ``bytes``, for differential tests (SRTP aside: the reference gives
the plain output, which a test compares with the C's output after unprotecting it):

- packets are handled in order; a malformed one (see ``tests/reference/rtp.py``) or one longer
  than the input slot is counted ``malformed``, one whose SSRC is not a producer stream's
  ``unknown_ssrc``;
- before a packet, if fewer output slots are left than the stream has non-paused consumers, the
  batch stops (``stopped_at``; ``out_of_slots`` = the packets not handled);
- per consumer, in table order: paused → ``paused``; PT not in its map → ``dropped_pt``; longer
  than the slot (minus the 16-byte SRTP trailer room when it has a session) → ``too_big``; the
  header rewritten (SSRC, sequence number + offset, timestamp + offset, PT; marker kept), then
  the extension ids remapped when it has a map (a failure → ``rewrite_failed``); else an output.
"""

from __future__ import annotations

import struct
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.reference import rtp

SRTP_TRAILER_ROOM = 16
COUNT_NAMES = ("outputs", "stopped_at", "handled", "forwarded", "malformed", "unknown_ssrc",
               "dropped_pt", "paused", "out_of_slots", "too_big", "rewrite_failed",
               "srtp_failed", "table_errors")


@dataclass
class RefConsumerState:
    last_seq: int | None = None
    last_ts: int | None = None
    packets: int = 0
    bytes: int = 0
    dropped_pt: int = 0
    failures: int = 0
    last_error: int = 0


@dataclass
class RefOutput:
    consumer: Hashable
    packet: bytes
    dest: tuple[str, int]


@dataclass
class RefResult:
    outputs: list[RefOutput] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_NAMES, 0))


def ext_table(ext_map: Mapping[int, int]) -> bytes:
    table = bytearray(256)
    for src, dst in ext_map.items():
        table[src] = dst
    return bytes(table)


def _one(spec: Mapping[str, Any], packet: bytes, info: rtp.HeaderInfo, slot_size: int,
         state: RefConsumerState, counts: dict[str, int]) -> bytes | None:
    pt = spec["payloadTypes"].get(info.payload_type)
    if pt is None:
        state.dropped_pt += 1
        counts["dropped_pt"] += 1
        return None
    cap = slot_size - (SRTP_TRAILER_ROOM if spec.get("srtp") is not None else 0)
    if len(packet) > cap:
        state.failures += 1
        state.last_error = rtp.Reason.NO_ROOM
        counts["too_big"] += 1
        return None
    seq = (info.sequence_number + spec.get("seqOffset", 0)) & 0xFFFF
    ts = (info.timestamp + spec.get("tsOffset", 0)) & 0xFFFFFFFF
    out = bytearray(packet)
    out[1] = (packet[1] & 0x80) | pt
    struct.pack_into("!HII", out, 2, seq, ts, spec["ssrc"])
    data = bytes(out)
    ext_map = spec.get("extMap")
    if ext_map is not None and info.ext_form != rtp.ExtensionForm.NONE:
        try:
            data = rtp.ext_remap(data, cap, ext_table(ext_map))
        except rtp.RtpError as exc:
            state.failures += 1
            state.last_error = exc.reason
            counts["rewrite_failed"] += 1
            return None
    state.last_seq, state.last_ts = seq, ts
    state.packets += 1
    state.bytes += len(data)
    return data


def forward(packets: Sequence[bytes], producers: Mapping[int, Sequence[Mapping[str, Any]]],
            states: dict[Hashable, RefConsumerState], free_count: int, slot_size: int,
            in_slot_size: int = 1 << 30) -> RefResult:
    """Fan out ``packets``; ``states`` (by consumer id) is updated in place."""
    result = RefResult()
    counts = result.counts
    stopped_at = len(packets)
    for i, packet in enumerate(packets):
        try:
            if len(packet) > in_slot_size:
                raise rtp.RtpError(rtp.Reason.BAD_ARGUMENT, "longer than its slot")
            info = rtp.parse_header(packet)
        except rtp.RtpError:
            counts["malformed"] += 1
            continue
        consumers = producers.get(info.ssrc)
        if consumers is None:
            counts["unknown_ssrc"] += 1
            continue
        active = sum(1 for spec in consumers if not spec.get("paused", False))
        if active > free_count - len(result.outputs):
            stopped_at = i
            break
        counts["handled"] += 1
        for spec in consumers:
            if spec.get("paused", False):
                counts["paused"] += 1
                continue
            state = states.setdefault(spec["id"], RefConsumerState())
            data = _one(spec, packet, info, slot_size, state, counts)
            if data is not None:
                result.outputs.append(RefOutput(spec["id"], data, tuple(spec["dest"])))
    counts["stopped_at"] = stopped_at
    counts["out_of_slots"] = len(packets) - stopped_at
    counts["outputs"] = counts["forwarded"] = len(result.outputs)
    return result
