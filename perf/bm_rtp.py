"""Benchmark RTP parse and in-place rewrite: the C through ``worker._fast`` against the pure-Python
reference ``tests.reference.rtp`` (pyperf).

Usage::

    python -m perf.bm_rtp            # full run
    python -m perf.bm_rtp --fast     # quick run
    python -m perf.bm_rtp --fast -o rtp.json   # keep the results

Every pyperf option works (``--help``). Times are **per packet**, every one including the Python
call that makes it. The packets are Chrome-like VP8 video (seeded): 1200-byte payload, one-byte
extensions abs-send-time (id 2), transport-wide-cc (3) and mid (4). Pairs (``_c`` / ``_ref``):

- ``rtp_parse_slot``: ``RtpBuffer.parse`` of a pool slot and reading SSRC, sequence number and
  payload type from its ``header`` (the per-packet path off the batch) /
  ``reference.parse_header`` and the same reads.
- ``rtp_parse_view``: ``parse_rtp`` returning the typed ``RtpHeaderView`` (control plane) /
  ``reference.parse_header``.
- ``rtp_parse_batch64``: ``RtpBatch.parse`` of 64 packets in one call, divided by 64 / 64
  ``reference.parse_header`` calls.
- ``rtp_rewrite``: ``rewrite_rtp`` (parse and rewrite SSRC, sequence number, timestamp and
  payload type in one C call) on a bytearray / ``reference.rewrite``.
- ``rtp_rewrite_slot``: ``RtpBuffer.rewrite`` of the same fields (the slot's view made once).
- ``rtp_rewrite_batch64``: ``RtpBatch.rewrite`` of 64 packets in one call / 64
  ``reference.rewrite`` calls.
- ``rtp_egress``: what a consumer's egress does to its copy of a packet: copy it into a slot,
  remap extension ids (dropping mid, so the block is rebuilt), put abs-send-time and
  transport-wide-cc / the same with the reference.
- ``rtp_rtx``: RTX encapsulation then decapsulation of a packet in place (per operation).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from time import perf_counter
from typing import Any, Final

import pyperf

from tests.reference import rtp as ref
from worker import _fast

__all__ = ["BATCH_PACKETS", "SEED", "benchmark_names", "main", "packets"]

SEED: Final = 20240612
BATCH_PACKETS: Final = 64
PAYLOAD_BYTES: Final = 1200
SLOT_BYTES: Final = 2048
ABS_SEND_TIME_ID: Final = 2
TRANSPORT_CC_ID: Final = 3
MID_ID: Final = 4


def packets(count: int = BATCH_PACKETS, seed: int = SEED) -> list[bytes]:
    """``count`` consecutive packets of one video stream, built from ``seed``."""
    rng = random.Random(seed)
    ssrc, seq, ts = rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32)
    out = []
    for i in range(count):
        packet = ref.RtpPacket(payload_type=96, marker=int(i % 8 == 7),
                               sequence_number=(seq + i) & 0xFFFF,
                               timestamp=(ts + 3000 * (i // 8)) & 0xFFFFFFFF, ssrc=ssrc,
                               payload=rng.randbytes(PAYLOAD_BYTES - rng.randrange(200)))
        packet.set_extensions([(ABS_SEND_TIME_ID, rng.randbytes(3)),
                               (TRANSPORT_CC_ID, (i & 0xFFFF).to_bytes(2, "big")),
                               (MID_ID, b"0")])
        out.append(packet.serialize())
    return out


# The consumer's negotiated ids: abs-send-time 3, transport-cc 5, mid not negotiated.
EGRESS_MAP: Final = {ABS_SEND_TIME_ID: 3, TRANSPORT_CC_ID: 5}
EGRESS_TABLE: Final = bytes(EGRESS_MAP.get(i, 0) for i in range(256))


def benchmark_names() -> list[str]:
    """Every benchmark this script runs, in order."""
    names = ["rtp_parse_slot", "rtp_parse_view", f"rtp_parse_batch{BATCH_PACKETS}",
             "rtp_rewrite", "rtp_rewrite_slot", f"rtp_rewrite_batch{BATCH_PACKETS}", "rtp_egress",
             "rtp_rtx"]
    return [f"{name}_{side}" for name in names for side in ("c", "ref")
            if not (name == "rtp_rewrite_slot" and side == "ref")]


# -- timed functions (pyperf calls them with the number of loops) ---------------------------


def parse_slot_c(loops: int, data: bytes) -> float:
    slot = bytearray(SLOT_BYTES)
    slot[: len(data)] = data
    rb = _fast.RtpBuffer(slot)
    parse, h = rb.parse, rb.header
    n = len(data)
    t0 = perf_counter()
    for _ in range(loops):
        if parse(n) == 0:
            _ = (h.ssrc, h.sequence_number, h.payload_type)
    return perf_counter() - t0


def parse_slot_ref(loops: int, data: bytes) -> float:
    parse = ref.parse_header
    t0 = perf_counter()
    for _ in range(loops):
        info = parse(data)
        _ = (info.ssrc, info.sequence_number, info.payload_type)
    return perf_counter() - t0


def parse_view_c(loops: int, data: bytes) -> float:
    parse = _fast.parse_rtp
    t0 = perf_counter()
    for _ in range(loops):
        parse(data)
    return perf_counter() - t0


def parse_view_ref(loops: int, data: bytes) -> float:
    parse = ref.parse_header
    t0 = perf_counter()
    for _ in range(loops):
        parse(data)
    return perf_counter() - t0


def _filled_batch(datas: list[bytes]) -> tuple[_fast.RtpBatch, bytearray]:
    slab = bytearray(SLOT_BYTES * len(datas))
    batch = _fast.RtpBatch(slab, capacity=len(datas))
    for i, data in enumerate(datas):
        slab[SLOT_BYTES * i : SLOT_BYTES * i + len(data)] = data
        batch.offsets[i], batch.lengths[i] = SLOT_BYTES * i, len(data)
        batch.new_ssrc[i], batch.new_seq[i], batch.new_timestamp[i] = 0x1234, i, 1000 * i
        batch.new_payload_type[i] = 101
    return batch, slab


def parse_batch_c(loops: int, datas: list[bytes]) -> float:
    batch, _slab = _filled_batch(datas)
    parse, count = batch.parse, len(datas)
    t0 = perf_counter()
    for _ in range(loops):
        parse(count)
    return perf_counter() - t0


def parse_batch_ref(loops: int, datas: list[bytes]) -> float:
    parse = ref.parse_header
    t0 = perf_counter()
    for _ in range(loops):
        for data in datas:
            parse(data)
    return perf_counter() - t0


def rewrite_c(loops: int, data: bytes) -> float:
    buf = bytearray(data)
    rewrite = _fast.rewrite_rtp
    t0 = perf_counter()
    for i in range(loops):
        rewrite(buf, ssrc=0x1234, sequence_number=i & 0xFFFF, timestamp=i, payload_type=101)
    return perf_counter() - t0


def rewrite_ref(loops: int, data: bytes) -> float:
    rewrite = ref.rewrite
    t0 = perf_counter()
    for i in range(loops):
        rewrite(data, ssrc=0x1234, sequence_number=i & 0xFFFF, timestamp=i, payload_type=101)
    return perf_counter() - t0


def rewrite_slot_c(loops: int, data: bytes) -> float:
    slot = bytearray(SLOT_BYTES)
    slot[: len(data)] = data
    rb = _fast.RtpBuffer(slot)
    rb.parse(len(data))
    rewrite = rb.rewrite
    fields = int(_fast.RtpField.SSRC | _fast.RtpField.SEQ | _fast.RtpField.TIMESTAMP
                 | _fast.RtpField.PAYLOAD_TYPE)
    t0 = perf_counter()
    for i in range(loops):
        rewrite(fields, ssrc=0x1234, sequence_number=i & 0xFFFF, timestamp=i, payload_type=101)
    return perf_counter() - t0


def rewrite_batch_c(loops: int, datas: list[bytes]) -> float:
    batch, _slab = _filled_batch(datas)
    rewrite, count = batch.rewrite, len(datas)
    fields = int(_fast.RtpField.SSRC | _fast.RtpField.SEQ | _fast.RtpField.TIMESTAMP
                 | _fast.RtpField.PAYLOAD_TYPE)
    t0 = perf_counter()
    for _ in range(loops):
        rewrite(count, fields)
    return perf_counter() - t0


def rewrite_batch_ref(loops: int, datas: list[bytes]) -> float:
    rewrite = ref.rewrite
    t0 = perf_counter()
    for _ in range(loops):
        for i, data in enumerate(datas):
            rewrite(data, ssrc=0x1234, sequence_number=i, timestamp=1000 * i, payload_type=101)
    return perf_counter() - t0


def egress_c(loops: int, data: bytes) -> float:
    slot = memoryview(bytearray(SLOT_BYTES))
    id_map = _fast.RtpExtensionIdMap(EGRESS_MAP)
    remap, put = _fast.remap_rtp_extensions, _fast.put_rtp_extension
    n = len(data)
    t0 = perf_counter()
    for i in range(loops):
        slot[:n] = data
        length = remap(slot, id_map, length=n)
        length = put(slot, 3, b"\x01\x02\x03", length=length)
        put(slot, 5, (i & 0xFFFF).to_bytes(2, "big"), length=length)
    return perf_counter() - t0


def egress_ref(loops: int, data: bytes) -> float:
    remap, put = ref.ext_remap, ref.ext_put
    t0 = perf_counter()
    for i in range(loops):
        out = remap(data, SLOT_BYTES, EGRESS_TABLE)
        out = put(out, SLOT_BYTES, 3, b"\x01\x02\x03")
        put(out, SLOT_BYTES, 5, (i & 0xFFFF).to_bytes(2, "big"))
    return perf_counter() - t0


def rtx_c(loops: int, data: bytes) -> float:
    slot = bytearray(SLOT_BYTES)
    slot[: len(data)] = data
    encapsulate, decapsulate = _fast.rtx_encapsulate, _fast.rtx_decapsulate
    n = len(data)
    t0 = perf_counter()
    for i in range(loops):
        m = encapsulate(slot, ssrc=0x5555, payload_type=97, sequence_number=i & 0xFFFF, length=n)
        decapsulate(slot, ssrc=0x1234, payload_type=96, length=m)
    return perf_counter() - t0


def rtx_ref(loops: int, data: bytes) -> float:
    encapsulate, decapsulate = ref.rtx_encapsulate, ref.rtx_decapsulate
    t0 = perf_counter()
    for i in range(loops):
        rtx = encapsulate(data, SLOT_BYTES, 0x5555, 97, i & 0xFFFF)
        decapsulate(rtx, 0x1234, 96)
    return perf_counter() - t0


def _check(datas: list[bytes]) -> None:
    """The C and the reference agree on the benchmark packets: it measures working code."""
    slot = memoryview(bytearray(SLOT_BYTES))
    for data in datas:
        slot[: len(data)] = data
        n = _fast.remap_rtp_extensions(slot, _fast.RtpExtensionIdMap(EGRESS_MAP),
                                       length=len(data))
        n = _fast.put_rtp_extension(slot, 3, b"\x01\x02\x03", length=n)
        expected = ref.ext_put(ref.ext_remap(data, SLOT_BYTES, EGRESS_TABLE), SLOT_BYTES, 3,
                               b"\x01\x02\x03")
        if bytes(slot[:n]) != expected or _fast.parse_rtp(data).ssrc != ref.parse_header(
                data).ssrc:
            raise AssertionError("the C and the reference disagree on the benchmark packets")


def main() -> None:
    program_args = ("-m", __spec__.name) if __spec__ is not None else (sys.argv[0],)
    runner = pyperf.Runner(program_args=program_args)
    runner.metadata["description"] = "RTP parse and rewrite: ns per packet, C and reference"
    runner.metadata["rtp_seed"] = str(SEED)
    datas = packets()
    _check(datas)
    one = datas[0]
    batch = BATCH_PACKETS
    timed: list[tuple[str, Callable[..., float], Any, int]] = [
        ("rtp_parse_slot_c", parse_slot_c, one, 1), ("rtp_parse_slot_ref", parse_slot_ref, one, 1),
        ("rtp_parse_view_c", parse_view_c, one, 1), ("rtp_parse_view_ref", parse_view_ref, one, 1),
        (f"rtp_parse_batch{batch}_c", parse_batch_c, datas, batch),
        (f"rtp_parse_batch{batch}_ref", parse_batch_ref, datas, batch),
        ("rtp_rewrite_c", rewrite_c, one, 1), ("rtp_rewrite_ref", rewrite_ref, one, 1),
        ("rtp_rewrite_slot_c", rewrite_slot_c, one, 1),
        (f"rtp_rewrite_batch{batch}_c", rewrite_batch_c, datas, batch),
        (f"rtp_rewrite_batch{batch}_ref", rewrite_batch_ref, datas, batch),
        ("rtp_egress_c", egress_c, one, 1), ("rtp_egress_ref", egress_ref, one, 1),
        ("rtp_rtx_c", rtx_c, one, 2), ("rtp_rtx_ref", rtx_ref, one, 2),
    ]
    assert [name for name, *_ in timed] == benchmark_names()
    meta = {"packet_bytes": str(len(one))}
    for name, func, arg, inner in timed:
        runner.bench_time_func(name, func, arg, inner_loops=inner, metadata=meta)


if __name__ == "__main__":
    main()
