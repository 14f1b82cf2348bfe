"""The C fan-out (cffi_build/forward.c through worker._fast.forward) against the pure-Python
reference (tests/reference/forward.py).

Generated tables and batches (hypothesis): the plain outputs, their destinations, every count
and every consumer's state must be the reference's, and no byte of the output slab outside the
given free slots may change (guard bytes). With SRTP, each consumer's outputs unprotect (with
pylibsrtp inbound sessions) to the reference's plain packets.
"""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Hashable, Sequence
from typing import Any

import pylibsrtp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference import forward as ref
from tests.reference import rtp as ref_rtp
from tests.test_rtp import mutated_packets, rtp_packets
from worker import _fast
from worker._fast import srtp as srtp_module
from worker._fast._lib import ffi
from worker._fast.forward import (
    ForwardArgumentError,
    ForwardBatch,
    ForwardConsumer,
    ForwardTable,
)
from worker._fast.sockio import SendBatch, sockio_addr_to_tuple
from worker._fast.srtp import SrtpContext, SrtpProfile

GUARD = 0xA5
IN_SLOT = 1500
SSRCS = (0x11111111, 0x22222222, 0x33333333)
DESTS = (("127.0.0.1", 40000), ("127.0.0.1", 40001), ("::1", 40002))

Producers = dict[int, list[ForwardConsumer]]


# ---- the rig: slabs, batches and a run of both sides -------------------------------------------


class Rig:
    """An input slab with the packets in shuffled slots, and an output slab full of guard bytes
    of which `free` are the slots given to the C."""

    def __init__(self, packets: Sequence[bytes], free_count: int, slot_size: int,
                 seed: int = 0) -> None:
        rng = random.Random(seed)
        self.packets = list(packets)
        count = max(len(packets), 1)
        in_slots = rng.sample(range(count + 2), len(packets))
        self.in_slab = bytearray((count + 2) * IN_SLOT)
        self.slots = ffi.new("uint32_t[]", count)
        self.lengths = ffi.new("uint32_t[]", count)
        for i, (slot, packet) in enumerate(zip(in_slots, packets, strict=True)):
            self.in_slab[slot * IN_SLOT : slot * IN_SLOT + len(packet)] = packet
            self.slots[i], self.lengths[i] = slot, len(packet)
        self.slot_size = slot_size
        out_slots = free_count + 3
        self.out_slab = bytearray([GUARD]) * (out_slots * slot_size)
        self.free = rng.sample(range(out_slots), free_count)
        self.batch = ForwardBatch(self.in_slab, IN_SLOT, self.out_slab, slot_size,
                                  capacity=max(free_count, 1))

    def run(self, table: ForwardTable) -> int:
        return self.batch.run(table, self.slots, self.lengths, len(self.packets), self.free)

    def outputs(self, table: ForwardTable) -> list[tuple[bytes, tuple[str, int]]]:
        out = []
        for k in range(self.batch.result.outputs):
            assert self.batch.offsets[k] == self.free[k] * self.slot_size
            dest = table.dest_addresses[self.batch.dest_index[k]]
            assert sockio_addr_to_tuple(self.batch.dests[k]) == dest
            out.append((bytes(self.batch.view(k)), dest))
        return out

    def assert_guards(self) -> None:
        given_slots = set(self.free)
        for slot in range(len(self.out_slab) // self.slot_size):
            if slot not in given_slots:
                chunk = self.out_slab[slot * self.slot_size : (slot + 1) * self.slot_size]
                assert chunk == bytearray([GUARD]) * self.slot_size, f"slot {slot} was written"


def c_state(table: ForwardTable, consumer_id: Hashable) -> ref.RefConsumerState:
    s = table.state(consumer_id)
    return ref.RefConsumerState(s.last_seq, s.last_ts, s.packets, s.bytes, s.dropped_pt,
                                s.failures, s.last_error)


def assert_same(rig: Rig, table: ForwardTable, expected: ref.RefResult,
                states: dict[Hashable, ref.RefConsumerState], producers: Producers) -> None:
    assert rig.batch.counts() == expected.counts
    assert rig.outputs(table) == [(o.packet, o.dest) for o in expected.outputs]
    for consumers in producers.values():
        for spec in consumers:
            want = states.get(spec["id"], ref.RefConsumerState())
            got = c_state(table, spec["id"])
            if want.failures == 0:
                got.last_error = 0  # the reference does not model libsrtp codes
            assert got == want, spec["id"]
    rig.assert_guards()


# ---- strategies ---------------------------------------------------------------------------------


@st.composite
def consumers(draw: st.DrawFn, name: str) -> ForwardConsumer:
    pts = draw(st.dictionaries(st.integers(0, 127), st.integers(0, 127), max_size=3))
    if draw(st.integers(0, 3)):
        pts[100] = draw(st.integers(0, 127))
    spec: ForwardConsumer = {
        "id": name, "ssrc": draw(st.integers(0, 2**32 - 1)), "payloadTypes": pts,
        "dest": draw(st.sampled_from(DESTS)),
        "seqOffset": draw(st.integers(0, 0xFFFF)), "tsOffset": draw(st.integers(0, 2**32 - 1)),
        "paused": draw(st.integers(0, 5)) == 0}
    if draw(st.booleans()):
        spec["extMap"] = draw(st.dictionaries(st.integers(1, 255), st.integers(0, 255),
                                              max_size=8))
    return spec


@st.composite
def tables(draw: st.DrawFn) -> Producers:
    producers: Producers = {}
    n = 0
    for ssrc in draw(st.lists(st.sampled_from(SSRCS), unique=True, min_size=1, max_size=3)):
        producers[ssrc] = []
        for _ in range(draw(st.integers(0 if producers else 1, 4))):
            producers[ssrc].append(draw(consumers(f"c{n}")))
            n += 1
    return producers


@st.composite
def batches(draw: st.DrawFn, producers: Producers) -> list[bytes]:
    """Packets of the table's SSRCs (with PTs the maps know, mostly), unknown ones, malformed."""
    known_pts = sorted({pt for cs in producers.values() for c in cs for pt in c["payloadTypes"]})
    ssrcs = sorted(producers) or list(SSRCS)
    out = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            out.append(draw(st.one_of(mutated_packets(), st.binary(max_size=40))))
            continue
        packet = bytearray(draw(rtp_packets()))
        if kind == 2:
            packet[8:12] = struct.pack("!I", draw(st.sampled_from(SSRCS)))
        elif kind > 2:
            packet[8:12] = struct.pack("!I", draw(st.sampled_from(ssrcs)))
        if known_pts and kind > 3:
            pt = 100 if kind > 5 else draw(st.sampled_from(known_pts))
            packet[1] = (packet[1] & 0x80) | pt
        out.append(bytes(packet))
    return out


def run_both(producers: Producers, packets: list[bytes], free_count: int, slot_size: int,
             table: ForwardTable | None = None,
             states: dict[Hashable, ref.RefConsumerState] | None = None,
             seed: int = 0) -> tuple[Rig, ForwardTable, ref.RefResult]:
    table = table or ForwardTable(producers)
    states = {} if states is None else states
    rig = Rig(packets, free_count, slot_size, seed)
    rig.run(table)
    expected = ref.forward(packets, producers, states, free_count, slot_size, IN_SLOT)
    assert_same(rig, table, expected, states, producers)
    return rig, table, expected


# ---- differential tests -------------------------------------------------------------------------


@given(st.data())
def test_plain_fan_out_matches_reference(data: st.DataObject) -> None:
    producers = data.draw(tables())
    packets = data.draw(batches(producers))
    free_count = data.draw(st.integers(0, 40))
    slot_size = data.draw(st.sampled_from([64, 96, 128, 256, 2048]))
    run_both(producers, packets, free_count, slot_size, seed=data.draw(st.integers(0, 99)))


@given(st.data())
@settings(max_examples=50)
def test_two_batches_carry_state_and_a_rebuild_keeps_it(data: st.DataObject) -> None:
    producers = data.draw(tables())
    table = ForwardTable(producers)
    states: dict[Hashable, ref.RefConsumerState] = {}
    run_both(producers, data.draw(batches(producers)), 30, 2048, table, states)
    for consumers_ in producers.values():  # a routing change: pause one, move offsets
        for spec in consumers_[:1]:
            spec["paused"] = not spec.get("paused", False)
            spec["seqOffset"] = 7
    table.update(producers)
    run_both(producers, data.draw(batches(producers)), 30, 2048, table, states, seed=1)


def srtp_key(profile: SrtpProfile, n: int) -> bytes:
    return random.Random(f"fwd-{profile.name}-{n}").randbytes(
        profile.master_key_bytes + profile.master_salt_bytes)


@pytest.mark.parametrize("profile", [SrtpProfile.AES128_CM_SHA1_80,
                                     SrtpProfile.AEAD_AES_128_GCM])
@given(data=st.data())
@settings(max_examples=25)
def test_srtp_outputs_unprotect_to_the_reference(profile: SrtpProfile,
                                                 data: st.DataObject) -> None:
    producers = data.draw(tables())
    inbound: dict[Hashable, pylibsrtp.Session] = {}
    for n, spec in enumerate(c for cs in producers.values() for c in cs):
        if data.draw(st.booleans()):
            key = srtp_key(profile, n)
            spec["srtp"] = SrtpContext.outbound(profile, key)
            inbound[spec["id"]] = pylibsrtp.Session(pylibsrtp.Policy(
                key=key, srtp_profile=int(profile),
                ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    packets = []  # consecutive sequence numbers, as libsrtp's index estimate wants
    for n, raw in enumerate(data.draw(batches(producers))):
        packets.append(raw[:2] + struct.pack("!H", 1000 + n) + raw[4:] if len(raw) >= 4 else raw)
    table = ForwardTable(producers)
    rig = Rig(packets, 40, 256)
    rig.run(table)
    expected = ref.forward(packets, producers, {}, 40, 256, IN_SLOT)
    assert rig.batch.counts() == expected.counts
    got = rig.outputs(table)
    assert len(got) == len(expected.outputs)
    for (packet, dest), want in zip(got, expected.outputs, strict=True):
        assert dest == want.dest
        session = inbound.get(want.consumer)
        if session is None:
            assert packet == want.packet
        else:
            assert len(packet) == len(want.packet) + profile.rtp_tag_bytes
            assert session.unprotect(packet) == want.packet
    rig.assert_guards()


# ---- examples -----------------------------------------------------------------------------------


def packet(seq: int, ssrc: int = SSRCS[0], pt: int = 100, payload: bytes = b"x" * 20,
           marker: int = 0, ext: tuple[int, bytes] | None = None) -> bytes:
    return ref_rtp.RtpPacket(payload_type=pt, marker=marker, sequence_number=seq,
                             timestamp=seq * 3000, ssrc=ssrc,
                             extension_profile=ext[0] if ext else None,
                             extension_data=ext[1] if ext else b"", payload=payload).serialize()


def consumer(name: str, **extra: Any) -> ForwardConsumer:
    spec: ForwardConsumer = {"id": name, "ssrc": 0xC0000000 + int(name[1:]),
                             "payloadTypes": {100: 101}, "dest": DESTS[0]}
    spec.update(extra)  # type: ignore[typeddict-item]
    return spec


def test_rewrite_of_the_fixed_header_and_extension_ids() -> None:
    ext = (ref_rtp.ONE_BYTE_PROFILE, bytes([0x10, 0xAA, 0x21, 1, 2, 0, 0, 0]))  # ids 1, 2
    producers: Producers = {SSRCS[0]: [consumer("c1", seqOffset=0xFFFF, tsOffset=2**32 - 1,
                                                extMap={1: 5})]}
    rig, table, _ = run_both(producers, [packet(10, marker=1, ext=ext)], 4, 2048)
    out = ref_rtp.parse_header(bytes(rig.batch.view(0)))
    assert (out.ssrc, out.sequence_number, out.timestamp, out.payload_type, out.marker) == \
        (0xC0000001, 9, 29999, 101, 1)
    assert [(e.id, e.value) for e in out.elements] == [(5, b"\xaa")]  # id 2 removed
    assert table.state("c1") == _fast.forward.ConsumerState(9, 29999, 1, len(rig.batch.view(0)),
                                                            0, 0, 0)


def test_unknown_ssrc_paused_pt_drop_and_malformed_are_counted() -> None:
    producers: Producers = {SSRCS[0]: [consumer("c1"), consumer("c2", paused=True),
                                       consumer("c3", payloadTypes={111: 111})]}
    packets = [packet(1), packet(2, ssrc=0xDEAD), b"\x80\x00", packet(3, pt=111),
               b"\x40" + packet(4)[1:]]
    rig, table, _ = run_both(producers, packets, 8, 2048)
    assert rig.batch.counts() | {} == {
        "outputs": 2, "stopped_at": 5, "handled": 2, "forwarded": 2, "malformed": 2,
        "unknown_ssrc": 1, "dropped_pt": 2, "paused": 2, "out_of_slots": 0, "too_big": 0,
        "rewrite_failed": 0, "srtp_failed": 0, "table_errors": 0}
    assert table.state("c2").packets == 0 and table.state("c2").last_seq is None
    assert table.state("c1").last_seq == 1 and table.state("c3").last_seq == 3
    assert table.state("c3").dropped_pt == 1 and table.state("c1").dropped_pt == 1


def test_slots_run_out_between_packets_never_inside_one() -> None:
    producers: Producers = {SSRCS[0]: [consumer(f"c{n}") for n in range(1, 4)]}
    rig, table, _ = run_both(producers, [packet(n) for n in range(5)], 7, 256)
    counts = rig.batch.counts()
    assert (counts["outputs"], counts["stopped_at"], counts["out_of_slots"]) == (6, 2, 3)
    assert {table.state(f"c{n}").last_seq for n in range(1, 4)} == {1}


def test_too_big_for_the_slot_and_a_length_beyond_the_input_slot() -> None:
    producers: Producers = {SSRCS[0]: [consumer("c1")]}
    rig, _, _ = run_both(producers, [packet(1, payload=b"y" * 100), packet(2)], 4, 64)
    assert rig.batch.counts()["too_big"] == 1 and rig.batch.counts()["outputs"] == 1
    rig = Rig([packet(1)], 4, 256)
    rig.lengths[0] = IN_SLOT + 1
    table = ForwardTable(producers)
    assert rig.run(table) == 0 and rig.batch.counts()["malformed"] == 1


def test_routing_changes_in_place_and_unknown_consumer() -> None:
    producers: Producers = {SSRCS[0]: [consumer("c1"), consumer("c2")]}
    table = ForwardTable(producers)
    table.set_paused("c2", True)
    table.set_offsets("c1", 100, 1000)
    rig = Rig([packet(5)], 4, 256)
    assert rig.run(table) == 1
    assert table.state("c1")[:2] == (105, 16000) and table.state("c2").packets == 0
    with pytest.raises(KeyError):
        table.set_paused("nobody", True)
    with pytest.raises(ValueError, match="same id"):
        table.update({SSRCS[0]: [consumer("c1")], SSRCS[1]: [consumer("c1")]})
    with pytest.raises(ValueError, match="payload type"):
        ForwardTable({SSRCS[0]: [consumer("c1", payloadTypes={100: 200})]})


def test_bad_arguments_refuse_the_whole_batch() -> None:
    table = ForwardTable({SSRCS[0]: [consumer("c1")]})
    rig = Rig([packet(1)], 2, 256)
    rig.free[1] = 99  # outside the output slab
    with pytest.raises(ForwardArgumentError):
        rig.run(table)
    assert rig.out_slab == bytearray([GUARD]) * len(rig.out_slab)
    rig = Rig([packet(1)], 2, 256)
    rig.slots[0] = 1000  # outside the input slab: that packet only
    assert rig.run(table) == 0 and rig.batch.counts()["malformed"] == 1
    odd = ForwardBatch(bytearray(IN_SLOT), IN_SLOT, bytearray(130 * 2), 130)
    with pytest.raises(ForwardArgumentError):
        odd.run(table, rig.slots, rig.lengths, 1, [0])


def test_srtp_failure_is_counted_and_the_slot_reused() -> None:
    profile = SrtpProfile.AEAD_AES_128_GCM
    ctx = SrtpContext.outbound(profile, srtp_key(profile, 0), allow_repeat_tx=False)
    producers: Producers = {SSRCS[0]: [consumer("c1", srtp=ctx), consumer("c2")]}
    table = ForwardTable(producers)
    rig = Rig([packet(1), packet(1)], 4, 256)  # the repeat is refused (replay)
    assert rig.run(table) == 3
    assert rig.batch.counts()["srtp_failed"] == 1
    assert table.state("c1").failures == 1 and table.state("c1").last_error == \
        srtp_module.SrtpStatus.REPLAY_FAIL
    assert [rig.batch.offsets[k] for k in range(3)] == [s * 256 for s in rig.free[:3]]


def test_outputs_go_out_in_one_send_batch() -> None:
    receivers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for sock in receivers:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(2)
        dests = [sock.getsockname() for sock in receivers]
        producers: Producers = {SSRCS[0]: [consumer("c1", dest=dests[0]),
                                           consumer("c2", dest=dests[1])]}
        table = ForwardTable(producers)
        out_slab = bytearray(8 * 256)
        send = SendBatch(out_slab, 8)
        in_slab = bytearray(IN_SLOT)
        in_slab[: len(packet(7))] = packet(7)
        batch = ForwardBatch(in_slab, IN_SLOT, out_slab, 256, send=send)
        slots, lengths = ffi.new("uint32_t[]", [0]), ffi.new("uint32_t[]", [len(packet(7))])
        n = batch.run(table, slots, lengths, 1, [3, 5, 6])
        assert n == 2 and send.send(sender.fileno(), n) == 2
        got = [ref_rtp.parse_header(sock.recv(2048)) for sock in receivers]
        assert [(h.ssrc, h.sequence_number) for h in got] == [(0xC0000001, 7), (0xC0000002, 7)]
    finally:
        for sock in [*receivers, sender]:
            sock.close()
