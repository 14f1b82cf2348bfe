"""Media routing through the worker against scripted SRTP peers (:mod:`tests.srtp_peer`):

* ICE-TCP: a producer and consumers reached over RFC 4571 framed connections, next to UDP ones
  (the worker copies TCP frames into its receive slots, and frames the fan-out's outputs for
  TCP tuples itself);
* the RTP listener: SSRCs learned from the MID or RID header extension, and the produce and
  consume requests it refuses;
* RTCP: PLI or FIR towards the producer by what it negotiated, merged by
  ``keyFrameRequestDelay``; NACKs generated for the producer's losses, retried, and repaired by
  its RTX; Sender Reports answered by LSR in our Receiver Reports and by ``score`` events;
* pause and resume, of the consumer and of the producer: nothing forwarded while paused, a key
  frame requested on resume and forwarded first, numbering continuous.

Every wait is bounded; the fixture closes everything and checks that every pool slot is back.
"""

from __future__ import annotations

import itertools
import struct
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.reference import rtcp as ref_rtcp
from tests.reference import rtp as ref_rtp
from tests.srtp_peer import (
    MID_EXT_ID,
    MID_URI,
    RTX_PT,
    VP8_PT,
    Received,
    RtpSource,
    SrtpPeer,
    Watch,
    create_router,
    create_transport,
    opus_parameters,
    pools_in_use,
    rtcp_of,
    rtp_of,
    vp8_parameters,
    vp8_payload,
)
from tests.worker_process import WorkerProcess

Json = dict[str, Any]
WAIT_S = 5.0
VIDEO_SSRC = 0x11110000
VIDEO_RTX_SSRC = 0x11110001
AUDIO_SSRC = 0x22220000
RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
RID_EXT_ID = 10
PEER_SSRC = 0x5EED  # the sender SSRC of the consumer peer's feedback
TAG_BYTES = 7
_tags = itertools.count(1)


def tag_of(payload: bytes) -> bytes:
    return payload[-TAG_BYTES:]


def is_keyframe(payload: bytes) -> bool:
    """The VP8 frame header's P bit (the payload descriptor is one byte here)."""
    return payload[1] & 0x01 == 0


def key_frame_requests(items: list[Received], ssrc: int) -> list[ref_rtcp.Pli | ref_rtcp.Fir]:
    out: list[ref_rtcp.Pli | ref_rtcp.Fir] = []
    for packet in (p for item in items for p in rtcp_of(item)):
        if (isinstance(packet, ref_rtcp.Pli) and packet.media_ssrc == ssrc) or (
                isinstance(packet, ref_rtcp.Fir) and any(e[0] == ssrc for e in packet.entries)):
            out.append(packet)
    return out


def nacked(items: list[Received], ssrc: int) -> list[int]:
    """Every sequence number NACKed for ``ssrc`` in ``items``, in order, repeats kept."""
    return [seq for item in items for p in rtcp_of(item)
            if isinstance(p, ref_rtcp.GenericNack) and p.media_ssrc == ssrc for seq in p.lost]


@dataclass
class Source:
    """A producing peer's VP8 stream: each frame one packet with a unique tag at its end."""

    peer: SrtpPeer
    rtp: RtpSource
    payloads: dict[bytes, bytes] = field(default_factory=dict)  # tag → the RTP payload

    def build(self, keyframe: bool = False, filler: int = 0) -> tuple[bytes, int, bytes]:
        """The next packet, not sent: (tag, seq, plain packet)."""
        tag = b"#%06d" % next(_tags)
        seq = self.rtp.seq
        payload = vp8_payload(keyframe, bytes(range(256)) * (filler // 256)
                              + bytes(filler % 256) + tag)
        self.payloads[tag] = payload
        return tag, seq, self.rtp.packet(payload)

    def frame(self, keyframe: bool = False, filler: int = 0) -> bytes:
        tag, _, packet = self.build(keyframe, filler)
        self.peer.send_rtp(packet)
        return tag

    def frames(self, count: int, filler: int = 0) -> list[bytes]:
        return [self.frame(filler=filler) for _ in range(count)]


@dataclass
class Sink:
    """A consumer as its peer sees it."""

    watch: Watch
    answer: Json  # the consume answer
    last_seq: int | None = None
    by_tag: dict[bytes, ref_rtp.RtpPacket] = field(default_factory=dict)

    @property
    def ssrc(self) -> int:
        return int(self.answer["rtpParameters"]["encodings"][0]["ssrc"])

    def pt(self, mime_type: str) -> int:
        return int(next(c["payloadType"] for c in self.answer["rtpParameters"]["codecs"]
                        if c["mimeType"].lower() == mime_type))

    def media(self, items: list[Received]) -> list[ref_rtp.RtpPacket]:
        return [p for p in map(rtp_of, items) if p is not None and p.ssrc == self.ssrc]

    def expect(self, tags: list[bytes], *, in_order: bool = True,
               settle: float = 0.0) -> list[ref_rtp.RtpPacket]:
        """Until every tagged packet came, each once, with the consumer's SSRC and payload type
        and (``in_order``) numbered right after the last one."""
        missing = set(tags)

        def done(item: Received) -> bool:
            for packet in self.media([item]):
                missing.discard(tag_of(packet.payload))
            return not missing

        items = self.watch.until(done, WAIT_S, f"{len(missing)} of {len(tags)} packets "
                                               f"on consumer SSRC {self.ssrc:#x}")
        if settle:
            items += self.watch.during(settle)
        media = self.media(items)
        counts = Counter(tag_of(p.payload) for p in media)
        assert all(counts[tag] == 1 for tag in tags), f"a packet twice or more: {counts}"
        vp8_pt = self.pt("video/vp8")
        for packet in media:
            assert packet.payload_type == vp8_pt
            if in_order:
                if self.last_seq is not None:
                    assert packet.sequence_number == (self.last_seq + 1) & 0xFFFF, (
                        f"sequence {packet.sequence_number} after {self.last_seq}")
                self.last_seq = packet.sequence_number
            self.by_tag[tag_of(packet.payload)] = packet
        return media

    def expect_nothing(self, duration: float) -> None:
        assert self.media(self.watch.during(duration)) == []


class Room:
    """One router, its transports and their peers; :meth:`close` checks every slot is back."""

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker
        self.router_id, self.caps = create_router(worker)
        self.transports: list[str] = []
        self.peers: list[SrtpPeer] = []

    def endpoint(self, protocol: str = "udp",
                 listen: tuple[str, ...] | None = None) -> tuple[str, SrtpPeer]:
        tid = create_transport(self.worker, self.router_id, listen or (protocol,))
        self.transports.append(tid)
        peer = SrtpPeer.connect(self.worker, tid, protocol=protocol)
        self.peers.append(peer)
        return tid, peer

    def produce(self, tid: str, producer_id: str, params: Json, kind: str = "video",
                **options: Any) -> None:
        self.worker.ok("transport.produce", tid, {
            "producerId": producer_id, "kind": kind, "rtpParameters": params,
            "paused": False, **options})

    def consume(self, tid: str, peer: SrtpPeer, consumer_id: str, producer_id: str,
                **options: Any) -> Sink:
        watch = Watch(peer)
        answer = self.worker.ok("transport.consume", tid, {
            "consumerId": consumer_id, "producerId": producer_id,
            "rtpCapabilities": self.caps, "paused": False, **options})
        return Sink(watch, answer)

    def refused(self, method: str, handler_id: str, data: Json) -> tuple[str, str]:
        response = self.worker.request(method, handler_id, data)
        assert response["accepted"] is False, response
        return response["error"], response["reason"]

    def close(self) -> None:
        for peer in self.peers:
            peer.close()
        for tid in self.transports:
            self.worker.ok("router.closeTransport", self.router_id, {"transportId": tid})
        self.transports.clear()
        assert pools_in_use(self.worker) == {}
        self.worker.ok("worker.closeRouter", data={"routerId": self.router_id})


@pytest.fixture
def room(worker: WorkerProcess) -> Iterator[Room]:
    setup = Room(worker)
    try:
        yield setup
    finally:
        if worker.proc.poll() is None:
            setup.close()
        else:
            for peer in setup.peers:
                peer.close()


@dataclass
class Video:
    """A VP8 producer on one endpoint and a consumer on another, the first key frame through."""

    room: Room
    source: Source
    sink: Sink
    requests: Watch  # what the producing peer receives (RTCP)

    def key_frame(self) -> None:
        """Send a key frame and wait for the consumer's peer to get it."""
        self.sink.expect([self.source.frame(keyframe=True)])


def video(room: Room, *, params: Json | None = None, consumer_paused: bool = False,
          **options: Any) -> Video:
    send_tid, sender = room.endpoint()
    requests = Watch(sender)
    room.produce(send_tid, "video", params or vp8_parameters(VIDEO_SSRC, VIDEO_RTX_SSRC),
                 **options)
    recv_tid, receiver = room.endpoint()
    sink = room.consume(recv_tid, receiver, "video-consumer", "video", paused=consumer_paused)
    setup = Video(room, Source(sender, RtpSource(VIDEO_SSRC, VP8_PT)), sink, requests)
    if not consumer_paused:
        setup.key_frame()
    return setup


def with_feedback(params: Json, feedback: list[tuple[str, str]]) -> Json:
    params["codecs"][0]["rtcpFeedback"] = [{"type": t, "parameter": p} for t, p in feedback]
    return params


def wait_event(worker: WorkerProcess, handler_id: str, event: str,
               timeout: float = WAIT_S) -> Any:
    """The data of the first notification ``event`` from ``handler_id`` (taken from the list)."""
    deadline = time.monotonic() + timeout
    while True:
        for i, message in enumerate(worker.notifications):
            if message["handlerId"] == handler_id and message["event"] == event:
                del worker.notifications[i]
                return message.get("data")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {event!r} from {handler_id} within {timeout} s")
        pump(worker, 0.05)


def pump(worker: WorkerProcess, timeout: float) -> None:
    """Read what the worker sends for up to ``timeout``, keeping notifications."""
    try:
        message = worker.read_message(timeout=timeout)
    except AssertionError:
        assert worker.proc.poll() is None, "the worker exited"
        return
    worker._keep(message)


def events(worker: WorkerProcess, handler_id: str) -> list[tuple[str, Any]]:
    """The notifications from ``handler_id`` so far (after a round trip), taken from the list."""
    worker.ok("worker.dump")
    mine = [m for m in worker.notifications if m["handlerId"] == handler_id]
    worker.notifications = [m for m in worker.notifications if m["handlerId"] != handler_id]
    return [(m["event"], m.get("data")) for m in mine]


# -- ICE-TCP -------------------------------------------------------------------------------------


@pytest.mark.parametrize("producer_protocol", ["tcp", "udp"])
def test_ice_tcp_producer_and_consumers(room: Room, producer_protocol: str) -> None:
    """A producer (over TCP or UDP) consumed over TCP and over UDP at once: every packet reaches
    both with their own SSRC and continuous numbering; RTCP and RTX travel over TCP too."""
    worker = room.worker
    send_tid, sender = room.endpoint(producer_protocol, listen=("udp", "tcp"))
    tcp_tid, tcp_peer = room.endpoint("tcp")
    udp_tid, udp_peer = room.endpoint("udp")
    for tid, protocol in ((send_tid, producer_protocol), (tcp_tid, "tcp"), (udp_tid, "udp")):
        dump = worker.ok("transport.dump", tid)
        assert dump["iceSelectedTuple"]["protocol"] == protocol
        assert dump["counters"]["tcpConnections"] == (protocol == "tcp")
    requests = Watch(sender)
    room.produce(send_tid, "video", vp8_parameters(VIDEO_SSRC, VIDEO_RTX_SSRC))
    sinks = [room.consume(tcp_tid, tcp_peer, "over-tcp", "video"),
             room.consume(udp_tid, udp_peer, "over-udp", "video")]
    assert sinks[0].ssrc != sinks[1].ssrc
    source = Source(sender, RtpSource(VIDEO_SSRC, VP8_PT))
    first = source.frame(keyframe=True)
    for sink in sinks:
        sink.expect([first])

    # Bursts of large packets: several frames per TCP segment and a frame split across reads.
    tags: list[bytes] = []
    for _ in range(4):
        burst = source.frames(25, filler=1000)
        tags += burst
        for sink in sinks:
            sink.expect(burst)
    for sink in sinks:
        packets = [sink.by_tag[t] for t in [first, *tags]]
        assert [p.sequence_number for p in packets] == [
            (packets[0].sequence_number + i) & 0xFFFF for i in range(len(packets))]
        assert all(p.payload == source.payloads[tag_of(p.payload)] for p in packets)
    stats = worker.ok("transport.getStats", send_tid)[0]
    assert stats["rtpPacketsReceived"] == 101
    assert stats["rtpPacketsForwarded"] == 202
    assert stats["rtpSendDropped"] == 0 and stats["srtpFailed"] == 0

    # RTCP over TCP: the TCP consumer's PLI reaches the producer, its NACK brings RTX back.
    tcp_sink = sinks[0]
    tcp_peer.send_rtcp(bytes(ref_rtcp.Pli(PEER_SSRC, tcp_sink.ssrc)))
    requests.until(lambda item: bool(key_frame_requests([item], VIDEO_SSRC)), WAIT_S,
                   "the PLI for the producer")
    lost = tcp_sink.by_tag[tags[-3]]  # (the store keeps 2 s of RTP time: a recent one)
    tcp_peer.send_rtcp(bytes(ref_rtcp.GenericNack.from_lost(PEER_SSRC, tcp_sink.ssrc,
                                                           [lost.sequence_number])))
    rtx_ssrc = tcp_sink.answer["rtpParameters"]["encodings"][0]["rtx"]["ssrc"]
    items = tcp_sink.watch.until(lambda item: (p := rtp_of(item)) is not None
                                 and p.ssrc == rtx_ssrc, WAIT_S, "the RTX packet over TCP")
    rtx = rtp_of(items[-1])
    assert rtx is not None and rtx.payload_type == tcp_sink.pt("video/rtx")
    assert rtx.payload == struct.pack("!H", lost.sequence_number) + lost.payload
    assert worker.ok("consumer.getStats", "over-tcp")[0]["packetsRetransmitted"] == 1

    # Closing the transports closes the connections and gives every slot back.
    links = [peer.link for peer in (sender, tcp_peer, udp_peer)
             if peer.link is not None and peer.link.framed]
    assert len(links) == (2 if producer_protocol == "tcp" else 1)
    for tid in list(room.transports):
        worker.ok("router.closeTransport", room.router_id, {"transportId": tid})
        room.transports.remove(tid)
    deadline = time.monotonic() + WAIT_S
    for link in links:
        while link.read(max(deadline - time.monotonic(), 0.0)) is not None:
            pass  # the DTLS close alert, RTCP sent before the close
        assert link.eof, "the worker did not close its ICE-TCP connection"
    assert pools_in_use(worker) == {}


# -- the RTP listener ----------------------------------------------------------------------------


def plain_vp8(*, mid: str | None, encoding: Json, extensions: list[tuple[str, int]]) -> Json:
    """VP8 without RTX: one encoding as given, the header extensions (uri, id) as given."""
    params = vp8_parameters(0, 0)
    params["codecs"] = params["codecs"][:1]
    params["encodings"] = [encoding]
    params["headerExtensions"] = [{"uri": uri, "id": ext_id, "encrypt": False, "parameters": {}}
                                  for uri, ext_id in extensions]
    if mid is None:
        del params["mid"]
    else:
        params["mid"] = mid
    return params


def test_ssrc_learned_from_mid_then_rid(room: Room) -> None:
    """Producers without an SSRC: one found by the MID extension of its first packet, one (no
    MID) by its RID extension; both SSRCs then route without any extension."""
    worker = room.worker
    send_tid, sender = room.endpoint()
    recv_tid, receiver = room.endpoint()
    extensions = [(MID_URI, MID_EXT_ID), (RID_URI, RID_EXT_ID)]
    room.produce(send_tid, "by-mid", plain_vp8(mid="v", encoding={}, extensions=extensions))
    room.produce(send_tid, "by-rid",
                 plain_vp8(mid=None, encoding={"rid": "hi"}, extensions=extensions))
    listener = worker.ok("transport.dump", send_tid)["rtpListener"]
    assert listener["ssrcTable"] == []
    assert listener["midTable"] == [{"key": "v", "value": "by-mid"}]
    assert listener["ridTable"] == [{"key": "hi", "value": "by-rid"}]
    sinks = {pid: room.consume(recv_tid, receiver, f"{pid}-consumer", pid)
             for pid in ("by-mid", "by-rid")}
    sources = {
        "by-mid": Source(sender, RtpSource(0x33330000, VP8_PT, mid="v")),
        "by-rid": Source(sender, RtpSource(0x44440000, VP8_PT, mid=None,
                                           extensions=((RID_EXT_ID, b"hi"),))),
    }
    # A packet whose MID and RID no producer has is dropped and counted.
    stranger = Source(sender, RtpSource(0x55550000, VP8_PT, mid="zz",
                                        extensions=((RID_EXT_ID, b"lo"),)))
    stranger.frame(keyframe=True)
    for pid, source in sources.items():
        sinks[pid].expect([source.frame(keyframe=True), *source.frames(3)])
    listener = worker.ok("transport.dump", send_tid)["rtpListener"]
    assert sorted((e["key"], e["value"]) for e in listener["ssrcTable"]) == [
        (0x33330000, "by-mid"), (0x44440000, "by-rid")]
    for pid, ssrc in (("by-mid", 0x33330000), ("by-rid", 0x44440000)):
        streams = worker.ok("producer.dump", pid)["rtpStreams"]
        assert [s["params"]["ssrc"] for s in streams] == [ssrc]
        assert worker.ok("producer.getStats", pid)[0]["packetCount"] == 4

    # From now on the SSRC alone is enough.
    for pid, source in sources.items():
        source.rtp.mid = None
        source.rtp.extensions = ()
        sinks[pid].expect(source.frames(3))
    stats = worker.ok("transport.getStats", send_tid)[0]
    assert stats["rtpUnknownSsrc"] == 1
    assert stats["rtpPacketsReceived"] == 15 and stats["rtpPacketsForwarded"] == 14


def test_produce_and_consume_refusals(room: Room) -> None:
    """What the listener and the router refuse; a refused produce registers nothing."""
    worker = room.worker
    tid, _ = room.endpoint()
    other_tid, _ = room.endpoint()
    room.produce(tid, "first", vp8_parameters(VIDEO_SSRC, VIDEO_RTX_SSRC, mid="0"))
    before = worker.ok("transport.dump", tid)["rtpListener"]
    for params, what in (
        (vp8_parameters(VIDEO_SSRC, 0x0BAD, mid="1"), "ssrc"),  # the media SSRC
        (vp8_parameters(0x0BAD, VIDEO_RTX_SSRC, mid="1"), "ssrc"),  # the RTX SSRC
        (vp8_parameters(0x0BAD, 0x0BAE, mid="0"), "MID"),
    ):
        error, reason = room.refused("transport.produce", tid, {
            "producerId": "second", "kind": "video", "rtpParameters": params})
        assert error == "Error" and what in reason, reason
    error, reason = room.refused("transport.produce", tid, {
        "producerId": "second", "kind": "video",
        "rtpParameters": plain_vp8(mid="1", encoding={"rid": "r"}, extensions=[])
        | {"encodings": [{"ssrc": 0x0BAD}, {"ssrc": 0x0BAE}]}})
    assert error == "UnsupportedError" and "not implemented" in reason, reason
    assert worker.ok("transport.dump", tid)["rtpListener"] == before
    assert worker.ok("transport.dump", tid)["producerIds"] == ["first"]
    # Nothing of the refused ones stayed: the id is free, and the same SSRC and MID are fine
    # on another transport.
    room.produce(tid, "second", vp8_parameters(0x0BAD, 0x0BAE, mid="1"))
    room.produce(other_tid, "elsewhere", vp8_parameters(VIDEO_SSRC, VIDEO_RTX_SSRC, mid="0"))
    room.produce(other_tid, "audio", opus_parameters(AUDIO_SSRC, mid="1"), kind="audio")

    error, reason = room.refused("transport.consume", other_tid, {
        "consumerId": "c", "producerId": "nobody", "rtpCapabilities": room.caps})
    assert error == "Error" and "nobody" in reason, reason
    audio_only = {"codecs": [c for c in room.caps["codecs"] if c["kind"] == "audio"],
                  "headerExtensions": room.caps["headerExtensions"]}
    assert audio_only["codecs"] and audio_only["codecs"][0]["mimeType"] == "audio/opus"
    assert worker.ok("router.canConsume", room.router_id,
                     {"producerId": "first", "rtpCapabilities": room.caps}) is True
    assert worker.ok("router.canConsume", room.router_id,
                     {"producerId": "first", "rtpCapabilities": audio_only}) is False
    assert worker.ok("router.canConsume", room.router_id,
                     {"producerId": "audio", "rtpCapabilities": audio_only}) is True
    error, _ = room.refused("transport.consume", other_tid, {
        "consumerId": "c", "producerId": "first", "rtpCapabilities": audio_only})
    assert error == "UnsupportedError"
    assert worker.ok("transport.dump", other_tid)["consumerIds"] == []


def test_consume_with_a_given_mid(room: Room) -> None:
    """A consumer made with ``mid`` announces it and writes it into every packet; consumers
    without one are numbered from "0" regardless."""
    setup = video(room)
    worker = room.worker
    recv_tid = room.transports[1]
    given = room.consume(recv_tid, setup.sink.watch.peer, "with-mid", "video", mid="screen")
    auto = room.consume(recv_tid, setup.sink.watch.peer, "auto-mid", "video")
    assert setup.sink.answer["rtpParameters"]["mid"] == "0"
    assert given.answer["rtpParameters"]["mid"] == "screen"
    assert auto.answer["rtpParameters"]["mid"] == "1"
    assert worker.ok("consumer.dump", "with-mid")["rtpStreams"][0]["params"]["mid"] == "screen"
    tags = [setup.source.frame(keyframe=True), *setup.source.frames(2)]
    for sink, mid in ((setup.sink, b"0"), (given, b"screen"), (auto, b"1")):
        ext_id = next(e["id"] for e in sink.answer["rtpParameters"]["headerExtensions"]
                      if e["uri"] == MID_URI)
        for packet in sink.expect(tags):
            assert dict(packet.extensions)[ext_id] == mid


# -- RTCP: key-frame requests --------------------------------------------------------------------


@pytest.mark.parametrize("negotiated", ["pli", "fir"])
def test_consumer_pli_reaches_the_producer_as_negotiated(room: Room, negotiated: str) -> None:
    """The consumer peer's PLI (or FIR) becomes a PLI when the producer negotiated ``nack pli``,
    else a FIR whose sequence number grows by one per request."""
    feedback = [("nack", ""), ("nack", "pli"), ("ccm", "fir")] if negotiated == "pli" else [
        ("nack", ""), ("ccm", "fir")]
    params = with_feedback(vp8_parameters(VIDEO_SSRC, VIDEO_RTX_SSRC), feedback)
    setup = video(room, params=params, keyFrameRequestDelay=0)
    seen = setup.requests.during(0.0)  # the request made when the stream appeared
    sink = setup.sink
    feedback_from_peer = [bytes(ref_rtcp.Pli(PEER_SSRC, sink.ssrc)),
                          bytes(ref_rtcp.Pli(PEER_SSRC, sink.ssrc)),
                          bytes(ref_rtcp.Fir(PEER_SSRC, 0, [(sink.ssrc, 1)]))]
    for compound in feedback_from_peer:
        count = len(key_frame_requests(seen, VIDEO_SSRC))
        sink.watch.peer.send_rtcp(compound)
        seen += setup.requests.until(
            lambda item: bool(key_frame_requests([item], VIDEO_SSRC)), WAIT_S,
            "a key-frame request for the producer")
        assert len(key_frame_requests(seen, VIDEO_SSRC)) == count + 1
        setup.key_frame()  # answers it
    seen += setup.requests.during(0.3)  # and no more come
    requests = key_frame_requests(seen, VIDEO_SSRC)
    expected_type = ref_rtcp.Pli if negotiated == "pli" else ref_rtcp.Fir
    assert all(isinstance(r, expected_type) for r in requests), requests
    assert len(requests) == 4, requests  # the stream's first, then one per request
    if negotiated == "fir":
        assert [entry for r in requests if isinstance(r, ref_rtcp.Fir)
                for entry in r.entries] == [(VIDEO_SSRC, n) for n in range(1, 5)]
    stats = room.worker.ok("producer.getStats", "video")[0]
    assert (stats["pliCount"], stats["firCount"]) == ((4, 0) if negotiated == "pli" else (0, 4))
    consumer_stats = room.worker.ok("consumer.getStats", "video-consumer")[0]
    assert (consumer_stats["pliCount"], consumer_stats["firCount"]) == (2, 1)


@pytest.mark.parametrize("delay_ms", [0, 1000])
def test_key_frame_request_delay_merges_requests(room: Room, delay_ms: int) -> None:
    """Four PLIs, each answered by a key frame: with no delay, four requests; with
    keyFrameRequestDelay=1000, one at once and one more when the window closes."""
    setup = video(room, keyFrameRequestDelay=delay_ms)
    sink = setup.sink
    if delay_ms:
        time.sleep(1.2)  # the window the stream's first request opened closes
    setup.requests.during(0.0)
    start = time.monotonic()
    times: list[float] = []
    for _ in range(4):
        sink.watch.peer.send_rtcp(bytes(ref_rtcp.Pli(PEER_SSRC, sink.ssrc)))
        if delay_ms == 0 or not times:
            setup.requests.until(lambda item: bool(key_frame_requests([item], VIDEO_SSRC)),
                                 WAIT_S, "a PLI for the producer")
            times.append(time.monotonic() - start)
        setup.key_frame()
    loop_s = time.monotonic() - start
    if delay_ms == 0:
        assert len(times) == 4
        assert not key_frame_requests(setup.requests.during(1.3), VIDEO_SSRC)
    else:
        assert loop_s < 0.9, f"the four PLIs took {loop_s:.2f} s: the test needs them in 1 s"
        early = setup.requests.during(0.95 - (time.monotonic() - start))
        assert not key_frame_requests(early, VIDEO_SSRC), "a request inside the window"
        setup.requests.until(lambda item: bool(key_frame_requests([item], VIDEO_SSRC)),
                             2.5, "the merged request when the window closes")
        replay_s = time.monotonic() - start
        assert 0.95 <= replay_s <= 3.0, replay_s
        setup.key_frame()
        assert not key_frame_requests(setup.requests.during(1.3), VIDEO_SSRC)
    stats = room.worker.ok("producer.getStats", "video")[0]
    assert stats["pliCount"] == (5 if delay_ms == 0 else 3)  # with the stream's first one
    assert room.worker.ok("consumer.getStats", "video-consumer")[0]["pliCount"] == 4


# -- RTCP: NACKs towards the producer and RTX repair ---------------------------------------------


def test_producer_loss_is_nacked_and_repaired_by_rtx(room: Room) -> None:
    setup = video(room)
    source, sink = setup.source, setup.sink
    sink.expect(source.frames(3))
    assert sink.last_seq is not None
    before_gap = sink.last_seq
    lost_tag, lost_seq, lost_packet = source.build()  # never sent
    sent_at = time.monotonic()
    after = source.frames(3)
    sink.expect(after, in_order=False)
    assert [sink.by_tag[t].sequence_number for t in after] == [
        (before_gap + 2 + i) & 0xFFFF for i in range(3)]

    # The first NACK comes within ~100 ms (10 ms reorder delay, a 40 ms timer), then retries.
    items = setup.requests.until(lambda item: lost_seq in nacked([item], VIDEO_SSRC), WAIT_S,
                                 "the NACK for the lost packet")
    first_s = time.monotonic() - sent_at
    assert first_s < 0.5, f"the first NACK took {first_s:.3f} s"
    assert nacked(items, VIDEO_SSRC) == [lost_seq]
    setup.requests.until(lambda item: lost_seq in nacked([item], VIDEO_SSRC), WAIT_S,
                         "the NACK sent again")
    retry_s = time.monotonic() - sent_at - first_s
    assert retry_s >= 0.05, f"the NACK was retried after {retry_s:.3f} s, before an RTT"

    # The producer peer answers with RTX: its RTX SSRC and payload type, the OSN first.
    original = ref_rtp.RtpPacket.parse(lost_packet)
    rtx = ref_rtp.RtpPacket(payload_type=RTX_PT, marker=original.marker, sequence_number=7000,
                            timestamp=original.timestamp, ssrc=VIDEO_RTX_SSRC,
                            payload=struct.pack("!H", lost_seq) + original.payload)
    rtx.set_extensions([(MID_EXT_ID, b"0")])
    source.peer.send_rtp(rtx.serialize())
    repaired = sink.expect([lost_tag], in_order=False)
    assert [p.sequence_number for p in repaired] == [(before_gap + 1) & 0xFFFF]
    assert repaired[0].payload == original.payload
    assert repaired[0].timestamp == original.timestamp
    assert nacked(setup.requests.during(0.4), VIDEO_SSRC) == []  # no more NACKs for it
    stats = room.worker.ok("producer.getStats", "video")[0]
    assert stats["packetsRepaired"] == 1 and stats["packetsRetransmitted"] == 1
    assert stats["nackCount"] >= 2 and stats["nackPacketCount"] >= 2
    assert stats["packetCount"] == 8  # 7 media packets and the repaired one
    sink.last_seq = (before_gap + 4) & 0xFFFF
    sink.expect(source.frames(2))  # and the numbering goes on


def test_unanswered_nack_is_retried_ten_times(room: Room) -> None:
    setup = video(room)
    source = setup.source
    _, lost_seq, _ = source.build()  # never sent
    source.frames(2)
    setup.requests.until(lambda item: lost_seq in nacked([item], VIDEO_SSRC), WAIT_S,
                         "the first NACK")
    times = [time.monotonic()]
    deadline = times[0] + 3.0  # ten retries one RTT (100 ms) apart
    while time.monotonic() < deadline:
        item = setup.requests.next(deadline - time.monotonic())
        if item is not None and lost_seq in nacked([item], VIDEO_SSRC):
            times.append(time.monotonic())
    assert len(times) == 10, f"{len(times)} NACKs"
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.05, gaps
    stats = room.worker.ok("producer.getStats", "video")[0]
    assert (stats["nackCount"], stats["nackPacketCount"]) == (10, 10)
    assert stats["packetsRepaired"] == 0


# -- RTCP: Sender Reports, Receiver Reports and scores --------------------------------------------


def test_sender_report_gives_lsr_and_scores(room: Room) -> None:
    """An SR from the producer peer: our next RR block for its stream carries its LSR, and the
    stream's score (from the losses since the last SR) is sent as ``score`` events."""
    worker = room.worker
    setup = video(room)
    source, sink = setup.source, setup.sink
    sink.expect(source.frames(19))
    for _ in range(5):
        source.build()  # lost for good (the NACKs are not answered)
    sink.expect(source.frames(20), in_order=False)  # 45 expected, 40 received
    assert [e for e, _ in events(worker, "video") if e == "score"] == []  # it starts at 10
    before = setup.requests.rtcp(0.0)
    assert all(b.lsr == 0 for p in before if isinstance(p, ref_rtcp.ReceiverReport)
               for b in p.reports)

    ntp = (0x83AA7E80 << 32) | 0x12345678  # 1970 in NTP seconds, and a fraction
    sr = ref_rtcp.SenderReport(VIDEO_SSRC, ntp, source.rtp.timestamp, 40, 4000)
    source.peer.send_rtcp(bytes(sr))
    sent_at = time.monotonic()
    # (40 - 5) / 40 delivered → round(0.875^4 * 10) = 6
    assert wait_event(worker, "video", "score") == [
        {"encodingIdx": 0, "ssrc": VIDEO_SSRC, "rid": None, "score": 6}]
    assert wait_event(worker, "video-consumer", "score") == {
        "score": 10, "producerScore": 6, "producerScores": [6]}
    block: ref_rtcp.ReportBlock | None = None
    while block is None:
        assert time.monotonic() - sent_at < 3.0, "no RR with LSR within 3 s of the SR"
        source.frame()  # media keeps flowing: no inactivity
        for packet in setup.requests.rtcp(0.1):
            if isinstance(packet, ref_rtcp.ReceiverReport):
                block = next((b for b in packet.reports
                              if b.ssrc == VIDEO_SSRC and b.lsr), block)
    assert block.lsr == (ntp >> 16) & 0xFFFFFFFF
    assert 0 < block.dlsr < 3 * 65536  # under 3 s, in 1/65536 s
    assert block.packets_lost == 5
    assert worker.ok("producer.dump", "video")["rtpStreams"][0]["score"] == 6

    # No loss in the next interval: a sample of 10, the weighted average (6*1 + 10*2) / 3 → 9.
    sink.expect(source.frames(10), in_order=False)
    source.peer.send_rtcp(bytes(ref_rtcp.SenderReport(VIDEO_SSRC, ntp + (1 << 32),
                                                      source.rtp.timestamp, 50, 5000)))
    assert wait_event(worker, "video", "score")[0]["score"] == 9
    assert worker.ok("producer.getStats", "video")[0]["score"] == 9


# -- pause and resume ----------------------------------------------------------------------------


def test_paused_consumer_waits_for_resume_and_a_key_frame(room: Room) -> None:
    worker = room.worker
    setup = video(room, consumer_paused=True)
    source, sink = setup.source, setup.sink
    assert sink.answer["paused"] is True
    source.frame(keyframe=True)
    source.frames(5)
    sink.expect_nothing(0.3)
    requests = key_frame_requests(setup.requests.during(0.0), VIDEO_SSRC)
    assert len(requests) == 1  # the stream's first, answered by its first packet

    def resume_with(method: str, handler_id: str) -> None:
        """Resume; the producer's peer is asked for a key frame; deltas before it are not
        forwarded; the key frame comes first, numbered right after the last packet."""
        worker.ok(method, handler_id)
        setup.requests.until(lambda item: bool(key_frame_requests([item], VIDEO_SSRC)),
                             WAIT_S, f"a PLI after {method}")
        source.frames(2)
        tags = [source.frame(keyframe=True), *source.frames(2)]
        media = sink.expect(tags)
        assert is_keyframe(media[0].payload)
        assert not key_frame_requests(setup.requests.during(0.0), VIDEO_SSRC)

    resume_with("consumer.resume", "video-consumer")
    assert [p.sequence_number for p in sink.by_tag.values()] == [1, 2, 3]

    worker.ok("consumer.pause", "video-consumer")
    source.frame(keyframe=True)
    source.frames(3)
    sink.expect_nothing(0.3)
    resume_with("consumer.resume", "video-consumer")
    assert sink.last_seq == 6

    worker.ok("producer.pause", "video")
    assert wait_event(worker, "video-consumer", "producerpause") is None
    dump = worker.ok("consumer.dump", "video-consumer")
    assert (dump["paused"], dump["producerPaused"]) == (False, True)
    source.frame(keyframe=True)
    source.frames(3)
    sink.expect_nothing(0.3)
    resume_with("producer.resume", "video")
    assert wait_event(worker, "video-consumer", "producerresume") is None
    assert sink.last_seq == 9
    assert [e for e, _ in events(worker, "video-consumer")
            if e in ("producerpause", "producerresume")] == []
    stats = worker.ok("consumer.getStats", "video-consumer")[0]
    assert stats["packetCount"] == 9
