"""Benchmark the SFU fan-out batch: one C call per received batch (pyperf).

Usage::

    python -m perf.bm_forward            # full run
    python -m perf.bm_forward --fast     # quick run
    python -m perf.bm_forward --fast -o forward.json   # keep the results

Every pyperf option works (``--help``). One producer stream with 10 consumers; each batch is 64
received RTP packets of 1200 bytes (a 12-byte header with a one-byte extension block, seeded
payload) in 2,048-byte slots, fanned out into 640 free slots of a 2,048-byte output pool, each
consumer with its own SSRC, sequence-number and timestamp offsets, payload-type map and
header-extension id map. Times are **per output packet** (pyperf's ``inner_loops`` is 640):

- ``forward_plain_c``: :meth:`worker._fast.ForwardBatch.run`, plain RTP out;
- ``forward_aes_cm_80_c`` / ``forward_gcm_128_c``: the same, each consumer with its own
  outbound SRTP session (AES_CM_128_HMAC_SHA1_80 / AEAD_AES_128_GCM) protecting in the batch;
- ``forward_plain_ref``: the pure-Python reference (``tests/reference/forward.py``).

Outside the timer, before each batch, the input packets get new sequence numbers and
timestamps (so SRTP sees a live stream). The script checks once that the C and the reference
give the same bytes.
"""

from __future__ import annotations

import random
import struct
import sys
from collections.abc import Callable
from time import perf_counter
from typing import Any, Final

import pyperf

from tests.reference import forward as ref
from worker._fast import ForwardBatch, ForwardConsumer, ForwardTable, SrtpContext, SrtpProfile
from worker._fast._lib import ffi

__all__ = ["BATCH", "CONSUMERS", "PACKET_BYTES", "SEED", "Rig", "benchmark_names", "main"]

SEED: Final = 20261126
BATCH: Final = 64
CONSUMERS: Final = 10
PACKET_BYTES: Final = 1200
SLOT_BYTES: Final = 2048
SSRC: Final = 0x1234ABCD
PROFILES: Final = {"aes_cm_80": SrtpProfile.AES128_CM_SHA1_80,
                   "gcm_128": SrtpProfile.AEAD_AES_128_GCM}
_EXTENSION: Final = bytes([0xBE, 0xDE, 0, 2, 0x10, 0x55, 0x31, 1, 2, 0, 0, 0])  # ids 1 and 3


class Rig:
    """The slabs, the table and the packets of one configuration (``profile`` None: plain)."""

    def __init__(self, profile: SrtpProfile | None, seed: int = SEED) -> None:
        rng = random.Random(f"{seed}-{profile.name if profile else 'plain'}")
        self.seq = 0
        self.payloads = [rng.randbytes(PACKET_BYTES - 12 - len(_EXTENSION))
                         for _ in range(BATCH)]
        self.in_slab = bytearray(BATCH * SLOT_BYTES)
        self.out_slab = bytearray(BATCH * CONSUMERS * SLOT_BYTES)
        self.slots: Any = ffi.new("uint32_t[]", list(range(BATCH)))
        self.lengths: Any = ffi.new("uint32_t[]", [PACKET_BYTES] * BATCH)
        self.free = list(range(BATCH * CONSUMERS))
        self.consumers: list[ForwardConsumer] = []
        for n in range(CONSUMERS):
            spec: ForwardConsumer = {
                "id": n, "ssrc": 0xC0000000 + n, "payloadTypes": {96: 100 + n},
                "seqOffset": rng.randrange(0x10000), "tsOffset": rng.randrange(2**32),
                "extMap": {1: 2, 3: 4}, "dest": ("127.0.0.1", 40000 + n)}
            if profile is not None:
                key = rng.randbytes(profile.master_key_bytes + profile.master_salt_bytes)
                spec["srtp"] = SrtpContext.outbound(profile, key)
            self.consumers.append(spec)
        self.producers = {SSRC: self.consumers}
        self.table = ForwardTable(self.producers)
        self.batch = ForwardBatch(self.in_slab, SLOT_BYTES, self.out_slab, SLOT_BYTES,
                                  capacity=BATCH * CONSUMERS)

    def next_packets(self) -> list[bytes]:
        """Load the next 64 packets into the input slots (untimed)."""
        packets = []
        for i, payload in enumerate(self.payloads):
            self.seq += 1
            header = struct.pack("!BBHII", 0x90, 96, self.seq & 0xFFFF,
                                 (self.seq * 3000) & 0xFFFFFFFF, SSRC)
            packet = header + _EXTENSION + payload
            self.in_slab[i * SLOT_BYTES : i * SLOT_BYTES + PACKET_BYTES] = packet
            packets.append(packet)
        return packets

    def run(self) -> int:
        return self.batch.run(self.table, self.slots, self.lengths, BATCH, self.free)

    def check(self) -> None:
        """The C and the reference agree on the plain bytes (once, before timing)."""
        plain = Rig(None)
        packets = plain.next_packets()
        if plain.run() != BATCH * CONSUMERS:
            raise AssertionError(f"forwarded {plain.batch.result.outputs}, not {BATCH * CONSUMERS}")
        expected = ref.forward(packets, plain.producers, {}, BATCH * CONSUMERS, SLOT_BYTES)
        got = [bytes(plain.batch.view(k)) for k in range(BATCH * CONSUMERS)]
        if got != [o.packet for o in expected.outputs]:
            raise AssertionError("the C fan-out and the reference disagree")


def time_c(loops: int, rig: Rig) -> float:
    total = 0.0
    want = BATCH * CONSUMERS
    for _ in range(loops):
        rig.next_packets()
        t0 = perf_counter()
        done = rig.run()
        total += perf_counter() - t0
        if done != want:
            raise AssertionError(f"forwarded {done} of {want}: {rig.batch.counts()}")
    return total


def time_ref(loops: int, rig: Rig) -> float:
    total = 0.0
    states: dict[Any, ref.RefConsumerState] = {}
    for _ in range(loops):
        packets = rig.next_packets()
        t0 = perf_counter()
        ref.forward(packets, rig.producers, states, BATCH * CONSUMERS, SLOT_BYTES)
        total += perf_counter() - t0
    return total


CASES: Final[dict[str, tuple[SrtpProfile | None, Callable[[int, Rig], float]]]] = {
    "forward_plain_c": (None, time_c),
    "forward_aes_cm_80_c": (PROFILES["aes_cm_80"], time_c),
    "forward_gcm_128_c": (PROFILES["gcm_128"], time_c),
    "forward_plain_ref": (None, time_ref),
}


def benchmark_names() -> list[str]:
    """Every benchmark this script runs, in order."""
    return list(CASES)


def main() -> None:
    program_args = ("-m", __spec__.name) if __spec__ is not None else (sys.argv[0],)
    runner = pyperf.Runner(program_args=program_args)
    runner.metadata["description"] = (
        f"SFU fan-out, 1 producer x {CONSUMERS} consumers, {BATCH} x {PACKET_BYTES} B per "
        "batch, time per output packet")
    runner.metadata["forward_seed"] = str(SEED)
    meta = {"batch_packets": str(BATCH), "packet_bytes": str(PACKET_BYTES),
            "consumers": str(CONSUMERS)}
    Rig(None).check()
    for name, (profile, func) in CASES.items():
        runner.bench_time_func(name, func, Rig(profile), inner_loops=BATCH * CONSUMERS,
                               metadata=meta)


if __name__ == "__main__":
    main()
