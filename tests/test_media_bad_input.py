"""The media path against a scripted SRTP peer: what valid media looks like on the wire, and
what the worker does with bad input (wrong SRTP keys, replays, lying RTCP lengths, unknown
SSRCs, malformed RTP inside valid SRTP, random datagrams on a selected tuple).

Each test runs on a :class:`Rig`: one router, a sending transport whose peer produces VP8
(with RTX), and a receiving transport whose peer consumes it. Every test checks the transport
counters that account for the bad input, that valid media still reaches the consumer's peer
with continuous sequence numbers afterwards, and (on teardown) that closing the transports gives
every buffer-pool slot back.
"""

from __future__ import annotations

import os
import random
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.reference import classify as demux
from tests.reference import rtcp as ref_rtcp
from tests.reference import rtp as ref_rtp
from tests.srtp_peer import (
    OPUS_PT,
    VP8_PT,
    Received,
    RtpSource,
    SrtpPeer,
    create_router,
    create_transport,
    opus_parameters,
    pools_in_use,
    vp8_parameters,
    vp8_payload,
)
from tests.worker_process import WorkerProcess

Json = dict[str, Any]
WAIT_S = 5.0
VIDEO_SSRC = 0x11110000
VIDEO_RTX_SSRC = 0x11110001
AUDIO_SSRC = 0x22220000
CNAME = "srtp-peer"
UDP_SLOT_BYTES = 2048  # the udpRecv pool's slot: longer datagrams are dropped as truncated


def rtp_of(item: Received) -> ref_rtp.RtpPacket | None:
    kind, data = item
    return ref_rtp.RtpPacket.parse(data) if kind == "rtp" else None


def rtcp_of(item: Received) -> list[ref_rtcp.Packet]:
    kind, data = item
    if kind != "rtcp":
        return []
    packets, error = ref_rtcp.parse_compound(data)
    assert error is None, f"the worker sent malformed RTCP: {error} in {data.hex()}"
    return packets


def wait_until(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def wait_stat(rig: Rig, transport_id: str, key: str, target: int) -> None:
    """Until the transport's ``getStats`` field ``key`` reaches ``target``."""
    wait_until(lambda: rig.stats(transport_id)[key] >= target,
               f"{key} of {transport_id} to reach {target}")


@dataclass
class Rig:
    worker: WorkerProcess
    router_id: str
    caps: Json
    send_tid: str
    recv_tid: str
    sender: SrtpPeer
    receiver: SrtpPeer
    consumer_id: str
    consumer: Json  # the consume answer
    video: RtpSource = field(default_factory=lambda: RtpSource(VIDEO_SSRC, VP8_PT))
    last_seq: int | None = None  # the last consumer sequence number the receiver got
    payloads: dict[int, bytes] = field(default_factory=dict)  # consumer seq → payload
    transports: list[str] = field(default_factory=list)
    peers: list[SrtpPeer] = field(default_factory=list)
    _tag: int = 0

    @property
    def consumer_ssrc(self) -> int:
        return int(self.consumer["rtpParameters"]["encodings"][0]["ssrc"])

    @property
    def consumer_rtx_ssrc(self) -> int:
        return int(self.consumer["rtpParameters"]["encodings"][0]["rtx"]["ssrc"])

    def codec_pt(self, mime_type: str) -> int:
        return int(next(c["payloadType"] for c in self.consumer["rtpParameters"]["codecs"]
                        if c["mimeType"].lower() == mime_type))

    def stats(self, transport_id: str) -> Json:
        stats: Json = self.worker.ok("transport.getStats", transport_id)[0]
        return stats

    def consumer_stats(self) -> Json:
        stats: Json = self.worker.ok("consumer.getStats", self.consumer_id)[0]
        return stats

    def next_tag(self) -> bytes:
        self._tag += 1
        return b"#tag%06d" % self._tag

    def send_frame(self, keyframe: bool = False) -> tuple[bytes, bytes]:
        """One VP8 frame in one packet from the sender; (its tag, the SRTP bytes sent)."""
        tag = self.next_tag()
        protected = self.sender.send_rtp(self.video.packet(vp8_payload(keyframe, tag)))
        return tag, protected

    def expect_forwarded(self, tags: list[bytes], *, settle: float = 0.0) -> list[Received]:
        """Wait until the receiver has every tagged packet; each arrives once, with the
        consumer's SSRC and payload type, numbered right after the last one."""
        missing = set(tags)

        def done(item: Received) -> bool:
            packet = rtp_of(item)
            if packet is not None and packet.ssrc == self.consumer_ssrc:
                missing.difference_update({t for t in missing if packet.payload.endswith(t)})
            return not missing

        seen = self.receiver.wait_for(done, WAIT_S, f"forwarded packets {sorted(missing)}")
        if settle:
            seen += self.receiver.collect(settle)
        media = [p for p in map(rtp_of, seen) if p is not None and p.ssrc == self.consumer_ssrc]
        for tag in tags:
            assert sum(p.payload.endswith(tag) for p in media) == 1, (tag, media)
        vp8_pt = self.codec_pt("video/vp8")
        for packet in media:
            assert packet.payload_type == vp8_pt
            if self.last_seq is not None:
                assert packet.sequence_number == (self.last_seq + 1) & 0xFFFF, (
                    f"sequence {packet.sequence_number} after {self.last_seq}")
            self.last_seq = packet.sequence_number
            self.payloads[packet.sequence_number] = packet.payload
        return seen

    def still_serving(self, frames: int = 3) -> None:
        """Valid media still flows end to end, and the worker answers."""
        tags = [self.send_frame()[0] for _ in range(frames)]
        self.expect_forwarded(tags)
        assert self.worker.ok("worker.dump")["routerIds"] == [self.router_id]

    def drain(self) -> None:
        """Take what both peers have been sent so far (a worker round trip first), so that a
        later wait sees only what comes next."""
        self.worker.ok("worker.dump")
        self.sender.recv(0.0)
        self.receiver.recv(0.0)

    def add_transport(self) -> str:
        tid = create_transport(self.worker, self.router_id)
        self.transports.append(tid)
        return tid

    def add_peer(self, transport_id: str, **options: Any) -> SrtpPeer:
        peer = SrtpPeer.connect(self.worker, transport_id, **options)
        self.peers.append(peer)
        return peer


@pytest.fixture
def rig(worker: WorkerProcess) -> Iterator[Rig]:
    """Sender and receiver connected, VP8 produced and consumed, the first key frame through."""
    router_id, caps = create_router(worker)
    transports = [create_transport(worker, router_id) for _ in range(2)]
    peers: list[SrtpPeer] = []
    try:
        peers.append(SrtpPeer.connect(worker, transports[0]))
        worker.ok("transport.produce", transports[0], {
            "producerId": "video-producer", "kind": "video",
            "rtpParameters": vp8_parameters(VIDEO_SSRC, VIDEO_RTX_SSRC, cname=CNAME),
            "paused": False, "keyFrameRequestDelay": 0})
        peers.append(SrtpPeer.connect(worker, transports[1]))
        consumer = worker.ok("transport.consume", transports[1], {
            "consumerId": "video-consumer", "producerId": "video-producer",
            "rtpCapabilities": caps, "paused": False, "enableRtx": True})
        setup = Rig(worker, router_id, caps, transports[0], transports[1], peers[0], peers[1],
                    "video-consumer", consumer, transports=transports, peers=peers)
        tag, _ = setup.send_frame(keyframe=True)
        setup.expect_forwarded([tag])
        yield setup
    finally:
        for peer in peers:
            peer.close()
        if worker.proc.poll() is None:
            for tid in transports:
                worker.ok("router.closeTransport", router_id, {"transportId": tid})
            assert pools_in_use(worker) == {}
            worker.ok("worker.closeRouter", data={"routerId": router_id})


# -- valid media ---------------------------------------------------------------------------------


def test_media_rtx_and_reports(rig: Rig) -> None:
    """Consumer numbering and payload type, an RTX answer to a NACK, SR and RR."""
    sent: dict[bytes, bytes] = {}
    tags = []
    for i in range(10):
        tag, _ = rig.send_frame(keyframe=i == 5)
        tags.append(tag)
        sent[tag] = vp8_payload(i == 5, tag)
    rig.expect_forwarded(tags)
    assert rig.last_seq is not None
    by_tag = {payload[-len(tags[0]):]: (seq, payload) for seq, payload in rig.payloads.items()}
    for tag in tags:
        assert by_tag[tag][1] == sent[tag]  # the payload is untouched
    stats = rig.stats(rig.send_tid)
    assert stats["rtpPacketsReceived"] == 11 and stats["rtpPacketsForwarded"] == 11

    # The receiver "lost" the fourth packet: a NACK brings it back as RTX.
    lost_seq, lost_payload = by_tag[tags[3]]
    nack = ref_rtcp.GenericNack.from_lost(0x5EED, rig.consumer_ssrc, [lost_seq])
    rig.receiver.send_rtcp(bytes(nack))
    rtx_pt = rig.codec_pt("video/rtx")
    seen = rig.receiver.wait_for(
        lambda item: (p := rtp_of(item)) is not None and p.ssrc == rig.consumer_rtx_ssrc,
        WAIT_S, "the RTX retransmission")
    rtx = rtp_of(seen[-1])
    assert rtx is not None and rtx.payload_type == rtx_pt
    assert rtx.payload[:2] == struct.pack("!H", lost_seq)  # RFC 4588: the original seq first
    assert rtx.payload[2:] == lost_payload
    consumer_stats = rig.consumer_stats()
    assert consumer_stats["nackCount"] == 1 and consumer_stats["packetsRetransmitted"] == 1

    # Both directions of RTCP: SR (+ SDES) to the receiver, RR to the sender, within ~2 s.
    rig.drain()
    sr: ref_rtcp.SenderReport | None = None
    rr: ref_rtcp.ReportBlock | None = None
    deadline = time.monotonic() + 2.5
    while (sr is None or rr is None) and time.monotonic() < deadline:
        for packet in (p for item in rig.receiver.recv(0.05) for p in rtcp_of(item)):
            if isinstance(packet, ref_rtcp.SenderReport) and packet.ssrc == rig.consumer_ssrc:
                sr = packet
        for packet in (p for item in rig.sender.recv(0.05) for p in rtcp_of(item)):
            if isinstance(packet, ref_rtcp.ReceiverReport):
                rr = next((b for b in packet.reports if b.ssrc == VIDEO_SSRC), rr)
    assert sr is not None, "no Sender Report for the consumer within 2.5 s"
    assert rr is not None, "no Receiver Report for the producer within 2.5 s"
    assert sr.packet_count >= 11
    assert rr.packets_lost == 0 and rr.highest_seq & 0xFFFF == (rig.video.seq - 1) & 0xFFFF
    sdes = [p for item in rig.receiver.received for p in rtcp_of(item)
            if isinstance(p, ref_rtcp.SourceDescription)]
    assert any(c.ssrc == rig.consumer_ssrc and c.cname == CNAME.encode()
               for s in sdes for c in s.chunks)
    rig.still_serving()


# -- bad input -----------------------------------------------------------------------------------


def test_wrong_srtp_key_is_dropped_and_counted(rig: Rig) -> None:
    """A peer that protects with garbage keys: every packet fails authentication, nothing is
    forwarded or creates a stream; the same transport then works with the right keys."""
    tid = rig.add_transport()
    liar = rig.add_peer(tid, wrong_keys=True)
    rig.worker.ok("transport.produce", tid, {
        "producerId": "audio-producer", "kind": "audio",
        "rtpParameters": opus_parameters(AUDIO_SSRC, cname=CNAME), "paused": False})
    audio = rig.worker.ok("transport.consume", rig.recv_tid, {
        "consumerId": "audio-consumer", "producerId": "audio-producer",
        "rtpCapabilities": rig.caps, "paused": False})
    audio_ssrc = audio["rtpParameters"]["encodings"][0]["ssrc"]
    source = RtpSource(AUDIO_SSRC, OPUS_PT)
    for i in range(10):
        liar.send_rtp(source.packet(b"opus%d" % i, ts_step=960))
    liar.send_rtcp(bytes(ref_rtcp.ReceiverReport(AUDIO_SSRC)))
    wait_stat(rig, tid, "srtpFailed", 10)
    wait_stat(rig, tid, "srtcpFailed", 1)
    stats = rig.stats(tid)
    assert (stats["srtpFailed"], stats["srtcpFailed"]) == (10, 1)
    assert (stats["rtpPacketsReceived"], stats["rtpPacketsForwarded"]) == (0, 0)
    assert (stats["rtpMalformed"], stats["rtcpPacketsReceived"]) == (0, 0)
    assert rig.worker.ok("producer.getStats", "audio-producer") == []  # no stream was made
    got = rig.receiver.collect(0.3)
    assert not [p for p in map(rtp_of, got) if p is not None and p.ssrc == audio_ssrc]
    rig.still_serving()

    # The failures left no state behind: the right keys work on the same transport.
    liar.use_keys(wrong=False)
    for i in range(3):
        liar.send_rtp(source.packet(b"good%d" % i, ts_step=960))
    rig.receiver.wait_for(
        lambda item: (p := rtp_of(item)) is not None and p.ssrc == audio_ssrc
        and p.payload == b"good2", WAIT_S, "audio sent with the right keys")
    stats = rig.stats(tid)
    assert (stats["srtpFailed"], stats["rtpPacketsReceived"]) == (10, 3)


def test_replayed_srtp_packet_is_dropped_once(rig: Rig) -> None:
    before = rig.stats(rig.send_tid)
    tag, protected = rig.send_frame()
    rig.sender.send_raw(protected)  # the same SRTP packet again
    rig.sender.send_raw(protected)  # and again
    after_tag, _ = rig.send_frame()
    rig.expect_forwarded([tag, after_tag], settle=0.2)  # each exactly once, numbering intact
    stats = rig.stats(rig.send_tid)
    assert stats["srtpFailed"] - before["srtpFailed"] == 2
    assert stats["rtpPacketsReceived"] - before["rtpPacketsReceived"] == 2
    assert stats["rtpPacketsForwarded"] - before["rtpPacketsForwarded"] == 2
    assert stats["rtpMalformed"] == before["rtpMalformed"]
    # SRTCP has its own replay window: a replayed compound is dropped and counted.
    protected_rtcp = rig.sender.send_rtcp(bytes(ref_rtcp.ReceiverReport(VIDEO_SSRC)))
    rig.sender.send_raw(protected_rtcp)
    wait_stat(rig, rig.send_tid, "srtcpFailed", before["srtcpFailed"] + 1)
    stats = rig.stats(rig.send_tid)
    assert stats["srtcpFailed"] - before["srtcpFailed"] == 1
    assert stats["rtcpPacketsReceived"] - before["rtcpPacketsReceived"] == 1
    rig.still_serving()


def _pli_for(ssrc: int) -> Callable[[Received], bool]:
    return lambda item: any(isinstance(p, ref_rtcp.Pli) and p.media_ssrc == ssrc
                            for p in rtcp_of(item))


def lying_rtcp(consumer_ssrc: int) -> list[bytes]:
    """Compound RTCP packets whose lengths or counts do not hold (each at least 8 bytes, the
    SRTCP minimum). None carries a PLI or NACK before its malformed part."""
    rr = bytes(ref_rtcp.ReceiverReport(0x5EED))
    block = bytes(ref_rtcp.ReportBlock(consumer_ssrc, 0, 0, 0, 0, 0, 0))
    return [
        struct.pack("!BBHI", 0x80, ref_rtcp.RR, 0xFFFF, 0x5EED),  # length past the datagram
        rr + struct.pack("!BBHII", 0x81, ref_rtcp.PSFB, 50, 0x5EED, consumer_ssrc),
        rr + struct.pack("!BBH", 0x81, ref_rtcp.RR, 0),  # zero length, one report block
        rr + struct.pack("!BBH", 0x81, ref_rtcp.PSFB, 0),  # a zero-length PLI
        struct.pack("!BBHI", 0x83, ref_rtcp.RR, 7, 0x5EED) + block,  # 3 blocks claimed, 1 there
        struct.pack("!BBHI", 0x82, ref_rtcp.RR, 1, 0x5EED) + block,  # a block past the length
        struct.pack("!BBHIQIII", 0x9F, ref_rtcp.SR, 6, 0x5EED, 0, 0, 0, 0),  # 31 blocks claimed
        rr + struct.pack("!BBHII", 0x81, ref_rtcp.RTPFB, 2, 0x5EED, consumer_ssrc),  # NACK, no FCI
        rr + struct.pack("!BBHI", 0x01, ref_rtcp.RR, 1, 0x5EED),  # version 0
        rr + b"\x80\xc9",  # two stray bytes
        rr + struct.pack("!BBHI", 0xA0, ref_rtcp.RR, 1, 0x5EED),  # padding count 0
    ]


def test_rtcp_with_lying_lengths(rig: Rig) -> None:
    bad = lying_rtcp(rig.consumer_ssrc)
    for compound in bad:
        assert ref_rtcp.parse_compound(compound)[1] is not None  # each really is malformed
    rig.drain()
    before = rig.stats(rig.recv_tid)
    plis_before = rig.consumer_stats()["pliCount"]
    for compound in bad:
        rig.receiver.send_rtcp(compound)
    # Then a valid PLI: the worker asks the sender for a key frame.
    rig.receiver.send_rtcp(bytes(ref_rtcp.ReceiverReport(0x5EED))
                           + bytes(ref_rtcp.Pli(0x5EED, rig.consumer_ssrc)))
    rig.sender.wait_for(_pli_for(VIDEO_SSRC), WAIT_S, "a PLI for the producer")
    stats = rig.stats(rig.recv_tid)
    assert stats["rtcpPacketsReceived"] - before["rtcpPacketsReceived"] == len(bad) + 1
    assert stats["rtcpMalformed"] - before["rtcpMalformed"] == len(bad)
    assert stats["srtcpFailed"] == before["srtcpFailed"]
    assert rig.consumer_stats()["pliCount"] == plis_before + 1

    # What comes before the malformed part of a compound still counts.
    tag, _ = rig.send_frame(keyframe=True)  # answers the PLI
    rig.expect_forwarded([tag])
    rig.drain()
    rig.receiver.send_rtcp(bytes(ref_rtcp.Pli(0x5EED, rig.consumer_ssrc)) + b"\x80\xc9")
    rig.sender.wait_for(_pli_for(VIDEO_SSRC), WAIT_S, "a second PLI for the producer")
    stats = rig.stats(rig.recv_tid)
    assert stats["rtcpMalformed"] - before["rtcpMalformed"] == len(bad) + 1
    assert rig.consumer_stats()["pliCount"] == plis_before + 2
    rig.still_serving()


def random_rtcp(rng: random.Random, ssrcs: list[int]) -> bytes:
    """One to four RTCP headers of any type, count and (often true) length, with SSRCs the
    worker knows in the places feedback and reports name them, and random bytes after."""
    parts = []
    for _ in range(rng.randint(1, 4)):
        packet_type = rng.choice([*range(ref_rtcp.SR, ref_rtcp.XR + 1), rng.randint(192, 223)])
        body = struct.pack("!II", rng.choice(ssrcs), rng.choice(ssrcs))
        body += rng.randbytes(rng.randint(0, 30) * 4)
        words = len(body) // 4 if rng.random() < 0.7 else rng.randint(0, 0xFFFF)
        first = 0x80 | rng.randint(0, 31) | (0x20 if rng.random() < 0.05 else 0)
        parts.append(struct.pack("!BBH", first, packet_type, words) + body)
    return b"".join(parts)


def test_random_rtcp_inside_valid_srtcp(rig: Rig) -> None:
    """Seeded random compounds, SRTCP-protected with the right keys, from both peers: each is
    received and counted, none stops the worker or the media."""
    rng = random.Random(5104)
    ssrcs = [rig.consumer_ssrc, rig.consumer_rtx_ssrc, VIDEO_SSRC, VIDEO_RTX_SSRC, 0, 0x5EED]
    for peer, tid in ((rig.sender, rig.send_tid), (rig.receiver, rig.recv_tid)):
        before = rig.stats(tid)["rtcpPacketsReceived"]
        for start in range(0, 300, 50):
            for _ in range(50):
                peer.send_rtcp(random_rtcp(rng, ssrcs))
            wait_stat(rig, tid, "rtcpPacketsReceived", before + start + 50)
        stats = rig.stats(tid)
        assert stats["rtcpPacketsReceived"] - before == 300
        assert stats["srtcpFailed"] == 0
    rig.still_serving()


def test_unknown_ssrc_and_malformed_rtp_are_dropped(rig: Rig) -> None:
    before = rig.stats(rig.send_tid)
    stranger = RtpSource(0x0BAD0BAD, VP8_PT, mid=None)
    for i in range(5):
        rig.sender.send_rtp(stranger.packet(vp8_payload(i == 0, b"stranger")))
    # Valid SRTP around RTP that does not parse: padding count 0, padding past the payload,
    # a one-byte extension element running past its block.
    malformed = [
        struct.pack("!BBHII", 0xA0, VP8_PT, 7, 0, 0x0BAD0BAE) + b"payload\x00",
        struct.pack("!BBHII", 0xA0, VP8_PT, 8, 0, 0x0BAD0BAE) + b"payload\xff",
        struct.pack("!BBHIIHH", 0x90, VP8_PT, 9, 0, 0x0BAD0BAE, ref_rtp.ONE_BYTE_PROFILE, 1)
        + bytes([0x13, 1, 2, 3]) + b"payload",
    ]
    for packet in malformed:
        assert ref_rtp.parse_reason(packet) != ref_rtp.Reason.OK
        rig.sender.send_rtp(packet)
    tag, _ = rig.send_frame()
    rig.expect_forwarded([tag], settle=0.2)  # and nothing of the stranger's
    stats = rig.stats(rig.send_tid)
    assert stats["rtpUnknownSsrc"] - before["rtpUnknownSsrc"] == 5
    assert stats["rtpMalformed"] - before["rtpMalformed"] == len(malformed)
    assert stats["rtpPacketsReceived"] - before["rtpPacketsReceived"] == 6  # 5 + the tagged one
    assert stats["rtpPacketsForwarded"] - before["rtpPacketsForwarded"] == 1
    assert stats["srtpFailed"] == before["srtpFailed"]
    listener = rig.worker.ok("transport.dump", rig.send_tid)["rtpListener"]
    assert {entry["key"] for entry in listener["ssrcTable"]} == {VIDEO_SSRC, VIDEO_RTX_SSRC}
    rig.still_serving()


def garbage(seed: int, count: int) -> list[bytes]:
    """Random datagrams, a quarter of them shaped like STUN, DTLS, RTP or RTCP headers."""
    rng = random.Random(seed)
    out: list[bytes] = []
    for i in range(count):
        size = rng.randint(UDP_SLOT_BYTES + 1, 9000) if i % 25 == 24 else rng.randint(0, 1400)
        data = bytearray(rng.randbytes(size))
        shape = i % 8
        if shape == 1 and size >= 4:  # RTP or RTCP header
            data[0] = 0x80 | (data[0] & 0x3F)
        elif shape == 2 and size >= 13:  # one whole DTLS record: application data or alert
            data[0] = rng.choice((21, 23))
            data[1:3] = b"\xfe\xfd"
            data[11:13] = struct.pack("!H", size - 13)
        elif shape == 3 and size >= 20:  # a STUN header with no magic cookie
            data[0] = data[0] & 0x01
            data[4:8] = b"\x00\x00\x00\x00"
        out.append(bytes(data))
    return out


def test_garbage_datagrams_on_the_selected_tuple(rig: Rig) -> None:
    datagrams = garbage(seed=20240605, count=400)
    kinds = [demux.classify(d) for d in datagrams]
    truncated = [len(d) > UDP_SLOT_BYTES for d in datagrams]
    expect = {name: sum(k == kind and not t for k, t in zip(kinds, truncated, strict=True))
              for name, kind in (("other", demux.OTHER), ("stun", demux.STUN),
                                 ("dtls", demux.DTLS), ("rtp", demux.RTP),
                                 ("rtcp", demux.RTCP))}
    assert min(expect.values()) >= 10, expect  # every path is exercised
    delivered_bytes = sum(len(d) for d, k, t in zip(datagrams, kinds, truncated, strict=True)
                          if not t and k != demux.STUN)
    before = rig.stats(rig.send_tid)
    dump_before = rig.worker.ok("transport.dump", rig.send_tid)
    delivered = 0
    for start in range(0, len(datagrams), 40):  # 40 at a time: no drop in the kernel's buffer
        for data, kind, cut in zip(datagrams[start:start + 40], kinds[start:start + 40],
                                   truncated[start:start + 40], strict=True):
            rig.sender.send_raw(data)
            delivered += 0 if cut or kind == demux.STUN else len(data)
        wait_stat(rig, rig.send_tid, "bytesReceived", before["bytesReceived"] + delivered)
    tag, sentinel = rig.send_frame()
    rig.expect_forwarded([tag])  # everything sent before it has been handled
    stats = rig.stats(rig.send_tid)
    dump = rig.worker.ok("transport.dump", rig.send_tid)
    listener = dump["listenerCounters"]
    listener_before = dump_before["listenerCounters"]
    assert (dump["dtlsState"], dump["iceState"]) == ("connected", "completed")
    assert listener["droppedTruncated"] - listener_before["droppedTruncated"] == sum(truncated)
    assert (listener["droppedMalformedStun"] - listener_before["droppedMalformedStun"]
            == expect["stun"])
    assert delivered == delivered_bytes
    assert stats["bytesReceived"] - before["bytesReceived"] == delivered_bytes + len(sentinel)
    assert stats["packetsIgnored"] - before["packetsIgnored"] == expect["other"]
    assert stats["srtpFailed"] - before["srtpFailed"] == expect["rtp"]
    assert stats["srtcpFailed"] - before["srtcpFailed"] == expect["rtcp"]
    assert stats["rtpPacketsReceived"] - before["rtpPacketsReceived"] == 1  # the sentinel
    assert stats["rtcpPacketsReceived"] == before["rtcpPacketsReceived"]
    rig.still_serving(frames=5)
    # The receiving side is as healthy: its peer's valid RTCP still gets through.
    rig.drain()
    rig.receiver.send_rtcp(bytes(ref_rtcp.Pli(0x5EED, rig.consumer_ssrc)))
    rig.sender.wait_for(_pli_for(VIDEO_SSRC), WAIT_S, "a PLI after the garbage")


def test_rig_teardown_returns_every_slot(worker: WorkerProcess) -> None:
    """The rig's own teardown contract, checked once by hand: with media flowing and packets
    held for retransmission, closing both transports gives every slot back."""
    router_id, caps = create_router(worker)
    tids = [create_transport(worker, router_id) for _ in range(2)]
    sender = SrtpPeer.connect(worker, tids[0])
    receiver = SrtpPeer.connect(worker, tids[1])
    try:
        worker.ok("transport.produce", tids[0], {
            "producerId": "p", "kind": "video", "paused": False,
            "rtpParameters": vp8_parameters(VIDEO_SSRC, VIDEO_RTX_SSRC)})
        worker.ok("transport.consume", tids[1], {"consumerId": "c", "producerId": "p",
                                                "rtpCapabilities": caps, "paused": False})
        source = RtpSource(VIDEO_SSRC, VP8_PT)
        for i in range(20):
            sender.send_rtp(source.packet(vp8_payload(i == 0, os.urandom(200) + b"#%d" % i)))
        receiver.wait_for(lambda item: (p := rtp_of(item)) is not None
                          and p.payload.endswith(b"#19"), WAIT_S, "the 20th packet")
        assert pools_in_use(worker).get("rtpPacket", 0) >= 20  # held for NACKs
    finally:
        sender.close()
        receiver.close()
    for tid in tids:
        worker.ok("router.closeTransport", router_id, {"transportId": tid})
    assert pools_in_use(worker) == {}
