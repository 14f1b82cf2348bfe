"""The C fan-out (cffi_build/forward.c through worker._fast.forward) against the pure-Python
reference (tests/reference/forward.py, with the egress extensions of
tests/reference/forward_egress.py).

Generated tables and batches (hypothesis): the plain outputs, their destinations and sockets,
every count, every consumer's state and every TWCC counter must be the reference's, and no byte
of the output slab outside the given free slots may change (guard bytes). With SRTP, each
consumer's outputs unprotect (with pylibsrtp inbound sessions) to the reference's plain packets.
The send step (mw_forward_send) runs over real UDP sockets on 127.0.0.1.
"""

from __future__ import annotations

import errno
import gc
import random
import socket
import struct
from collections.abc import Hashable, Iterator, Sequence
from typing import Any, NamedTuple

import pylibsrtp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference import forward as ref
from tests.reference import forward_egress as ref_egress
from tests.reference import rtp as ref_rtp
from tests.test_rtp import mutated_packets, rtp_packets
from worker import _fast
from worker._fast import srtp as srtp_module
from worker._fast._lib import ffi, lib
from worker._fast.forward import (
    ForwardArgumentError,
    ForwardBatch,
    ForwardConsumer,
    ForwardTable,
    TwccCounter,
    abs_send_time,
)
from worker._fast.sockio import SendBatch, sockio_addr_to_tuple
from worker._fast.srtp import SrtpContext, SrtpProfile

GUARD = 0xA5
IN_SLOT = 1500
SSRCS = (0x11111111, 0x22222222, 0x33333333)
DESTS = (("127.0.0.1", 40000), ("127.0.0.1", 40001), ("::1", 40002))  # never sent to
ABS_TIME = 0xABCDEF

Producers = dict[int, list[ForwardConsumer]]


class Sink(NamedTuple):
    """A sending UDP socket and bound receivers, on 127.0.0.1, for the generated tests."""

    fd: int
    dests: tuple[tuple[str, int], ...]
    receivers: tuple[socket.socket, ...]

    def drain(self) -> list[bytes]:
        got = []
        for sock in self.receivers:
            while True:
                try:
                    got.append(sock.recv(4096))
                except BlockingIOError:
                    break
        return got


def udp_sockets(n: int) -> list[socket.socket]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2)
    return socks


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    sender, *receivers = udp_sockets(3)
    try:
        for sock in receivers:
            sock.setblocking(False)
        yield Sink(sender.fileno(), tuple(sock.getsockname() for sock in receivers),
                   tuple(receivers))
    finally:
        for sock in [sender, *receivers]:
            sock.close()


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

    def run(self, table: ForwardTable, abs_time: int = ABS_TIME) -> int:
        return self.batch.run(table, self.slots, self.lengths, len(self.packets), self.free,
                              abs_send_time=abs_time)

    def outputs(self, table: ForwardTable) -> list[tuple[bytes, tuple[str, int]]]:
        out = []
        for k in range(self.batch.result.outputs):
            assert self.batch.offsets[k] == self.free[k] * self.slot_size
            dest = table.dest_addresses[self.batch.dest_index[k]]
            assert sockio_addr_to_tuple(self.batch.dests[k]) == dest
            out.append((bytes(self.batch.view(k)), dest))
        return out

    def fds(self, table: ForwardTable) -> list[int]:
        return [table.dest_fds[self.batch.dest_index[k]]
                for k in range(self.batch.result.outputs)]

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


def specs_by_id(producers: Producers) -> dict[Hashable, ForwardConsumer]:
    return {spec["id"]: spec for consumers in producers.values() for spec in consumers}


def assert_same(rig: Rig, table: ForwardTable, expected: ref.RefResult,
                states: dict[Hashable, ref.RefConsumerState], producers: Producers,
                counters: dict[TwccCounter, int] | None = None) -> None:
    assert rig.batch.counts() == expected.counts
    assert rig.outputs(table) == [(o.packet, o.dest) for o in expected.outputs]
    specs = specs_by_id(producers)
    assert rig.fds(table) == [specs[o.consumer].get("fd", -1) for o in expected.outputs]
    for counter, value in (counters or {}).items():
        assert counter.value == value
    for consumers in producers.values():
        for spec in consumers:
            want = states.get(spec["id"], ref.RefConsumerState())
            got = c_state(table, spec["id"])
            if want.failures == 0:
                got.last_error = 0  # the reference does not model libsrtp codes
            assert got == want, spec["id"]
    rig.assert_guards()


# ---- strategies ---------------------------------------------------------------------------------


EXT_IDS = st.one_of(st.integers(1, 4), st.integers(0, 255))  # mostly ids the packets carry


@st.composite
def egress_fields(draw: st.DrawFn, spec: ForwardConsumer, counters: Sequence[TwccCounter],
                  sink: Sink | None) -> None:
    """The egress extensions and the socket of a generated consumer (each maybe absent)."""
    if draw(st.booleans()):
        spec["mid"] = draw(st.one_of(st.none(), st.text("abcXYZ019-", min_size=1, max_size=16)))
        spec["midExtId"] = draw(EXT_IDS)
    if draw(st.booleans()):
        spec["absSendTimeExtId"] = draw(EXT_IDS)
    if draw(st.booleans()):
        spec["twccExtId"] = draw(EXT_IDS)
        spec["twccCounter"] = draw(st.sampled_from(counters))
    way = draw(st.integers(0, 2))
    if way == 1:
        spec["fd"] = -1
    elif way == 2 and sink is not None:
        spec["fd"] = sink.fd
        spec["dest"] = draw(st.sampled_from(sink.dests))


@st.composite
def consumers(draw: st.DrawFn, name: str, counters: Sequence[TwccCounter] = (),
              sink: Sink | None = None) -> ForwardConsumer:
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
    if counters:
        draw(egress_fields(spec, counters, sink))
    return spec


@st.composite
def tables(draw: st.DrawFn, egress: bool = False, sink: Sink | None = None) -> Producers:
    """A routing table; with ``egress``, consumers may have the egress extensions (two shared
    TWCC counters) and, with ``sink``, a socket."""
    counters = [TwccCounter(draw(st.sampled_from([0, 0xFFFE, 0xFFFF, 1234])))
                for _ in range(2 if egress else 0)]
    producers: Producers = {}
    n = 0
    for ssrc in draw(st.lists(st.sampled_from(SSRCS), unique=True, min_size=1, max_size=3)):
        producers[ssrc] = []
        for _ in range(draw(st.integers(0 if producers else 1, 4))):
            producers[ssrc].append(draw(consumers(f"c{n}", counters, sink)))
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


@st.composite
def egress_packets(draw: st.DrawFn, producers: Producers) -> bytes:
    """A packet of a table's SSRC whose extension elements have the ids (1-4) and lengths (2, 3
    bytes) the egress steps look for, in either RFC 8285 form."""
    elements = draw(st.lists(st.tuples(st.integers(1, 4), st.sampled_from([1, 2, 3, 5, 16])),
                             max_size=4))
    form = draw(st.sampled_from([ref_rtp.ExtensionForm.NONE, ref_rtp.ExtensionForm.TWO_BYTE]))
    profile, block = ref_rtp.build_extension_block(
        [(i, draw(st.binary(min_size=n, max_size=n))) for i, n in elements], form,
        ref_rtp.TWO_BYTE_PROFILE)
    return ref_rtp.RtpPacket(
        payload_type=100, marker=0, sequence_number=draw(st.integers(0, 0xFFFF)),
        timestamp=draw(st.integers(0, 2**32 - 1)), ssrc=draw(st.sampled_from(sorted(producers))),
        extension_profile=profile, extension_data=block,
        payload=bytes(draw(st.integers(0, 60)))).serialize()


def run_both(producers: Producers, packets: list[bytes], free_count: int, slot_size: int,
             table: ForwardTable | None = None,
             states: dict[Hashable, ref.RefConsumerState] | None = None,
             seed: int = 0, abs_time: int = ABS_TIME) -> tuple[Rig, ForwardTable, ref.RefResult]:
    table = table or ForwardTable(producers)
    states = {} if states is None else states
    rig = Rig(packets, free_count, slot_size, seed)
    counters: dict[TwccCounter, int] = {}
    expected = ref_egress.forward(packets, producers, states, free_count, slot_size, IN_SLOT,
                                  abs_time=abs_time, counters=counters)
    rig.run(table, abs_time)
    assert_same(rig, table, expected, states, producers, counters)
    return rig, table, expected


def check_send(rig: Rig, table: ForwardTable, sink: Sink | None) -> None:
    """Send the run's outputs: those without a socket come back deferred, the rest go out."""
    fds = rig.fds(table)
    result = rig.batch.send(table)
    assert result.deferred == [k for k, fd in enumerate(fds) if fd < 0]
    assert result.sent + result.dropped + result.left + len(result.deferred) == len(fds)
    assert rig.batch.send_result.sockets == (1 if any(fd >= 0 for fd in fds) else 0)
    if sink is not None:
        outputs = {packet for packet, _ in rig.outputs(table)}
        got = sink.drain()
        assert len(got) <= result.sent and set(got) <= outputs


# ---- differential tests -------------------------------------------------------------------------


@given(st.data())
def test_plain_fan_out_matches_reference(data: st.DataObject) -> None:
    producers = data.draw(tables())
    packets = data.draw(batches(producers))
    free_count = data.draw(st.integers(0, 40))
    slot_size = data.draw(st.sampled_from([64, 96, 128, 256, 2048]))
    run_both(producers, packets, free_count, slot_size, seed=data.draw(st.integers(0, 99)))


@given(st.data())
def test_egress_extensions_and_send_match_reference(sink: Sink, data: st.DataObject) -> None:
    producers = data.draw(tables(egress=True, sink=sink))
    packets = data.draw(st.permutations(data.draw(batches(producers)) + data.draw(
        st.lists(egress_packets(producers), max_size=6))))
    free_count = data.draw(st.integers(0, 40))
    slot_size = data.draw(st.sampled_from([64, 96, 128, 256, 2048]))
    rig, table, _ = run_both(producers, packets, free_count, slot_size,
                             seed=data.draw(st.integers(0, 99)),
                             abs_time=data.draw(st.integers(0, 0xFFFFFF)))
    check_send(rig, table, sink)


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
    producers = data.draw(tables(egress=True))
    inbound: dict[Hashable, pylibsrtp.Session] = {}
    for n, spec in enumerate(c for cs in producers.values() for c in cs):
        if data.draw(st.booleans()):
            key = srtp_key(profile, n)
            spec["srtp"] = SrtpContext.outbound(profile, key)
            inbound[spec["id"]] = pylibsrtp.Session(pylibsrtp.Policy(
                key=key, srtp_profile=int(profile),
                ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    packets = []  # consecutive sequence numbers, as libsrtp's index estimate wants
    drawn = data.draw(batches(producers)) + data.draw(st.lists(egress_packets(producers),
                                                               max_size=4))
    for n, raw in enumerate(drawn):
        packets.append(raw[:2] + struct.pack("!H", 1000 + n) + raw[4:] if len(raw) >= 4 else raw)
    table = ForwardTable(producers)
    rig = Rig(packets, 40, 256)
    counters: dict[TwccCounter, int] = {}
    expected = ref_egress.forward(packets, producers, {}, 40, 256, IN_SLOT, abs_time=ABS_TIME,
                                  counters=counters)
    rig.run(table)
    assert rig.batch.counts() == expected.counts
    assert all(counter.value == value for counter, value in counters.items())
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
    sender, *receivers = udp_sockets(3)
    try:
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


# ---- egress header extensions -------------------------------------------------------------------

MID_ID, ABS_ID, TWCC_ID = 1, 2, 3


def egress_consumer(name: str, counter: TwccCounter, mid: str = "m1",
                    **extra: Any) -> ForwardConsumer:
    return consumer(name, mid=mid, midExtId=MID_ID, absSendTimeExtId=ABS_ID, twccExtId=TWCC_ID,
                    twccCounter=counter, **extra)


def one_byte(*elements: tuple[int, bytes]) -> tuple[int, bytes]:
    profile, block = ref_rtp.build_extension_block(list(elements))
    assert profile is not None
    return profile, block


def elements_of(data: bytes) -> dict[int, bytes]:
    return {e.id: e.value for e in ref_rtp.parse_header(data).elements}


def test_abs_send_time_is_the_ntp_time_bits_14_to_37() -> None:
    seconds, fraction = 1_700_000_000, 12345  # exact in binary: t = seconds + fraction / 2^16
    ntp = ((seconds + 2_208_988_800) << 32) + (fraction << 16)
    assert abs_send_time(seconds + fraction / 65536) == (ntp >> 14) & 0xFFFFFF
    assert (abs_send_time(0.0), abs_send_time(1.5), abs_send_time(64.0)) == (0, 3 << 17, 0)
    table = ForwardTable()
    table.abs_send_time = 0xFFFFFF
    assert table.abs_send_time == 0xFFFFFF
    with pytest.raises(ValueError, match="abs-send-time"):
        table.abs_send_time = 1 << 24


@pytest.mark.parametrize("profile", [None, SrtpProfile.AES128_CM_SHA1_80,
                                     SrtpProfile.AEAD_AES_128_GCM])
def test_the_three_extensions_are_written_before_srtp(profile: SrtpProfile | None) -> None:
    counter = TwccCounter(0xFFFF)  # the next number wraps to 0
    extra: dict[str, Any] = {"extMap": {7: ABS_ID, 8: TWCC_ID, 9: 9}}  # ids are the egress ids
    session = None
    if profile is not None:
        key = srtp_key(profile, 7)
        extra["srtp"] = SrtpContext.outbound(profile, key)
        session = pylibsrtp.Session(pylibsrtp.Policy(
            key=key, srtp_profile=int(profile), ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    producers: Producers = {SSRCS[0]: [egress_consumer("c1", counter, **extra)]}
    ext = one_byte((7, b"\x00\x00\x00"), (8, b"\x00\x00"), (9, b"keep"))
    packets = [packet(1, ext=ext), packet(2, ext=ext), packet(3)]
    table = ForwardTable(producers)
    now = abs_send_time(1234.56789)
    expected = ref_egress.forward(packets, producers, {}, 4, 256, IN_SLOT, abs_time=now)
    rig = Rig(packets, 4, 256)
    assert rig.batch.run(table, rig.slots, rig.lengths, 3, rig.free, abs_send_time=now) == 3
    got = [bytes(rig.batch.view(k)) for k in range(3)]
    if session is not None:
        got = [session.unprotect(data) for data in got]
    assert got == [o.packet for o in expected.outputs]
    assert [elements_of(data) for data in got] == [
        {MID_ID: b"m1", ABS_ID: now.to_bytes(3, "big"), TWCC_ID: b"\x00\x00", 9: b"keep"},
        {MID_ID: b"m1", ABS_ID: now.to_bytes(3, "big"), TWCC_ID: b"\x00\x01", 9: b"keep"},
        {MID_ID: b"m1"}]  # no abs-send-time or TWCC element: none added, no number used
    assert counter.value == 1 and table.abs_send_time == now
    assert table.state("c1").bytes == sum(len(data) for data in got)


def test_elements_of_another_length_are_left_alone() -> None:
    counter = TwccCounter(5)
    producers: Producers = {SSRCS[0]: [egress_consumer("c1", counter)]}
    ext = one_byte((ABS_ID, b"\x01\x02"), (TWCC_ID, b"\x03\x04\x05"))
    rig, _, _ = run_both(producers, [packet(1, ext=ext)], 2, 256)
    assert elements_of(bytes(rig.batch.view(0))) == {ABS_ID: b"\x01\x02",
                                                     TWCC_ID: b"\x03\x04\x05", MID_ID: b"m1"}
    assert counter.value == 5


def test_twcc_counter_is_shared_by_consumers_and_tables_across_runs() -> None:
    counter = TwccCounter()
    ext = one_byte((TWCC_ID, b"\x00\x00"))
    table_a = ForwardTable({SSRCS[0]: [egress_consumer("c1", counter)]})
    table_a.update({SSRCS[0]: [  # a rebuild; c3's counter is held by the table only
        egress_consumer("c1", counter), egress_consumer("c2", counter),
        consumer("c3", twccExtId=TWCC_ID, twccCounter=TwccCounter())]})
    gc.collect()
    table_b = ForwardTable({SSRCS[1]: [egress_consumer("c4", counter)]})

    def numbers(table: ForwardTable, packets: list[bytes]) -> list[int]:
        rig = Rig(packets, 12, 256)
        n = rig.run(table)
        return [int.from_bytes(elements_of(bytes(rig.batch.view(k)))[TWCC_ID], "big")
                for k in range(n) if TWCC_ID in elements_of(bytes(rig.batch.view(k)))]

    assert numbers(table_a, [packet(1, ext=ext), packet(2), packet(3, ext=ext)]) == \
        [1, 2, 1, 3, 4, 2]  # c1, c2 share the counter; c3 has its own
    assert numbers(table_b, [packet(4, ssrc=SSRCS[1], ext=ext)]) == [5]
    assert numbers(table_a, [packet(5, ext=ext)]) == [6, 7, 3]
    assert counter.value == 7


def test_a_failed_output_uses_no_twcc_number() -> None:
    profile = SrtpProfile.AEAD_AES_128_GCM
    ctx = SrtpContext.outbound(profile, srtp_key(profile, 1), allow_repeat_tx=False)
    counter = TwccCounter(100)
    producers: Producers = {SSRCS[0]: [egress_consumer("c1", counter, srtp=ctx),
                                       egress_consumer("c2", counter)]}
    table = ForwardTable(producers)
    ext = one_byte((TWCC_ID, b"\x00\x00"))
    rig = Rig([packet(1, ext=ext), packet(1, ext=ext)], 4, 256)  # c1's repeat is refused
    assert rig.run(table) == 3 and rig.batch.counts()["srtp_failed"] == 1
    assert counter.value == 103  # c1: 101, c2: 102, c1 (refused): none, c2: 103
    assert int.from_bytes(elements_of(bytes(rig.batch.view(2)))[TWCC_ID], "big") == 103


def test_mid_added_when_absent_and_replaced_with_another_length() -> None:
    counter = TwccCounter()
    producers: Producers = {SSRCS[0]: [egress_consumer("c1", counter, mid="video-0001")]}
    two_byte = (ref_rtp.TWO_BYTE_PROFILE | 3, bytes([MID_ID, 2, 0x61, 0x62, 40, 1, 0x7F, 0]))
    packets = [packet(1), packet(2, ext=one_byte((MID_ID, b"x"), (5, b"yy"))),
               packet(3, ext=one_byte((5, b"yy"), (MID_ID, b"a-much-longer-mid"[:16]))),
               packet(4, ext=two_byte)]
    rig, table, _ = run_both(producers, packets, 4, 256)
    got = [ref_rtp.parse_header(bytes(rig.batch.view(k))) for k in range(4)]
    assert [[(e.id, e.value) for e in h.elements] for h in got] == [
        [(MID_ID, b"video-0001")],
        [(MID_ID, b"video-0001"), (5, b"yy")],
        [(5, b"yy"), (MID_ID, b"video-0001")],
        [(MID_ID, b"video-0001"), (40, b"\x7f")]]
    assert got[0].ext_profile == ref_rtp.ONE_BYTE_PROFILE
    assert got[3].ext_profile == ref_rtp.TWO_BYTE_PROFILE | 3  # the two-byte form is kept
    assert table.state("c1").failures == 0


def test_mid_that_cannot_be_put_is_a_rewrite_failure() -> None:
    counter = TwccCounter()
    producers: Producers = {SSRCS[0]: [egress_consumer("c1", counter)]}
    opaque = (0x1234, b"\x00" * 4)  # not an RFC 8285 block
    full = packet(2, payload=b"z" * (64 - 12))  # exactly a 64-byte slot: no room to add
    rig, table, _ = run_both(producers, [packet(1, ext=opaque), full, packet(3)], 4, 64)
    assert rig.batch.counts()["rewrite_failed"] == 2 and rig.batch.counts()["outputs"] == 1
    state = table.state("c1")
    assert (state.failures, state.last_error, state.last_seq) == (2, ref_rtp.Reason.NO_ROOM, 3)


def test_egress_fields_are_checked() -> None:
    counter = TwccCounter()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"twccExtId": 3}, "twccCounter"), ({"mid": "x" * 17, "midExtId": 1}, "MID"),
        ({"mid": "", "midExtId": 1}, "MID"), ({"absSendTimeExtId": 256}, "absSend"),
        ({"fd": -(2**31) - 1}, "descriptor")]
    for bad, match in cases:
        with pytest.raises(ValueError, match=match):
            ForwardTable({SSRCS[0]: [consumer("c1", **bad)]})
    table = ForwardTable({SSRCS[0]: [egress_consumer("c1", counter),
                                     consumer("c2", mid="ignored")]})
    assert table.consumers[1].mid_ext_id == 0  # a MID without an id is not written
    rig = Rig([packet(1)], 2, 256)
    for field, value in [("twcc_seq", ffi.NULL), ("mid_len", 0), ("mid_len", 17)]:
        saved = getattr(table.consumers[0], field)
        setattr(table.consumers[0], field, value)
        with pytest.raises(ForwardArgumentError):
            rig.run(table)
        assert rig.out_slab == bytearray([GUARD]) * len(rig.out_slab)
        setattr(table.consumers[0], field, saved)
    assert rig.run(table) == 2


# ---- sending: one sendmmsg batch per socket, the rest deferred ---------------------------------


def receive(sock: socket.socket, count: int) -> list[tuple[int, int, int]]:
    """(sender port, SSRC, sequence number) of `count` datagrams, then nothing more."""
    got = []
    for _ in range(count):
        data, source = sock.recvfrom(2048)
        h = ref_rtp.parse_header(data)
        got.append((source[1], h.ssrc, h.sequence_number))
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(2048)
    return got


def test_send_groups_outputs_by_socket_and_defers_those_without() -> None:
    senders, receivers = udp_sockets(2), udp_sockets(3)
    try:
        fd_a, fd_b = (sock.fileno() for sock in senders)
        port_a, port_b = (sock.getsockname()[1] for sock in senders)
        to = [sock.getsockname() for sock in receivers]
        producers: Producers = {SSRCS[0]: [
            consumer("c1", fd=fd_a, dest=to[0]), consumer("c2", fd=fd_b, dest=to[1]),
            consumer("c3", fd=fd_a, dest=to[2]), consumer("c4", dest=to[0]),  # no socket
            consumer("c5", fd=fd_b, dest=to[0]), consumer("c6", fd=-1, dest=to[0])]}
        table = ForwardTable(producers)
        assert table.dest_addresses == [to[0], to[1], to[2], to[0], to[0]]
        assert table.dest_fds == [fd_a, fd_b, fd_a, -1, fd_b]  # c4 and c6 share (-1, to[0])
        rig = Rig([packet(1), packet(2), packet(3)], 18, 256)
        assert rig.run(table) == 18
        result = rig.batch.send(table)
        deferred = [k for k in range(18) if k % 6 in (3, 5)]
        assert result == (12, 0, 0, deferred, 0)
        assert rig.batch.send_result.sockets == 2
        assert [table.dest_fds[rig.batch.dest_index[k]] for k in deferred] == [-1] * 6
        assert {table.dest_addresses[rig.batch.dest_index[k]] for k in deferred} == {to[0]}
        c = [0xC0000000 + n for n in range(7)]
        assert receive(receivers[0], 6) == [(port_a, c[1], 1), (port_a, c[1], 2),
                                            (port_a, c[1], 3), (port_b, c[5], 1),
                                            (port_b, c[5], 2), (port_b, c[5], 3)]
        assert receive(receivers[1], 3) == [(port_b, c[2], seq) for seq in (1, 2, 3)]
        assert receive(receivers[2], 3) == [(port_a, c[3], seq) for seq in (1, 2, 3)]
        assert rig.batch.send(table, 0) == (0, 0, 0, [], 0)
    finally:
        for sock in [*senders, *receivers]:
            sock.close()


def test_send_through_a_closed_socket_leaves_its_outputs() -> None:
    (sender,), (receiver,) = udp_sockets(1), udp_sockets(1)
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed_fd = closed.fileno()
    try:
        to = receiver.getsockname()
        producers: Producers = {SSRCS[0]: [consumer("c1", fd=closed_fd, dest=to),
                                           consumer("c2", fd=sender.fileno(), dest=to)]}
        table = ForwardTable(producers)
        closed.close()  # its descriptor number is now EBADF (nothing else opens one meanwhile)
        rig = Rig([packet(1), packet(2)], 4, 256)
        assert rig.run(table) == 4
        result = rig.batch.send(table)
        assert (result.sent, result.left, result.deferred) == (2, 2, [])
        assert result.err == errno.EBADF  # the other socket still sent
        assert [seq for _, _, seq in receive(receiver, 2)] == [1, 2]
    finally:
        for sock in (sender, receiver, closed):
            sock.close()


def test_send_refuses_bad_arguments_before_sending_anything() -> None:
    (sender,), (receiver,) = udp_sockets(1), udp_sockets(1)
    try:
        producers: Producers = {SSRCS[0]: [consumer("c1", fd=sender.fileno(),
                                                    dest=receiver.getsockname())]}
        table = ForwardTable(producers)
        rig = Rig([packet(1), packet(2)], 2, 256)
        with pytest.raises(ForwardArgumentError, match="last run"):
            rig.batch.send(table)  # no run yet
        rig.run(table)
        with pytest.raises(ForwardArgumentError, match="last run"):
            rig.batch.send(ForwardTable(producers))
        with pytest.raises(ValueError, match="outputs"):
            rig.batch.send(table, 3)
        batch, result = rig.batch, rig.batch.send_result

        def refused(n: int = 2, area: Any = batch.area) -> bool:
            status = lib.mw_forward_send(table.struct, batch.output, n, area, result)
            return bool(status == lib.MW_FORWARD_ERR_ARGS and result.sent == result.deferred == 0)

        assert refused(area=ffi.NULL) and refused(n=3)
        for array, k, bad in [(batch.dest_index, 1, 1), (batch.offsets, 1, len(rig.out_slab)),
                              (batch.lengths, 1, len(rig.out_slab))]:
            saved, array[k] = array[k], bad
            assert refused()
            array[k] = saved
        table.struct.dests[0].family = 0
        assert refused()
        with pytest.raises(ForwardArgumentError, match="nothing was sent"):
            batch.send(table)
        table.struct.dests[0].family = lib.MW_SOCKIO_FAMILY_IPV4
        receiver.setblocking(False)
        with pytest.raises(BlockingIOError):
            receiver.recv(2048)
        table.update(producers)
        with pytest.raises(ForwardArgumentError, match="last run"):
            batch.send(table)  # the routing changed since the run
        rig.run(table)
        assert batch.send(table).sent == 2
    finally:
        for sock in (sender, receiver):
            sock.close()
