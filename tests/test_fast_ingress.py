"""The C receive path of plain transports (``worker/fast_ingress.py``, ``cffi_build/ingress.c``)
in a real worker: scripted RTP over UDP on 127.0.0.1 into a comedia PlainTransport, consumers
on PlainTransports connected to sockets read here.

What is checked is what a controller sees: every packet forwarded byte-exact with its header
rewritten, in order, the producer's statistics, the NACKs the worker sends, the pools given
back, and the ``rtpPacketsFastPath`` counter that says the C took the packets (so the tests
fail if the C path silently stops working and the Python path does everything).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import pylibsrtp

from controller import PlainTransport, Producer, Router, Worker
from tests.controller_support import async_test, wait_until
from tests.test_controller_transports import (
    LISTEN_INFO,
    VP8_PT,
    parse_rtp,
    router_on_worker,
    rtcp_types,
    rtp_packet,
    udp_socket,
    vp8_parameters,
)

SSRC: Final = 0x1234ABCD
SUITE: Final = "AES_CM_128_HMAC_SHA1_80"
KEY: Final = bytes(range(30))
PACE_EVERY: Final = 8  # packets sent between two short sleeps (the receive batches stay small)


def vp8_payload(seq: int, key: bool) -> bytes:
    """A VP8 payload (descriptor with S set, then a frame tag) carrying ``seq``."""
    tag = 0x10 if key else 0x11  # P bit clear: a key frame
    return bytes([0x10, tag, 0x9D, 0x01, 0x2A]) + seq.to_bytes(4, "big") + bytes(range(100))


@dataclass
class Sink:
    """A consumer on its own PlainTransport and the socket it sends to."""

    sock: socket.socket
    ssrc: int
    pt: int
    srtp: pylibsrtp.Session | None = None
    got: list[Any] = field(default_factory=list)

    def drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(2048)
            except BlockingIOError:
                return
            if 192 <= data[1] <= 223:
                continue
            if self.srtp is not None:
                data = self.srtp.unprotect(data)
            self.got.append(parse_rtp(data))


@dataclass
class Rig:
    worker: Worker
    router: Router
    producer_transport: PlainTransport
    producer: Producer
    sender: socket.socket
    sinks: list[Sink]
    srtp: pylibsrtp.Session | None

    @property
    def target(self) -> tuple[str, int]:
        port = self.producer_transport.tuple["localPort"]
        assert isinstance(port, int)
        return ("127.0.0.1", port)

    async def send(self, seqs: list[int], *, key_every: int = 0) -> None:
        for n, seq in enumerate(seqs):
            key = seq == 0 or (key_every > 0 and seq % key_every == 0)
            packet = rtp_packet(VP8_PT, seq, seq * 3000, SSRC, vp8_payload(seq, key),
                                marker=True)
            if self.srtp is not None:
                packet = self.srtp.protect(packet)
            self.sender.sendto(packet, self.target)
            if n % PACE_EVERY == PACE_EVERY - 1:
                await asyncio.sleep(0.002)
                for sink in self.sinks:
                    sink.drain()

    async def wait_for(self, count: int) -> None:
        def done() -> bool:
            for sink in self.sinks:
                sink.drain()
            return all(len(sink.got) >= count for sink in self.sinks)

        await wait_until(done)

    async def forward_all(self, seqs: list[int], *, key_every: int = 0) -> dict[str, int]:
        """Send ``seqs``, check that every sink got them all right; the transport's counters."""
        await self.send(seqs, key_every=key_every)
        await self.wait_for(len(seqs))
        for sink in self.sinks:
            check_forwarded(sink, seqs)
        return await self.counters()

    async def counters(self) -> dict[str, int]:
        dump = await self.producer_transport.dump()
        counters = dump["counters"]
        assert isinstance(counters, dict)
        return counters


@asynccontextmanager
async def rig(consumers: int = 2, *, srtp: bool = False) -> AsyncIterator[Rig]:
    async with router_on_worker() as (worker, router), AsyncExitStack() as stack:
        options: dict[str, Any] = {"enable_srtp": True, "srtp_crypto_suite": SUITE} if srtp \
            else {}
        remote = {"cryptoSuite": SUITE, "keyBase64": base64.b64encode(KEY).decode()}
        plain = await router.create_plain_transport(listen_info=LISTEN_INFO, comedia=True,
                                                    **options)
        await plain.connect(**({"srtp_parameters": remote} if srtp else {}))
        producer = await plain.produce(kind="video", rtp_parameters=vp8_parameters(SSRC))
        sinks = []
        for _ in range(consumers):
            sock = stack.enter_context(udp_socket())
            transport = await router.create_plain_transport(listen_info=LISTEN_INFO, **options)
            await transport.connect(ip="127.0.0.1", port=sock.getsockname()[1],
                                    **({"srtp_parameters": remote} if srtp else {}))
            consumer = await transport.consume(producer_id=producer.id,
                                               rtp_capabilities=router.rtp_capabilities)
            session = None
            if srtp:
                params = transport.srtp_parameters
                assert params is not None
                key = base64.b64decode(params["keyBase64"])
                session = pylibsrtp.Session(pylibsrtp.Policy(
                    key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
                    srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80))
            sinks.append(Sink(sock, consumer.rtp_parameters["encodings"][0]["ssrc"],
                              consumer.rtp_parameters["codecs"][0]["payloadType"], session))
        sender = stack.enter_context(udp_socket())
        out = None
        if srtp:
            out = pylibsrtp.Session(pylibsrtp.Policy(
                key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80))
        yield Rig(worker, router, plain, producer, sender, sinks, out)


def check_forwarded(sink: Sink, seqs: list[int], *, gapless: bool = False) -> None:
    """``sink`` got exactly ``seqs``' packets, payloads intact, header rewritten, numbering
    shifted by one constant (``gapless``: numbered one after the other in the order of
    ``seqs``, as a consumer does across a pause)."""
    got = {int.from_bytes(r.payload[5:9], "big"): r for r in sink.got}
    assert sorted(got) == sorted(seqs), (len(got), len(seqs))
    assert len(sink.got) == len(seqs)  # no duplicates
    first = got[seqs[0]].seq
    for n, seq in enumerate(seqs):
        r = got[seq]
        assert r.ssrc == sink.ssrc and r.pt == sink.pt and r.marker
        assert r.payload == vp8_payload(seq, r.payload[1] == 0x10)
        expected = first + (n if gapless else seq - seqs[0])
        assert r.seq == expected & 0xFFFF, (seq, r.seq, expected)


@async_test
async def test_in_order_video_is_taken_by_the_c_path_and_forwarded_byte_exact() -> None:
    async with rig(consumers=3) as r:
        counters = await r.forward_all(list(range(400)), key_every=100)
        assert counters["rtpPacketsReceived"] == 400
        assert counters["rtpPacketsForwarded"] == 3 * 400
        # All but the key frames went through C, and the rest of the first receive batch (the
        # first packet made the stream, and the socket got its C path after it).
        assert counters["rtpPacketsFastPath"] >= 400 - 4 - PACE_EVERY, counters
        stats = await r.producer.get_stats()
        assert stats[0]["packetCount"] == 400
        assert stats[0]["byteCount"] == 400 * (12 + len(vp8_payload(0, False)))
        assert stats[0]["packetsLost"] == 0
        assert stats[0]["score"] == 10


@async_test
async def test_a_gap_goes_to_python_which_nacks_it_and_the_c_takes_the_next_packets() -> None:
    async with rig(consumers=1) as r:
        first = [s for s in range(100) if s not in (50, 51, 52)]
        await r.send(first)
        await r.wait_for(len(first))
        # The worker asks the sender for the missing packets (RTCP NACK, PT 205 FMT 1).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        nacked: set[int] = set()
        while not {50, 51, 52} <= nacked:
            assert loop.time() < deadline, f"no NACK for 50-52, got {nacked}"
            try:
                data = r.sender.recv(2048)
            except BlockingIOError:
                await asyncio.sleep(0.01)
                continue
            if (205, 1) in rtcp_types(data):
                nacked |= _nack_seqs(data)
        # Asked for: while they are missing, the packets in order are the C's again.
        before = (await r.counters())["rtpPacketsFastPath"]
        await r.send(list(range(100, 150)))
        await r.wait_for(97 + 50)
        during = (await r.counters())["rtpPacketsFastPath"]
        assert during - before >= 45, (before, during)
        # The late packets arrive (Python's: older than the highest), then more in order.
        await r.send([50, 51, 52])
        await r.send(list(range(150, 200)))
        await r.wait_for(200)
        check_forwarded(r.sinks[0], list(range(200)))
        counters = await r.counters()
        assert counters["rtpPacketsFastPath"] - during >= 45, counters
        stats = await r.producer.get_stats()
        assert stats[0]["packetCount"] == 200
        assert stats[0]["nackCount"] >= 1
        assert stats[0]["packetsRepaired"] == 3  # the NACKed packets came (no RTX: repaired)


def _nack_seqs(data: bytes) -> set[int]:
    """The sequence numbers of the generic NACKs in a compound RTCP packet."""
    seqs: set[int] = set()
    offset = 0
    while offset + 4 <= len(data):
        (length,) = struct.unpack_from("!H", data, offset + 2)
        end = offset + 4 * (length + 1)
        if data[offset + 1] == 205 and data[offset] & 0x1F == 1:
            for at in range(offset + 12, end, 4):
                pid, blp = struct.unpack_from("!HH", data, at)
                seqs.add(pid)
                seqs.update((pid + i + 1) & 0xFFFF for i in range(16) if blp >> i & 1)
        offset = end
    return seqs


@async_test
async def test_srtp_packets_unprotected_by_the_c_and_left_to_python_are_not_unprotected_twice(
) -> None:
    # Every 10th packet is a key frame: the C unprotects it, sees the key frame and leaves it
    # to Python, which must not unprotect it again (that would fail as a replay).
    async with rig(consumers=2, srtp=True) as r:
        counters = await r.forward_all(list(range(300)), key_every=10)
        assert counters["srtpFailed"] == 0
        assert counters["rtpPacketsReceived"] == 300
        assert counters["rtpPacketsFastPath"] >= 300 - 40, counters


@async_test
async def test_a_paused_producer_is_not_forwarded_and_resumes_on_a_key_frame() -> None:
    async with rig(consumers=1) as r:
        await r.send(list(range(50)))
        await r.wait_for(50)
        await r.producer.pause()
        await r.send(list(range(50, 100)))
        await asyncio.sleep(0.2)
        r.sinks[0].drain()
        assert len(r.sinks[0].got) == 50
        await r.producer.resume()
        await r.send(list(range(100, 150)), key_every=100)  # 100 is a key frame
        await r.wait_for(100)
        check_forwarded(r.sinks[0], [*range(50), *range(100, 150)], gapless=True)
        stats = await r.producer.get_stats()
        assert stats[0]["packetCount"] == 150


@async_test
async def test_pools_come_back_when_everything_closes() -> None:
    async with rig(consumers=2) as r:
        await r.send(list(range(200)))
        await r.wait_for(200)
        pools = (await r.worker.dump())["bufferPools"]
        assert pools["udpRecv"]["inUse"] == 0
        assert 0 < pools["rtpPacket"]["inUse"] <= 200  # the producer's store
        assert all(p["highWater"] < p["capacity"] for p in pools.values())
        await r.producer_transport.close()
        pools = (await r.worker.dump())["bufferPools"]
        assert pools["rtpPacket"]["inUse"] == 0
        assert pools["udpRecv"]["inUse"] == 0
