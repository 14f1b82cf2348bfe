"""Benchmark SRTP protect and unprotect: libsrtp from the C batch vs pylibsrtp's API (pyperf).

Usage::

    python -m perf.bm_srtp            # full run
    python -m perf.bm_srtp --fast     # quick run
    python -m perf.bm_srtp --fast -o srtp.json   # keep the results

Every pyperf option works (``--help``). Both sides run the same libsrtp (the one pylibsrtp 1.0.0
bundles, 2.7.0) with the same keys on the same packets: 64 RTP packets of 1200 bytes (a 12-byte
header and 1188 bytes of seeded payload, one SSRC, consecutive sequence numbers). Times are
**per packet** (pyperf's ``inner_loops`` divides by 64). Pairs (``_c`` / ``_py``), for
``aes_cm_80`` (AES_CM_128_HMAC_SHA1_80) and ``gcm_128`` (AEAD_AES_128_GCM):

- ``srtp_protect_<profile>``: :meth:`worker._fast.SrtpBatch.protect` of the 64 packets in place
  in their pool slots, one C call / 64 ``pylibsrtp.Session.protect(bytes)`` calls (each copies
  the packet in and out and returns new bytes).
- ``srtp_unprotect_<profile>``: the same for unprotect, on packets protected beforehand.
- ``srtp_protect_fanout_<profile>_c``: one batch of 64 where each packet has its own session
  (8 consumers, 8 packets each: :meth:`SrtpBatch.protect` with per-packet sessions).

Outside the timer, before each batch: the slots get fresh copies of the plain packets with new
sequence numbers (protect), or new packets protected by a sender session (unprotect), so every
timed call does the same work as on a live stream. The script checks once that the C batch and
pylibsrtp give the same bytes.
"""

from __future__ import annotations

import random
import struct
import sys
from collections.abc import Callable
from time import perf_counter
from typing import Final

import pylibsrtp
import pyperf

from worker import _fast
from worker._fast import SrtpBatch, SrtpContext, SrtpProfile

__all__ = ["BATCH", "PACKET_BYTES", "SEED", "Rig", "benchmark_names", "main"]

SEED: Final = 20240612
BATCH: Final = 64
PACKET_BYTES: Final = 1200
SLOT_BYTES: Final = 1536
CONSUMERS: Final = 8
SSRC: Final = 0x1234ABCD
PROFILES: Final = {"aes_cm_80": SrtpProfile.AES128_CM_SHA1_80,
                   "gcm_128": SrtpProfile.AEAD_AES_128_GCM}


def _reference(profile: SrtpProfile, key: bytes, inbound: bool) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(
        key=key, srtp_profile=int(profile),
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND if inbound
        else pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    policy.allow_repeat_tx = not inbound
    policy.window_size = 1024
    return pylibsrtp.Session(policy)


class Rig:
    """Sessions, a slab of 64 slots and the packets for one profile."""

    def __init__(self, profile: SrtpProfile, seed: int = SEED) -> None:
        rng = random.Random(f"{seed}-{profile.name}")
        self.profile = profile
        self.key = rng.randbytes(profile.master_key_bytes + profile.master_salt_bytes)
        self.payloads = [rng.randbytes(PACKET_BYTES - 12) for _ in range(BATCH)]
        self.seq = 0
        self.slab = bytearray(SLOT_BYTES * BATCH)
        self.batch = SrtpBatch(self.slab, BATCH)
        for i in range(BATCH):
            self.batch.set(i, i * SLOT_BYTES, PACKET_BYTES, SLOT_BYTES)
        self.out_ctx = SrtpContext.outbound(profile, self.key)
        self.in_ctx = SrtpContext.inbound(profile, self.key)
        self.out_py = _reference(profile, self.key, inbound=False)
        self.in_py = _reference(profile, self.key, inbound=True)
        self.sender = _reference(profile, self.key, inbound=False)  # makes unprotect's input
        self.consumers = [SrtpContext.outbound(profile, rng.randbytes(len(self.key)))
                          for _ in range(CONSUMERS)]

    def plain(self) -> list[bytes]:
        """The next 64 RTP packets (untimed)."""
        packets = []
        for payload in self.payloads:
            self.seq += 1
            header = struct.pack("!BBHII", 0x80, 96, self.seq & 0xFFFF,
                                 (self.seq * 3000) & 0xFFFFFFFF, SSRC)
            packets.append(header + payload)
        return packets

    def load(self, packets: list[bytes]) -> None:
        """Put packets in the slots and reset their lengths (untimed)."""
        for i, packet in enumerate(packets):
            start = i * SLOT_BYTES
            self.slab[start : start + len(packet)] = packet
            self.batch.lengths[i] = len(packet)

    def check(self) -> None:
        """The C batch and pylibsrtp agree, both ways (once, before timing)."""
        packets = self.plain()
        self.load(packets)
        if self.batch.protect(BATCH, SrtpContext.outbound(self.profile, self.key)) != BATCH:
            raise AssertionError("the C batch did not protect every packet")
        reference = _reference(self.profile, self.key, inbound=False)
        protected = [reference.protect(p) for p in packets]
        if [bytes(self.batch.view(i)) for i in range(BATCH)] != protected:
            raise AssertionError("the C batch and pylibsrtp disagree")
        if self.batch.unprotect(BATCH, SrtpContext.inbound(self.profile, self.key)) != BATCH or \
                [bytes(self.batch.view(i)) for i in range(BATCH)] != packets:
            raise AssertionError("the C batch did not unprotect pylibsrtp's packets")


# -- timed functions (pyperf calls them with the number of loops) ---------------------------


def time_protect_c(loops: int, rig: Rig) -> float:
    protect, ctx = rig.batch.protect, rig.out_ctx
    total = 0.0
    for _ in range(loops):
        rig.load(rig.plain())
        t0 = perf_counter()
        done = protect(BATCH, ctx)
        total += perf_counter() - t0
        if done != BATCH:
            raise AssertionError(f"protected {done} of {BATCH}")
    return total


def time_protect_py(loops: int, rig: Rig) -> float:
    protect = rig.out_py.protect
    total = 0.0
    for _ in range(loops):
        packets = rig.plain()
        t0 = perf_counter()
        for packet in packets:
            protect(packet)
        total += perf_counter() - t0
    return total


def time_unprotect_c(loops: int, rig: Rig) -> float:
    unprotect, ctx, sender = rig.batch.unprotect, rig.in_ctx, rig.sender.protect
    total = 0.0
    for _ in range(loops):
        rig.load([sender(p) for p in rig.plain()])
        t0 = perf_counter()
        done = unprotect(BATCH, ctx)
        total += perf_counter() - t0
        if done != BATCH:
            raise AssertionError(f"unprotected {done} of {BATCH}")
    return total


def time_unprotect_py(loops: int, rig: Rig) -> float:
    unprotect, sender = rig.in_py.unprotect, rig.sender.protect
    total = 0.0
    for _ in range(loops):
        packets = [sender(p) for p in rig.plain()]
        t0 = perf_counter()
        for packet in packets:
            unprotect(packet)
        total += perf_counter() - t0
    return total


def time_protect_fanout_c(loops: int, rig: Rig) -> float:
    for i in range(BATCH):
        rig.batch.set_session(i, rig.consumers[i % CONSUMERS])
    protect = rig.batch.protect
    total = 0.0
    for _ in range(loops):
        rig.load(rig.plain())
        t0 = perf_counter()
        done = protect(BATCH)
        total += perf_counter() - t0
        if done != BATCH:
            raise AssertionError(f"protected {done} of {BATCH}")
    return total


TIMED: Final[dict[str, Callable[[int, Rig], float]]] = {
    "srtp_protect_{}_c": time_protect_c,
    "srtp_protect_{}_py": time_protect_py,
    "srtp_unprotect_{}_c": time_unprotect_c,
    "srtp_unprotect_{}_py": time_unprotect_py,
    "srtp_protect_fanout_{}_c": time_protect_fanout_c,
}


def benchmark_names() -> list[str]:
    """Every benchmark this script runs, in order."""
    return [pattern.format(name) for name in PROFILES for pattern in TIMED]


def main() -> None:
    program_args = ("-m", __spec__.name) if __spec__ is not None else (sys.argv[0],)
    runner = pyperf.Runner(program_args=program_args)
    runner.metadata["description"] = (
        f"SRTP protect/unprotect, {BATCH} x {PACKET_BYTES} B per batch, time per packet")
    runner.metadata["srtp_seed"] = str(SEED)
    runner.metadata["libsrtp"] = str(_fast.srtp_api().libsrtp_version)
    meta = {"batch_packets": str(BATCH), "packet_bytes": str(PACKET_BYTES)}
    for name, profile in PROFILES.items():
        rig = Rig(profile)
        rig.check()
        for pattern, func in TIMED.items():
            runner.bench_time_func(pattern.format(name), func, rig, inner_loops=BATCH,
                                   metadata=meta)


if __name__ == "__main__":
    main()
