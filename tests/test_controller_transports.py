"""The controller's PlainTransport, PipeTransport and DirectTransport against the real worker.

Media is scripted: RTP packets are built here and go in through ``Producer.send`` (direct
transports) or a UDP socket on 127.0.0.1 (plain transports); what comes out is read from a
consumer's ``rtp`` event or from that socket, and parsed here. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Final

import pytest

from controller import (
    Consumer,
    ControllerError,
    ControllerTypeError,
    DirectTransport,
    InvalidStateError,
    PipeTransport,
    PlainTransport,
    Router,
    Worker,
)
from tests.controller_support import Recorder, async_test, is_closed, running_worker, wait_until

LISTEN_INFO: Final[dict[str, Any]] = {"protocol": "udp", "ip": "127.0.0.1"}
MEDIA_CODECS: Final[list[dict[str, Any]]] = [
    {"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2},
    {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000},
]
SUITE: Final = "AES_CM_128_HMAC_SHA1_80"
KEY_30: Final = base64.b64encode(bytes(range(30))).decode()

OPUS_PT: Final = 100
VP8_PT: Final = 101
# A VP8 payload descriptor (start of partition 0) and a key frame's first bytes, then filler.
VP8_PAYLOAD: Final = bytes([0x10, 0x00, 0x9D, 0x01, 0x2A]) + bytes(range(64))


def opus_parameters(ssrc: int = 0x1111) -> dict[str, Any]:
    """What an RTP endpoint without SDP (FFmpeg, GStreamer, a script) produces with."""
    return {
        "codecs": [{"mimeType": "audio/opus", "payloadType": OPUS_PT, "clockRate": 48000,
                    "channels": 2}],
        "encodings": [{"ssrc": ssrc}],
        "rtcp": {"cname": "script"},
    }


def vp8_parameters(ssrc: int = 0x2222) -> dict[str, Any]:
    return {
        "codecs": [{
            "mimeType": "video/VP8", "payloadType": VP8_PT, "clockRate": 90000,
            "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"},
                             {"type": "ccm", "parameter": "fir"}],
        }],
        "encodings": [{"ssrc": ssrc}],
        "rtcp": {"cname": "script"},
    }


def rtp_packet(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, *,
               marker: bool = False) -> bytes:
    """A minimal RTP packet: version 2, no CSRC, no extension, no padding."""
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                       ts & 0xFFFFFFFF, ssrc) + payload


@dataclass(frozen=True)
class Rtp:
    pt: int
    seq: int
    ts: int
    ssrc: int
    marker: bool
    payload: bytes


def parse_rtp(data: bytes) -> Rtp:
    """The fields of an RTP packet, its payload after CSRCs and the header extension."""
    assert len(data) >= 12 and data[0] >> 6 == 2, data.hex()
    offset = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
    end = len(data) - (data[-1] if data[0] & 0x20 else 0)
    seq, ts, ssrc = struct.unpack_from("!HII", data, 2)
    return Rtp(data[1] & 0x7F, seq, ts, ssrc, bool(data[1] & 0x80), data[offset:end])


def rtcp_types(data: bytes) -> list[tuple[int, int]]:
    """(packet type, count/FMT) of each packet in a compound RTCP packet."""
    found: list[tuple[int, int]] = []
    offset = 0
    while offset + 4 <= len(data):
        (length,) = struct.unpack_from("!H", data, offset + 2)
        found.append((data[offset + 1], data[offset] & 0x1F))
        offset += 4 * (length + 1)
    return found


def receiver_report(ssrc: int = 0x5555) -> bytes:
    """An RTCP RR without report blocks."""
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)


@contextlib.contextmanager
def udp_socket() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.close()


async def recv_rtp(sock: socket.socket, timeout: float = 5.0) -> Rtp:
    """The next RTP packet on ``sock`` (RTCP is skipped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        data = await asyncio.wait_for(loop.sock_recv(sock, 2048),
                                      max(0.01, deadline - loop.time()))
        if len(data) >= 2 and not 192 <= data[1] <= 223:
            return parse_rtp(data)


@contextlib.asynccontextmanager
async def router_on_worker() -> AsyncIterator[tuple[Worker, Router]]:
    async with running_worker() as worker:
        yield worker, await worker.create_router(media_codecs=MEDIA_CODECS)


def local_port(transport: PlainTransport | PipeTransport) -> int:
    port = transport.tuple["localPort"]
    assert isinstance(port, int)
    return port


# -- PlainTransport -------------------------------------------------------------------------


@async_test
async def test_plain_transport_create_and_dump() -> None:
    async with router_on_worker() as (_, router):
        new_transports = Recorder()
        router.observer.on("newtransport", new_transports)
        transport = await router.create_plain_transport(listen_info=LISTEN_INFO,
                                                        app_data={"x": 1})
        assert isinstance(transport, PlainTransport)
        assert new_transports.calls == [(transport,)]
        assert router.transports == [transport]
        assert transport.app_data == {"x": 1}
        assert transport.rtcp_mux is True
        assert transport.comedia is False
        assert transport.srtp_parameters is None
        assert transport.rtcp_tuple is None
        assert transport.tuple["localIp"] == "127.0.0.1"
        assert transport.tuple["localAddress"] == "127.0.0.1"
        assert transport.tuple["protocol"] == "udp"
        assert 0 < local_port(transport) < 65536
        dump = await transport.dump()
        assert dump["id"] == transport.id
        assert dump["direct"] is False
        assert dump["tuple"] == transport.tuple
        stats = await transport.get_stats()
        assert stats[0]["type"] == "plain-rtp-transport"
        assert stats[0]["transportId"] == transport.id

        # Without rtcp_mux: a second socket, on the RTCP listen info when given.
        split = await router.create_plain_transport(
            listen_info=LISTEN_INFO, rtcp_listen_info=LISTEN_INFO, rtcp_mux=False,
            comedia=True, enable_srtp=True, srtp_crypto_suite="AEAD_AES_256_GCM",
        )
        assert split.rtcp_mux is False
        assert split.comedia is True
        assert split.rtcp_tuple is not None
        assert split.rtcp_tuple["localPort"] != local_port(split)
        assert split.srtp_parameters is not None
        assert split.srtp_parameters["cryptoSuite"] == "AEAD_AES_256_GCM"
        assert len(base64.b64decode(split.srtp_parameters["keyBase64"])) == 44

        closed = Recorder()
        split.on("routerclose", closed)
        await router.close()
        assert closed.calls == [()]
        assert is_closed(transport) and is_closed(split)


@async_test
async def test_plain_transport_create_errors() -> None:
    async with router_on_worker() as (_, router):
        for bad in (
            {"listen_info": "127.0.0.1"},
            {"listen_info": LISTEN_INFO, "rtcp_mux": 1},
            {"listen_info": LISTEN_INFO, "comedia": "yes"},
            {"listen_info": LISTEN_INFO, "enable_srtp": None},
            {"listen_info": LISTEN_INFO, "srtp_crypto_suite": 5},
            {"listen_info": LISTEN_INFO, "rtcp_listen_info": ["x"]},
            {"listen_info": LISTEN_INFO, "app_data": []},
        ):
            with pytest.raises(ControllerTypeError):
                await router.create_plain_transport(**bad)
        # The worker's refusals.
        with pytest.raises(ControllerTypeError):
            await router.create_plain_transport(listen_info={"protocol": "tcp",
                                                             "ip": "127.0.0.1"})
        with pytest.raises(ControllerTypeError):
            await router.create_plain_transport(listen_info=LISTEN_INFO, enable_srtp=True,
                                                srtp_crypto_suite="NULL_CIPHER")
        with pytest.raises(ControllerError, match="not implemented"):
            await router.create_plain_transport(listen_info=LISTEN_INFO, enable_sctp=True)
        assert router.transports == []


@async_test
async def test_plain_transport_connect() -> None:
    async with router_on_worker() as (_, router):
        transport = await router.create_plain_transport(listen_info=LISTEN_INFO)
        # Local checks: nothing is sent.
        for bad in ({"ip": 5, "port": 5000}, {"ip": "127.0.0.1", "port": 0},
                    {"ip": "127.0.0.1", "port": 70000}, {"ip": "127.0.0.1", "port": True},
                    {"ip": "127.0.0.1", "port": 5000, "srtp_parameters": "key"}):
            with pytest.raises(ControllerTypeError):
                await transport.connect(**bad)
        # The worker's: ip and port needed without comedia, no rtcpPort with rtcp_mux, no SRTP
        # parameters without SRTP.
        refused: list[dict[str, Any]] = [
            {}, {"ip": "127.0.0.1"}, {"port": 5000},
            {"ip": "127.0.0.1", "port": 5000, "rtcp_port": 5001},
            {"ip": "127.0.0.1", "port": 5000,
             "srtp_parameters": {"cryptoSuite": SUITE, "keyBase64": KEY_30}},
        ]
        for args in refused:
            with pytest.raises(ControllerTypeError):
                await transport.connect(**args)
        await transport.connect(ip="127.0.0.1", port=5000)
        assert transport.tuple["remoteIp"] == "127.0.0.1"
        assert transport.tuple["remotePort"] == 5000
        assert (await transport.dump())["tuple"] == transport.tuple
        with pytest.raises(InvalidStateError):
            await transport.connect(ip="127.0.0.1", port=5002)

        split = await router.create_plain_transport(listen_info=LISTEN_INFO, rtcp_mux=False)
        with pytest.raises(ControllerTypeError):  # rtcpPort is needed without rtcp_mux
            await split.connect(ip="127.0.0.1", port=5000)
        await split.connect(ip="127.0.0.1", port=5000, rtcp_port=5001)
        assert split.rtcp_tuple is not None
        assert split.rtcp_tuple["remotePort"] == 5001

        srtp = await router.create_plain_transport(listen_info=LISTEN_INFO, enable_srtp=True)
        local_key = srtp.srtp_parameters
        assert local_key is not None and local_key["cryptoSuite"] == SUITE
        with pytest.raises(ControllerTypeError):  # SRTP parameters are needed with SRTP
            await srtp.connect(ip="127.0.0.1", port=5000)
        short = base64.b64encode(bytes(16)).decode()
        with pytest.raises(ControllerTypeError):  # the key of the suite's length
            await srtp.connect(ip="127.0.0.1", port=5000,
                               srtp_parameters={"cryptoSuite": SUITE, "keyBase64": short})
        await srtp.connect(ip="127.0.0.1", port=5000,
                           srtp_parameters={"cryptoSuite": SUITE, "keyBase64": KEY_30})
        assert srtp.srtp_parameters is not None
        assert srtp.srtp_parameters["cryptoSuite"] == SUITE

        await transport.close()
        with pytest.raises(InvalidStateError):
            await transport.connect(ip="127.0.0.1", port=5000)


@async_test
async def test_plain_transport_comedia_learns_the_tuple_and_forwards() -> None:
    async with router_on_worker() as (_, router):
        plain = await router.create_plain_transport(listen_info=LISTEN_INFO, comedia=True)
        # comedia: connect needs no address (and ignores one).
        await plain.connect()
        assert "remotePort" not in plain.tuple
        producer = await plain.produce(kind="audio", rtp_parameters=opus_parameters(0xAB))
        direct = await router.create_direct_transport()
        consumer = await direct.consume(producer_id=producer.id,
                                        rtp_capabilities=router.rtp_capabilities)
        received: list[bytes] = []
        consumer.on("rtp", received.append)
        tuples = Recorder()
        observed = Recorder()
        plain.on("tuple", tuples)
        plain.observer.on("tuple", observed)

        payload = b"opus frame " + bytes(range(40))
        with udp_socket() as sock:
            port = sock.getsockname()[1]
            target = ("127.0.0.1", local_port(plain))
            sock.sendto(rtp_packet(OPUS_PT, 7, 960, 0xAB, payload), target)
            await wait_until(lambda: bool(tuples.calls) and bool(received))
            # Only the first packet's source is learned.
            sock.sendto(rtp_packet(OPUS_PT, 8, 1920, 0xAB, payload), target)
            await wait_until(lambda: len(received) == 2)
        assert len(tuples.calls) == 1
        (learned,) = tuples.calls[0]
        assert learned["remoteIp"] == "127.0.0.1"
        assert learned["remotePort"] == port
        assert observed.calls == tuples.calls
        assert plain.tuple == learned
        rtp = parse_rtp(received[0])
        assert rtp.payload == payload
        assert rtp.ssrc == consumer.rtp_parameters["encodings"][0]["ssrc"]
        assert rtp.pt == consumer.rtp_parameters["codecs"][0]["payloadType"]

        # RTCP on its own socket: its tuple is learned on its own.
        split = await router.create_plain_transport(listen_info=LISTEN_INFO, comedia=True,
                                                    rtcp_mux=False)
        rtcp_tuples = Recorder()
        split.on("rtcptuple", rtcp_tuples)
        assert split.rtcp_tuple is not None
        with udp_socket() as sock:
            sock.sendto(receiver_report(), ("127.0.0.1", split.rtcp_tuple["localPort"]))
            await wait_until(lambda: bool(rtcp_tuples.calls))
            assert rtcp_tuples.calls[0][0]["remotePort"] == sock.getsockname()[1]
        assert split.rtcp_tuple["remotePort"] == rtcp_tuples.calls[0][0]["remotePort"]


@async_test
async def test_plain_transport_consumer_sends_to_the_connected_address() -> None:
    async with router_on_worker() as (_, router):
        direct = await router.create_direct_transport()
        producer = await direct.produce(kind="video", rtp_parameters=vp8_parameters(0x77))
        plain = await router.create_plain_transport(listen_info=LISTEN_INFO)
        with udp_socket() as sock, udp_socket() as stranger:
            await plain.connect(ip="127.0.0.1", port=sock.getsockname()[1])
            consumer = await plain.consume(producer_id=producer.id,
                                           rtp_capabilities=router.rtp_capabilities)
            assert consumer.type == "simple"
            for seq in range(3):
                producer.send(rtp_packet(VP8_PT, 100 + seq, 3000 * seq, 0x77, VP8_PAYLOAD,
                                         marker=True))
            rtp = await recv_rtp(sock)
            assert rtp.payload == VP8_PAYLOAD
            assert rtp.ssrc == consumer.rtp_parameters["encodings"][0]["ssrc"]
            assert rtp.pt == consumer.rtp_parameters["codecs"][0]["payloadType"]

            # Without comedia, packets from another address are dropped and counted.
            stranger.sendto(receiver_report(), ("127.0.0.1", local_port(plain)))

            async def dropped() -> int:
                stats = await plain.get_stats()
                count = stats[0].get("packetsFromUnknownAddress", 0)
                assert isinstance(count, int)
                return count

            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5.0
            while await dropped() < 1:
                assert loop.time() < deadline, "the stranger's packet was not counted"
                await asyncio.sleep(0.02)


# -- DirectTransport ------------------------------------------------------------------------


@async_test
async def test_direct_transport_create_and_arguments() -> None:
    async with router_on_worker() as (_, router):
        for bad in (0, -1, 1.5, True):
            with pytest.raises(ControllerTypeError):
                await router.create_direct_transport(max_message_size=bad)  # type: ignore[arg-type]
        transport = await router.create_direct_transport(max_message_size=4096)
        assert isinstance(transport, DirectTransport)
        assert transport.max_message_size == 4096
        dump = await transport.dump()
        assert dump["direct"] is True
        assert dump["maxMessageSize"] == 4096
        assert (await transport.get_stats())[0]["type"] == "direct-transport"
        await transport.connect()  # a no-op

        producer = await transport.produce(kind="audio", rtp_parameters=opus_parameters())
        with pytest.raises(ControllerTypeError):
            producer.send("not bytes")  # type: ignore[arg-type]
        with pytest.raises(ControllerTypeError):
            transport.send_rtcp(12)  # type: ignore[arg-type]
        # Only producers on a direct transport take packets.
        plain = await router.create_plain_transport(listen_info=LISTEN_INFO, comedia=True)
        plain_producer = await plain.produce(kind="audio", rtp_parameters=opus_parameters(9))
        with pytest.raises(InvalidStateError):
            plain_producer.send(rtp_packet(OPUS_PT, 1, 1, 9, b"x"))

        await producer.close()
        with pytest.raises(InvalidStateError):
            producer.send(rtp_packet(OPUS_PT, 1, 1, 0x1111, b"x"))
        await transport.close()
        with pytest.raises(InvalidStateError):
            transport.send_rtcp(receiver_report())
        with pytest.raises(InvalidStateError):
            await transport.connect()


@async_test
async def test_direct_transport_round_trip() -> None:
    async with router_on_worker() as (_, router):
        sender = await router.create_direct_transport()
        receiver = await router.create_direct_transport()
        producer = await sender.produce(kind="video", rtp_parameters=vp8_parameters(0x2222))
        consumer = await receiver.consume(producer_id=producer.id,
                                          rtp_capabilities=router.rtp_capabilities)
        assert isinstance(consumer, Consumer)
        received: list[bytes] = []
        consumer.on("rtp", received.append)
        payloads = [VP8_PAYLOAD + bytes([i]) * i for i in range(10)]
        for i, payload in enumerate(payloads):
            producer.send(rtp_packet(VP8_PT, 500 + i, 90 * i, 0x2222, payload, marker=True))
        await wait_until(lambda: len(received) == len(payloads))
        packets = [parse_rtp(data) for data in received]
        assert [p.payload for p in packets] == payloads
        ssrc = consumer.rtp_parameters["encodings"][0]["ssrc"]
        pt = consumer.rtp_parameters["codecs"][0]["payloadType"]
        assert {(p.ssrc, p.pt) for p in packets} == {(ssrc, pt)}
        assert [(p.seq - packets[0].seq) & 0xFFFF for p in packets] == list(range(10))
        assert all(p.marker for p in packets)

        # A packet that is not RTP is dropped (and counted), not fatal.
        producer.send(b"\x00\x01")
        producer.send(rtp_packet(VP8_PT, 510, 900, 0x2222, b"after"))
        await wait_until(lambda: len(received) == len(payloads) + 1)
        assert parse_rtp(received[-1]).payload == b"after"

        # RTCP out: a key frame request reaches the producer's side as a PLI.
        rtcp = Recorder()
        sender.on("rtcp", rtcp)
        await consumer.request_key_frame()
        await wait_until(lambda: any((206, 1) in rtcp_types(c[0]) for c in rtcp.calls))
        assert all(isinstance(c[0], bytes) for c in rtcp.calls)
        # Reports: an SR for the consumer on the receiver's side, an RR for the producer's
        # stream on the sender's, both as rtcp notifications (the timer runs from creation).
        reports = Recorder()
        receiver.on("rtcp", reports)
        await wait_until(lambda: any(kind == 200 for c in reports.calls
                                     for kind, _ in rtcp_types(c[0])), timeout=4.0)
        await wait_until(lambda: any(kind == 201 for c in rtcp.calls
                                     for kind, _ in rtcp_types(c[0])), timeout=4.0)

        # RTCP in: accepted without an answer; the transport goes on working.
        receiver.send_rtcp(receiver_report())
        sender.send_rtcp(receiver_report())
        assert (await receiver.dump())["id"] == receiver.id
        stats = await consumer.get_stats()
        assert stats[0]["type"] == "outbound-rtp"

        # Pausing the consumer stops the packets.
        await consumer.pause()
        count = len(received)
        producer.send(rtp_packet(VP8_PT, 511, 1000, 0x2222, b"paused"))
        await asyncio.sleep(0.2)
        assert len(received) == count


# -- PipeTransport --------------------------------------------------------------------------


@async_test
async def test_pipe_transport_create_connect_and_consume() -> None:
    async with router_on_worker() as (_, router):
        pipe = await router.create_pipe_transport(listen_info=LISTEN_INFO, enable_rtx=True)
        assert isinstance(pipe, PipeTransport)
        assert pipe.rtx is True
        assert pipe.srtp_parameters is None
        assert pipe.tuple["localIp"] == "127.0.0.1"
        dump = await pipe.dump()
        assert dump["tuple"] == pipe.tuple
        assert dump["rtx"] is True
        assert (await pipe.get_stats())[0]["type"] == "pipe-transport"

        with pytest.raises(ControllerTypeError):
            await pipe.connect(ip="", port=5000)
        with pytest.raises(ControllerTypeError):
            await pipe.connect(ip="127.0.0.1", port=0)
        with pytest.raises(ControllerTypeError):  # the worker's: no SRTP without enable_srtp
            await pipe.connect(ip="127.0.0.1", port=5000,
                               srtp_parameters={"cryptoSuite": SUITE, "keyBase64": KEY_30})
        await pipe.connect(ip="127.0.0.1", port=5000)
        assert pipe.tuple["remotePort"] == 5000
        with pytest.raises(InvalidStateError):
            await pipe.connect(ip="127.0.0.1", port=5001)

        srtp = await router.create_pipe_transport(listen_info=LISTEN_INFO, enable_srtp=True)
        assert srtp.srtp_parameters is not None
        with pytest.raises(ControllerTypeError):  # the worker's: SRTP parameters needed
            await srtp.connect(ip="127.0.0.1", port=5000)

        # A consumer on a pipe transport is a pipe consumer: no capabilities needed.
        direct = await router.create_direct_transport()
        producer = await direct.produce(kind="video", rtp_parameters=vp8_parameters())
        with pytest.raises(ControllerTypeError):
            await pipe.consume(producer_id="")
        consumer = await pipe.consume(producer_id=producer.id, app_data={"pipe": True})
        assert consumer.type == "pipe"
        assert consumer.kind == "video"
        assert consumer.app_data == {"pipe": True}
        assert "mid" not in consumer.rtp_parameters
        mimes = [c["mimeType"] for c in consumer.rtp_parameters["codecs"]]
        assert mimes == ["video/VP8", "video/rtx"]  # RTX: the transport has enable_rtx
        assert pipe.consumers == [consumer]
        with pytest.raises(ControllerError):
            await pipe.consume(producer_id="no-such-producer")
