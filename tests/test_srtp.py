"""SRTP and SRTCP in the C batch (cffi_build/srtp.c through worker._fast.srtp) against pylibsrtp.

pylibsrtp's own ``Session`` is the reference: for the same key and the same packets in the same
order, the C batch must give the same bytes and the same libsrtp statuses. Packets are the RTP
and RTCP fixtures (``tests/fixtures/{rtp,rtcp}/*.bin``, malformed ones included) and seeded
synthetic ones; every profile pylibsrtp 1.0.0 offers is covered. A fake ``struct mw_srtp_api``
made of cffi callbacks shows which packets reach libsrtp at all.
"""

from __future__ import annotations

import gc
import random
import struct
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pylibsrtp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pylibsrtp import _binding

from worker import _fast
from worker._fast import srtp as srtp_module
from worker._fast._lib import ffi, lib
from worker._fast.srtp import (
    SRTP_PROFILE_PREFERENCE,
    SRTP_RTCP_TRAILER_MAX,
    SRTP_RTP_TRAILER_MAX,
    SrtpApi,
    SrtpArgumentError,
    SrtpBatch,
    SrtpContext,
    SrtpError,
    SrtpInterfaceError,
    SrtpProfile,
    SrtpStatus,
)

FIXTURES = Path(__file__).parent / "fixtures"
RTP_FIXTURES = sorted((FIXTURES / "rtp").glob("*.bin"))
RTCP_FIXTURES = sorted((FIXTURES / "rtcp").glob("*.bin"))
SLOT = 1536  # a multiple of SRTP_ALIGNMENT
SEED = 5
PROFILES = list(SrtpProfile)
EXPECTED_LIBSRTP = "libsrtp2 2.7.0"
PIN_MESSAGE = (
    "pylibsrtp's interface changed. worker/_fast/srtp.py and cffi_build/srtp.h call libsrtp "
    "through pointers taken from pylibsrtp._binding and through the private Session._srtp; "
    "re-check the new version's _binding cdef (srtp_protect & co.), Session and Policy, update "
    "mw_srtp_fn / the trailer bounds in cffi_build/srtp.h, LIBSRTP_SIGNATURE and "
    "PYLIBSRTP_VERSION in worker/_fast/srtp.py, the pin in setup.py, then this test.")


# ---- packets and sessions ----------------------------------------------------------------------


def key_for(profile: SrtpProfile, salt: int = 0) -> bytes:
    rng = random.Random(f"{SEED}-{profile.name}-{salt}")
    return rng.randbytes(profile.master_key_bytes + profile.master_salt_bytes)


def rtp(seq: int, payload: bytes, ssrc: int = 0x11223344, pt: int = 96) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, seq * 960, ssrc) + payload


def sender_report(ssrc: int, count: int) -> bytes:
    """An SR with no report block: 28 bytes."""
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 0xE0000000 + count, 0, count * 960,
                       count, count * 1000)


def synthetic_rtp(count: int, seed: int = SEED) -> list[bytes]:
    rng = random.Random(seed)
    return [rtp(1000 + i, rng.randbytes(rng.choice([0, 1, 20, 160, 1000, 1200])))
            for i in range(count)]


def reference_session(profile: SrtpProfile, key: bytes, inbound: bool) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(
        key=key, srtp_profile=int(profile),
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND if inbound
        else pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    policy.allow_repeat_tx = not inbound
    policy.window_size = srtp_module.SRTP_REPLAY_WINDOW
    return pylibsrtp.Session(policy)


def reference_status(call: Callable[[bytes], bytes], packet: bytes) -> tuple[int, bytes]:
    """pylibsrtp's result as (libsrtp status, bytes)."""
    try:
        return SrtpStatus.OK, call(packet)
    except pylibsrtp.Error as exc:
        return pylibsrtp.ERRORS.index(str(exc)), packet


class Slab:
    """Packets in SLOT-byte slots of one bytearray, with an SrtpBatch over them."""

    def __init__(self, packets: list[bytes], slots: int | None = None) -> None:
        self.count = len(packets)
        self.data = bytearray(SLOT * (slots or max(1, self.count)))
        self.batch = SrtpBatch(self.data, capacity=max(1, slots or self.count))
        for i, packet in enumerate(packets):
            self.put(i, packet)

    def put(self, i: int, packet: bytes, capacity: int = SLOT) -> None:
        self.data[i * SLOT : i * SLOT + len(packet)] = packet
        self.batch.set(i, i * SLOT, len(packet), capacity)

    def packet(self, i: int) -> bytes:
        return bytes(self.batch.view(i))

    def statuses(self) -> list[int]:
        return [self.batch.status[i] for i in range(self.count)]


def ours_vs_reference(statuses: list[int], ours: list[bytes],
                      expected: list[tuple[int, bytes]]) -> None:
    for i, (status, data) in enumerate(expected):
        mine = statuses[i]
        if mine == SrtpStatus.TOO_SHORT:  # refused before libsrtp, which says bad_param
            assert status == SrtpStatus.BAD_PARAM, f"packet {i}"
        else:
            assert mine == status, f"packet {i}: {srtp_module.srtp_status(mine)!r}"
        assert ours[i] == data, f"packet {i} differs"


# ---- the pinned interface ----------------------------------------------------------------------


def test_pylibsrtp_interface_is_the_pinned_one() -> None:
    assert pylibsrtp.__version__ == srtp_module.PYLIBSRTP_VERSION == "1.0.0", PIN_MESSAGE
    for name in srtp_module.SRTP_FUNCTIONS:
        pointer = _binding.ffi.addressof(_binding.lib, name)
        assert _binding.ffi.typeof(pointer).cname == (
            "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"), PIN_MESSAGE
    assert _binding.ffi.typeof("srtp_t").cname == "struct srtp_ctx_t_ *", PIN_MESSAGE
    session = pylibsrtp.Session(pylibsrtp.Policy(
        key=bytes(30), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    assert _binding.ffi.typeof(session._srtp) is _binding.ffi.typeof("srtp_t *"), PIN_MESSAGE
    # What the C's trailer bound relies on: no MKI field that a Policy could turn on.
    fields = [name for name, _ in _binding.ffi.typeof("srtp_policy_t").fields]
    assert fields == ["ssrc", "rtp", "rtcp", "key", "window_size", "allow_repeat_tx"], PIN_MESSAGE
    api = srtp_module.srtp_api()
    assert api.libsrtp_version == EXPECTED_LIBSRTP, PIN_MESSAGE
    assert api.pylibsrtp_version == "1.0.0"


def test_status_and_profile_values_are_libsrtps() -> None:
    assert len(pylibsrtp.ERRORS) == 28, PIN_MESSAGE
    assert pylibsrtp.ERRORS[SrtpStatus.AUTH_FAIL] == "authentication failure"
    assert pylibsrtp.ERRORS[SrtpStatus.REPLAY_FAIL] == "replay check failed (bad index)"
    assert pylibsrtp.ERRORS[SrtpStatus.REPLAY_OLD] == "replay check failed (index too old)"
    assert pylibsrtp.ERRORS[SrtpStatus.PKT_IDX_ADV] == "packet index advanced, reset needed"
    assert _binding.lib.srtp_err_status_ok == SrtpStatus.OK
    for profile in SrtpProfile:
        assert _binding.lib.srtp_profile_get_master_key_length(profile) == \
            profile.master_key_bytes
        assert _binding.lib.srtp_profile_get_master_salt_length(profile) == \
            profile.master_salt_bytes
        assert SrtpProfile.from_dtls_name(profile.dtls_name) is profile
    assert SRTP_PROFILE_PREFERENCE[0] is SrtpProfile.AEAD_AES_256_GCM
    with pytest.raises(ValueError, match="not an SRTP profile"):
        SrtpProfile.from_dtls_name(b"SRTP_NULL_SHA1_80")


def test_a_changed_signature_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(srtp_module, "LIBSRTP_SIGNATURE",
                        "srtp_err_status_t(*)(struct srtp_ctx_t_ *, const uint8_t *, size_t)")
    with pytest.raises(SrtpInterfaceError, match=r"srtp_protect is .*cffi_build/srtp\.h"):
        SrtpApi()
    monkeypatch.undo()
    monkeypatch.setattr(srtp_module, "SRTP_FUNCTIONS", ("srtp_protect_v3", *"abc"))
    with pytest.raises(SrtpInterfaceError, match="no function srtp_protect_v3"):
        SrtpApi()
    assert issubclass(SrtpInterfaceError, ImportError)


def test_a_session_without_srtp_attribute_fails_loudly() -> None:
    class NotASession:
        _srtp = None

    with pytest.raises(SrtpInterfaceError, match=r"Session\._srtp"):
        srtp_module.srtp_api().session_pointer(NotASession())  # type: ignore[arg-type]


# ---- C batch against pylibsrtp -----------------------------------------------------------------


def fixture_packets(paths: list[Path]) -> list[bytes]:
    return [path.read_bytes() for path in paths]


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_protect_matches_pylibsrtp(profile: SrtpProfile) -> None:
    packets = fixture_packets(RTP_FIXTURES) + synthetic_rtp(64)
    key = key_for(profile)
    slab = Slab(packets)
    done = slab.batch.protect(len(packets), SrtpContext.outbound(profile, key))
    reference = reference_session(profile, key, inbound=False)
    expected = [reference_status(reference.protect, p) for p in packets]
    ours_vs_reference(slab.statuses(), [slab.packet(i) for i in range(len(packets))], expected)
    assert done == sum(status == SrtpStatus.OK for status, _ in expected)
    assert done >= 64  # every synthetic packet and the well-formed fixtures
    synthetic = len(RTP_FIXTURES)
    assert slab.batch.lengths[synthetic] == len(packets[synthetic]) + profile.rtp_tag_bytes


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_unprotect_gives_back_pylibsrtps_originals(profile: SrtpProfile) -> None:
    originals = synthetic_rtp(64, seed=SEED + 1)
    key = key_for(profile, 1)
    sender = reference_session(profile, key, inbound=False)
    slab = Slab([sender.protect(p) for p in originals])
    ctx = SrtpContext.inbound(profile, key)
    assert slab.batch.unprotect(len(originals), ctx) == len(originals)
    assert [slab.packet(i) for i in range(len(originals))] == originals
    assert slab.statuses() == [SrtpStatus.OK] * len(originals)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_rtcp_matches_pylibsrtp_both_ways(profile: SrtpProfile) -> None:
    packets = fixture_packets(RTCP_FIXTURES) + [sender_report(0x55667788, i) for i in range(8)]
    key = key_for(profile, 2)
    slab = Slab(packets)
    slab.batch.protect_rtcp(len(packets), SrtpContext.outbound(profile, key))
    reference = reference_session(profile, key, inbound=False)
    expected = [reference_status(reference.protect_rtcp, p) for p in packets]
    ours_vs_reference(slab.statuses(), [slab.packet(i) for i in range(len(packets))], expected)
    rtcp_tag = 16 if profile.name.startswith("AEAD") else 10
    assert slab.batch.lengths[len(packets) - 1] == 28 + 4 + rtcp_tag

    protected = [data for status, data in expected if status == SrtpStatus.OK]
    originals = [p for p, (status, _) in zip(packets, expected, strict=True)
                 if status == SrtpStatus.OK]
    back = Slab(protected)
    assert back.batch.unprotect_rtcp(len(protected), SrtpContext.inbound(profile, key)) == \
        len(protected)
    assert [back.packet(i) for i in range(len(protected))] == originals


# ---- failures stay per packet ------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_tampered_packets_fail_alone(profile: SrtpProfile) -> None:
    originals = synthetic_rtp(8, seed=SEED + 2)
    originals[3] = rtp(1003, b"payload bytes of packet three")
    key = key_for(profile, 3)
    sender = reference_session(profile, key, inbound=False)
    protected = [bytearray(sender.protect(p)) for p in originals]
    protected[3][20] ^= 0x01  # a payload byte
    protected[5][-1] ^= 0x80  # the tag
    slab = Slab([bytes(p) for p in protected])
    assert slab.batch.unprotect(8, SrtpContext.inbound(profile, key)) == 6
    assert slab.statuses() == [0, 0, 0, SrtpStatus.AUTH_FAIL, 0, SrtpStatus.AUTH_FAIL, 0, 0]
    for i in (0, 1, 2, 4, 6, 7):
        assert slab.packet(i) == originals[i]
    assert slab.batch.lengths[5] == len(protected[5])  # a failed packet keeps its length
    assert slab.batch.reason(3) is SrtpStatus.AUTH_FAIL


def test_tampered_rtcp_fails_alone() -> None:
    profile = SrtpProfile.AES128_CM_SHA1_80
    key = key_for(profile, 4)
    sender = reference_session(profile, key, inbound=False)
    originals = [sender_report(7, i) for i in range(4)]
    protected = [bytearray(sender.protect_rtcp(p)) for p in originals]
    protected[2][10] ^= 0xFF
    slab = Slab([bytes(p) for p in protected])
    assert slab.batch.unprotect_rtcp(4, SrtpContext.inbound(profile, key)) == 3
    assert slab.statuses() == [0, 0, SrtpStatus.AUTH_FAIL, 0]
    assert [slab.packet(i) for i in (0, 1, 3)] == [originals[i] for i in (0, 1, 3)]


@pytest.mark.parametrize("profile", [SrtpProfile.AES128_CM_SHA1_80,
                                     SrtpProfile.AEAD_AES_128_GCM], ids=lambda p: p.name)
def test_replayed_and_too_old_packets_are_refused(profile: SrtpProfile) -> None:
    key = key_for(profile, 5)
    sender = reference_session(profile, key, inbound=False)
    first, late = sender.protect(rtp(1, b"a" * 50)), sender.protect(rtp(3000, b"b" * 50))
    slab = Slab([first, first, late, first])
    assert slab.batch.unprotect(4, SrtpContext.inbound(profile, key)) == 2
    # The copy of packet 1 is a replay; after 3000, packet 1 is behind the 1024-packet window.
    assert slab.statuses() == [0, SrtpStatus.REPLAY_FAIL, 0, SrtpStatus.REPLAY_OLD]
    assert slab.packet(3) == first  # refused before any decryption


def test_outbound_sessions_protect_a_retransmission_again() -> None:
    profile = SrtpProfile.AEAD_AES_128_GCM
    packet = rtp(42, b"nack me")
    slab = Slab([packet, packet])
    assert slab.batch.protect(2, SrtpContext.outbound(profile, key_for(profile))) == 2
    assert slab.packet(0) == slab.packet(1)
    strict = Slab([packet, packet])
    ctx = SrtpContext.outbound(profile, key_for(profile), allow_repeat_tx=False)
    assert strict.batch.protect(2, ctx) == 1
    assert strict.statuses() == [0, SrtpStatus.REPLAY_FAIL]


# ---- the C's own checks ------------------------------------------------------------------------


@pytest.mark.parametrize(("rtcp", "room"), [(False, SRTP_RTP_TRAILER_MAX),
                                            (True, SRTP_RTCP_TRAILER_MAX)])
def test_no_room_for_the_trailer_leaves_the_packet_untouched(rtcp: bool, room: int) -> None:
    profile = SrtpProfile.AES128_CM_SHA1_32  # the shortest tag: the bound is still the largest
    packets = [sender_report(9, i) if rtcp else rtp(i, bytes(100)) for i in range(4)]
    slab = Slab(packets)
    slab.put(1, packets[1], capacity=len(packets[1]) + room - 1)
    slab.put(2, packets[2], capacity=len(packets[2]) - 1)  # longer than its slot
    slab.put(3, packets[3], capacity=len(packets[3]) + room)  # exactly enough
    before = bytes(slab.data)
    ctx = SrtpContext.outbound(profile, key_for(profile))
    done = (slab.batch.protect_rtcp if rtcp else slab.batch.protect)(4, ctx)
    assert done == 2
    assert slab.statuses() == [0, SrtpStatus.NO_ROOM, SrtpStatus.NO_ROOM, 0]
    assert slab.data[SLOT : 3 * SLOT] == before[SLOT : 3 * SLOT]
    assert [slab.batch.lengths[i] for i in (1, 2)] == [len(packets[1]), len(packets[2])]


def test_short_packets_never_reach_libsrtp() -> None:
    profile = SrtpProfile.AES128_CM_SHA1_80
    slab = Slab([rtp(1, b"")[:11], b"", sender_report(1, 1)[:7]])
    ctx = SrtpContext.outbound(profile, key_for(profile))
    assert slab.batch.protect(2, ctx) == 0
    assert slab.statuses()[:2] == [SrtpStatus.TOO_SHORT, SrtpStatus.TOO_SHORT]
    slab.put(0, sender_report(1, 1)[:7])
    assert slab.batch.protect_rtcp(1, ctx) == 0
    assert slab.batch.reason(0) is SrtpStatus.TOO_SHORT


class FakeApi:
    """A struct mw_srtp_api whose four functions are cffi callbacks that record their calls and
    return ``result`` (status, new length)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.result: tuple[int, int | None] = (0, None)
        self.struct: Any = ffi.new("struct mw_srtp_api *")
        self._callbacks = [self._make(name) for name in
                           ("protect", "unprotect", "protect_rtcp", "unprotect_rtcp")]
        (self.struct.protect, self.struct.unprotect, self.struct.protect_rtcp,
         self.struct.unprotect_rtcp) = self._callbacks

    def _make(self, name: str) -> Any:
        def call(session: Any, packet: Any, length: Any) -> int:
            self.calls.append((name, length[0]))
            status, new_length = self.result
            if new_length is not None:
                length[0] = new_length
            return status

        return ffi.callback("int(void *, void *, int *)", call)


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    yield FakeApi()


def call_batch(function: Any, api: FakeApi, slab: bytearray, slots: list[tuple[int, int, int]],
               session: Any = None) -> tuple[int, list[int], list[int]]:
    n = len(slots)
    offsets = ffi.new("size_t[]", [s[0] for s in slots])
    lengths = ffi.new("uint32_t[]", [s[1] for s in slots])
    capacities = ffi.new("uint32_t[]", [s[2] for s in slots])
    status = ffi.new("int32_t[]", n)
    base = ffi.from_buffer("uint8_t[]", slab)
    marker = ffi.new("int *")
    done = function(api.struct, marker if session is None else session, base, len(slab),
                    offsets, lengths, capacities, n, status)
    ffi.release(base)
    return done, list(status), list(lengths)


@pytest.mark.parametrize(("offset", "capacity"), [
    (4 * SLOT, 16),               # starts past the slab
    (3 * SLOT, SLOT + 4),         # runs past the slab
    (SLOT + 2, 64),               # misaligned
    (0, 0x7FFF0004),              # larger than MW_SRTP_MAX_CAPACITY
    (2**64 - 4, 8),               # wraps around
])
def test_slots_outside_the_slab_refuse_the_batch_before_libsrtp(
        fake_api: FakeApi, offset: int, capacity: int) -> None:
    slab = bytearray(4 * SLOT)
    done, status, _ = call_batch(lib.mw_srtp_protect_batch, fake_api, slab,
                                 [(0, 100, SLOT), (offset, 0, capacity), (2 * SLOT, 100, SLOT)])
    assert done == lib.MW_SRTP_ERR_ARGS
    assert status == [SrtpStatus.NOT_RUN, SrtpStatus.BAD_SLOT, SrtpStatus.NOT_RUN]
    assert fake_api.calls == []
    assert slab == bytearray(4 * SLOT)


def test_the_facade_raises_for_a_bad_slot() -> None:
    profile = SrtpProfile.AES128_CM_SHA1_80
    ctx = SrtpContext.outbound(profile, key_for(profile))
    slab = Slab([rtp(1, b"x" * 100), rtp(2, b"y" * 100)])
    before = bytes(slab.data)
    slab.batch.set(1, 2 * SLOT, 100, SLOT)
    with pytest.raises(SrtpArgumentError, match=r"packets \[1\]"):
        slab.batch.protect(2, ctx)
    assert bytes(slab.data) == before
    # The session saw nothing: its first packet is still index 0 (same bytes as a fresh one).
    slab.batch.set(1, SLOT, 112, SLOT)
    assert slab.batch.protect(2, ctx) == 2
    fresh = reference_session(profile, key_for(profile), inbound=False)
    assert slab.packet(0) == fresh.protect(rtp(1, b"x" * 100))


def test_each_operation_calls_its_function_with_the_packet_length(fake_api: FakeApi) -> None:
    slab = bytearray(2 * SLOT)
    for name in ("protect", "unprotect", "protect_rtcp", "unprotect_rtcp"):
        function = getattr(lib, f"mw_srtp_{name}_batch")
        fake_api.calls.clear()
        fake_api.result = (0, 130)
        done, status, lengths = call_batch(function, fake_api, slab, [(SLOT, 100, SLOT)])
        assert (done, status, lengths) == (1, [0], [130])
        assert fake_api.calls == [(name, 100)]


@pytest.mark.parametrize(("result", "expected"), [
    ((0, SLOT + 1), SrtpStatus.BAD_RESULT),  # "ok" with a length past the slot
    ((0, -1), SrtpStatus.BAD_RESULT),
    ((-3, None), SrtpStatus.BAD_RESULT),     # not a libsrtp status
    ((7, 90), SrtpStatus.AUTH_FAIL),         # a failure's length is not taken
])
def test_libsrtp_results_are_checked(fake_api: FakeApi, result: tuple[int, int | None],
                                     expected: SrtpStatus) -> None:
    fake_api.result = result
    done, status, lengths = call_batch(lib.mw_srtp_unprotect_batch, fake_api,
                                       bytearray(SLOT), [(0, 100, SLOT)])
    assert (done, status, lengths) == (0, [expected], [100])


def test_null_arguments_are_refused(fake_api: FakeApi) -> None:
    slab = bytearray(SLOT)
    base = ffi.from_buffer("uint8_t[]", slab)
    one = ffi.new("uint32_t[1]", [12])
    offsets, status = ffi.new("size_t[1]"), ffi.new("int32_t[1]")
    assert lib.mw_srtp_protect_each(fake_api.struct, ffi.NULL, base, SLOT, offsets, one, one, 1,
                                    status) == lib.MW_SRTP_ERR_ARGS
    assert lib.mw_srtp_protect_batch(ffi.NULL, ffi.NULL, base, SLOT, offsets, one, one, 1,
                                     status) == lib.MW_SRTP_ERR_ARGS
    fake_api.struct.unprotect = ffi.NULL
    assert lib.mw_srtp_unprotect_batch(fake_api.struct, ffi.NULL, base, SLOT, offsets, one, one,
                                       1, status) == lib.MW_SRTP_ERR_ARGS
    ffi.release(base)
    assert fake_api.calls == []


# ---- one session per packet (a consumer fan-out) -----------------------------------------------


def test_each_consumer_its_own_session() -> None:
    profiles = [SrtpProfile.AEAD_AES_128_GCM, SrtpProfile.AES128_CM_SHA1_80,
                SrtpProfile.AEAD_AES_256_GCM, SrtpProfile.AES128_CM_SHA1_32]
    keys = [key_for(p, 10 + i) for i, p in enumerate(profiles)]
    contexts = [SrtpContext.outbound(p, k) for p, k in zip(profiles, keys, strict=True)]
    references = [reference_session(p, k, inbound=False)
                  for p, k in zip(profiles, keys, strict=True)]
    sources = synthetic_rtp(3, seed=SEED + 3)
    # Packet j goes to every consumer: slots in the order j0c0, j0c1, ..., plus an idle slot.
    plan = [(j, c) for j in range(3) for c in range(4)]
    slab = Slab([sources[j] for j, _ in plan] + [sources[0]])
    for i, (_, c) in enumerate(plan):
        slab.batch.set_session(i, contexts[c])
    slab.batch.set_session(len(plan), None)
    assert slab.batch.protect(len(plan) + 1) == len(plan)
    for i, (j, c) in enumerate(plan):
        assert slab.packet(i) == references[c].protect(sources[j]), f"slot {i}"
    assert slab.batch.reason(len(plan)) is SrtpStatus.NO_SESSION
    assert slab.packet(len(plan)) == sources[0]

    # And back through each consumer's peer, per packet too.
    inbound = [SrtpContext.inbound(p, k) for p, k in zip(profiles, keys, strict=True)]
    for i, (_, c) in enumerate(plan):
        slab.batch.set_session(i, inbound[c])
    assert slab.batch.unprotect(len(plan)) == len(plan)
    assert [slab.packet(i) for i in range(len(plan))] == [sources[j] for j, _ in plan]


def test_the_batch_keeps_its_sessions_alive() -> None:
    profile = SrtpProfile.AEAD_AES_128_GCM
    ctx = SrtpContext.outbound(profile, key_for(profile))
    alive = weakref.ref(ctx)
    slab = Slab([rtp(1, b"z" * 64)])
    slab.batch.set_session(0, ctx)
    del ctx
    gc.collect()
    assert alive() is not None
    assert slab.batch.protect(1) == 1
    slab.batch.set_session(0, None)
    gc.collect()
    assert alive() is None


# ---- single packets (control plane) ------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_single_packet_helpers(profile: SrtpProfile) -> None:
    key = key_for(profile, 20)
    out, into = SrtpContext.outbound(profile, key), SrtpContext.inbound(profile, key)
    reference = reference_session(profile, key, inbound=False)
    packet = rtp(7, b"hello" * 30)
    protected = _fast.protect_rtp(out, bytearray(packet))
    assert protected == reference.protect(packet)
    assert _fast.unprotect_rtp(into, memoryview(protected)) == packet
    with pytest.raises(SrtpError, match="REPLAY_FAIL") as replay:
        _fast.unprotect_rtp(into, protected)
    assert replay.value.status is SrtpStatus.REPLAY_FAIL
    report = sender_report(3, 1)
    sealed = _fast.protect_rtcp(out, report)
    assert sealed == reference.protect_rtcp(report)
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    with pytest.raises(SrtpError, match="AUTH_FAIL"):
        _fast.unprotect_rtcp(into, bytes(tampered))
    assert _fast.unprotect_rtcp(into, sealed) == report


def test_context_arguments() -> None:
    profile = SrtpProfile.AEAD_AES_256_GCM
    with pytest.raises(ValueError, match="needs 44 bytes"):
        SrtpContext.outbound(profile, bytes(30))
    with pytest.raises(ValueError, match="replay window"):
        SrtpContext.inbound(profile, bytes(44), window_size=32)
    ctx = SrtpContext.inbound(profile, bytes(44))
    assert ctx.profile is profile
    assert isinstance(ctx.session, pylibsrtp.Session)
    assert ctx.pointer == ffi.cast("void *", ctx.session._srtp[0])
    batch = SrtpBatch(bytearray(64), capacity=2)
    with pytest.raises(ValueError, match=r"outside 0\.\.2"):
        batch.protect(3, ctx)
    with pytest.raises(IndexError):
        batch.set(2, 0, 0, 0)
    with pytest.raises(TypeError, match="writable"):
        SrtpBatch(bytes(64))
    assert batch.protect(0, ctx) == 0


# ---- random bytes ------------------------------------------------------------------------------


@given(packets=st.lists(st.binary(max_size=300), min_size=1, max_size=8),
       spare=st.lists(st.integers(0, 40), min_size=8, max_size=8),
       operation=st.sampled_from(["protect", "unprotect", "protect_rtcp", "unprotect_rtcp"]))
def test_random_bytes_never_escape_their_slot(packets: list[bytes], spare: list[int],
                                              operation: str) -> None:
    profile = SrtpProfile.AEAD_AES_128_GCM
    slot = 344
    data = bytearray(b"\xa5" * (slot * len(packets)))
    batch = SrtpBatch(data, capacity=len(packets))
    for i, packet in enumerate(packets):
        data[i * slot : i * slot + len(packet)] = packet
        batch.set(i, i * slot, len(packet), min(slot, len(packet) + spare[i]))
    inbound = operation.startswith("un")
    ctx = (SrtpContext.inbound if inbound else SrtpContext.outbound)(profile, bytes(28))
    before = bytes(data)
    done = getattr(batch, operation)(len(packets), ctx)
    assert 0 <= done <= len(packets)
    for i, packet in enumerate(packets):
        status = batch.status[i]
        capacity = batch.capacities[i]
        # Nothing past the slot's capacity changed, whatever happened inside it.
        start, end = i * slot + capacity, (i + 1) * slot
        assert data[start:end] == before[start:end]
        if status == SrtpStatus.OK:
            assert not inbound  # random bytes never authenticate
            assert len(packet) < batch.lengths[i] <= capacity
        else:
            assert batch.lengths[i] == len(packet)
            assert status in {int(s) for s in SrtpStatus}
