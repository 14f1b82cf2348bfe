"""Benchmark the whole media path of a real worker: 1 producer fanned out to 10 consumers (pyperf).

Usage::

    python -m perf.bm_media_path            # full run (each process sets up 11 endpoints)
    python -m perf.bm_media_path --fast     # quick run
    python -m perf.bm_media_path --fast -o media_path.json   # keep the results

Every pyperf option works (``--help``). Each benchmark process starts one ``python -m worker``
(:class:`tests.worker_process.WorkerProcess`) and connects 11 scripted WebRTC endpoints to it
(:class:`tests.srtp_peer.SrtpPeer`: ICE, DTLS as client, SRTP keys exported by the handshake,
which picks the worker's first choice, AEAD_AES_256_GCM), each on its own UDP socket on
127.0.0.1: a sender producing VP8 (one SSRC plus RTX, MID, NACK/PLI/FIR feedback,
abs-send-time and transport-cc extensions) and 10 receivers, each consuming that producer
through its own WebRtcTransport. Every transport is made with ``iceConsentTimeout: 0`` (the
endpoints send no consent checks). Two benchmarks:

- ``media_path_own_sockets``: every transport listens on its own UDP socket, so each input
  batch leaves in 10 ``sendmmsg`` calls, one per consumer's socket;
- ``media_path_server_socket``: all 11 transports share one WebRtcServer's UDP socket, so one
  ``sendmmsg`` carries the outputs of all 10 consumers.

What one loop is: the worker receiving one SRTP packet of VP8 (1,200-byte payload after a
16-byte header-extension block; 1,244 bytes on the wire), unprotecting it, the producer's
stream bookkeeping (stats, NACK generator, key-frame detection, the copy kept for
retransmissions), the fan-out (rewrite and SRTP protect per consumer) and the 10 sends, plus
whatever else the worker does meanwhile (its event loop, timers, RTCP). The time pyperf reports
is the **worker's CPU time per input packet** (user + system of the worker process, read from
outside through its process CPU clock, see :func:`worker_cpu_ns`), not wall time; per output
packet it is that divided by 10 (the summary line prints both). On loopback the kernel's
delivery of each output into its receiving socket usually runs on the sender's CPU and is
counted; the part the kernel defers to ``ksoftirqd`` under load is not.

How a value is taken: outside the measured interval the sender's packets are built and
protected (one SRTP context carries on across values, so the worker's replay window sees a live
stream), the receivers' sockets are emptied and the worker is left idle (its CPU clock stops
moving for a millisecond). Then the sender sends the ``loops`` packets in bursts of 32, keeping
at most 64 in flight (sent but not yet arrived at the first receiver), which the worker's
socket always has room for; the benchmark process drains every receiver's socket as it goes
(recvmmsg through ``worker._fast``) and counts each one's media packets. Once the first
receiver has every packet and the worker is idle again, the CPU clock is read. Then
(unmeasured) each receiver must have got exactly ``loops`` packets and the sending transport's
``getStats`` must show ``loops`` more received and ``10 * loops`` more forwarded: any shortfall
(a drop) stops the benchmark with the counts. The benchmark process is one more process on the
machine, about a third of the worker's CPU: give it two cores.

Before the first value, a key frame starts the stream (a consumer forwards from a key frame
on), and every receiver must get it.
"""

from __future__ import annotations

import atexit
import select
import socket
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any, Final

import pyperf

from tests.srtp_peer import (
    MID_EXT_ID,
    PEER_IP,
    VIDEO_CODECS,
    VP8_PT,
    SrtpPeer,
    vp8_parameters,
    vp8_payload,
)
from tests.worker_process import WorkerProcess
from worker._fast.sockio import RecvBatch

__all__ = ["BENCHMARK_NAMES", "CONSUMERS", "PAYLOAD_BYTES", "Rig", "benchmark_names", "main",
           "worker_cpu_ns"]

CONSUMERS: Final = 10
PAYLOAD_BYTES: Final = 1200
WINDOW: Final = 64  # packets sent but not yet seen by the first receiver, at most
BURST: Final = 32  # packets per burst of the sender
PACKETS_PER_FRAME: Final = 10  # same timestamp, marker on the last
SSRC: Final = 0x4D505348
RTX_SSRC: Final = SSRC + 1
ABS_SEND_TIME_EXT_ID: Final = 2  # as tests.srtp_peer.vp8_parameters announces them
TWCC_EXT_ID: Final = 3
MEDIA_MIN_BYTES: Final = 1000  # a received datagram this long is media (RTCP is shorter)
ARRIVAL_TIMEOUT_S: Final = 3.0
STRAGGLER_TIMEOUT_S: Final = 0.5
IDLE_POLL_S: Final = 0.001
IDLE_TIMEOUT_S: Final = 1.0
RECV_SLOT: Final = 2048
VARIANTS: Final = {"media_path_own_sockets": False, "media_path_server_socket": True}
BENCHMARK_NAMES: Final = tuple(VARIANTS)


class DropError(AssertionError):
    """A packet did not make it through the worker (or its counters disagree)."""


def worker_cpu_ns(pid: int) -> int:
    """CPU time (user + system, all threads) of process ``pid`` in ns, from its process CPU
    clock: the clock id ``clock_getcpuclockid(pid)`` gives on Linux, ``(~pid << 3) | 2``
    (CPUCLOCK_SCHED). Nanosecond resolution, where ``/proc/<pid>/stat`` counts 10 ms ticks."""
    return time.clock_gettime_ns(((~pid) << 3) | 2)


def _one_byte_extensions() -> bytes:
    """A one-byte-header extension block (RFC 8285) with MID "0" and room for abs-send-time
    and transport-cc, padded: 16 bytes."""
    elements = (bytes([MID_EXT_ID << 4, ord("0")])
                + bytes([ABS_SEND_TIME_EXT_ID << 4 | 2, 0, 0, 0])
                + bytes([TWCC_EXT_ID << 4 | 1, 0, 0]))
    elements += bytes(-len(elements) % 4)
    return struct.pack("!HH", 0xBEDE, len(elements) // 4) + elements


_EXTENSIONS: Final = _one_byte_extensions()


class Sender:
    """The producing endpoint's stream: plain RTP built here, protected by its peer."""

    def __init__(self, peer: SrtpPeer) -> None:
        self.peer = peer
        self.seq = 0x1234
        self.timestamp = 0x10000
        self.count = 0
        self.body = bytes((i * 7 + 3) & 0xFF for i in range(PAYLOAD_BYTES - 4))
        self.keyframe = vp8_payload(True, self.body[:PAYLOAD_BYTES - 11])
        self.delta = vp8_payload(False, self.body)

    def plain(self, keyframe: bool = False) -> bytes:
        """The next RTP packet, unprotected (and the stream advances)."""
        marker = self.count % PACKETS_PER_FRAME == PACKETS_PER_FRAME - 1
        header = struct.pack("!BBHII", 0x90, VP8_PT | (0x80 if marker else 0), self.seq,
                             self.timestamp, SSRC)
        extensions = bytearray(_EXTENSIONS)
        extensions[7:10] = ((self.count * 90) & 0xFFFFFF).to_bytes(3, "big")  # abs-send-time
        extensions[11:13] = (self.count & 0xFFFF).to_bytes(2, "big")  # transport-wide seq
        self.seq = (self.seq + 1) & 0xFFFF
        self.count += 1
        if marker:
            self.timestamp = (self.timestamp + 3000) & 0xFFFFFFFF
        return header + extensions + (self.keyframe if keyframe else self.delta)

    def packet(self, keyframe: bool = False) -> bytes:
        """The next packet, SRTP-protected by the sending endpoint."""
        protected: bytes = self.peer.tx.protect(self.plain(keyframe))
        return protected


@dataclass
class Receiver:
    """One consuming endpoint: its socket, drained in batches, and its media count."""

    peer: SrtpPeer
    batch: RecvBatch
    got: int = 0

    def drain(self) -> int:
        """Empty the socket; returns how many media packets came."""
        fd = self.peer.sock.fileno()
        batch, lengths = self.batch, self.batch.lengths
        media = 0
        while True:
            n = batch.recv(fd)
            if not n:
                break
            media += sum(1 for i in range(n) if lengths[i] >= MEDIA_MIN_BYTES)
        self.got += media
        return media


class Rig:
    """One worker, one router, a producing endpoint and 10 consuming ones, all connected."""

    def __init__(self, server_socket: bool) -> None:
        self.server_socket = server_socket
        self.worker = WorkerProcess()
        self.peers: list[SrtpPeer] = []
        try:
            self._set_up()
        except BaseException:
            self.close()
            raise

    def _transport(self, transport_id: str) -> str:
        data: dict[str, Any] = {"transportId": transport_id, "iceConsentTimeout": 0}
        if self.server_socket:
            data["webRtcServerId"] = self.server_id
            data["enableTcp"] = False
        else:
            data["listenInfos"] = [{"protocol": "udp", "ip": PEER_IP}]
        self.worker.ok("router.createWebRtcTransport", self.router_id, data)
        return transport_id

    def _connect(self, transport_id: str) -> SrtpPeer:
        peer = SrtpPeer.connect(self.worker, transport_id)
        self.peers.append(peer)
        peer.sock.setblocking(False)
        peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        return peer

    def _set_up(self) -> None:
        worker = self.worker
        self.router_id = "bm-router"
        caps = worker.ok("worker.createRouter", data={
            "routerId": self.router_id, "mediaCodecs": [VIDEO_CODECS]})["rtpCapabilities"]
        self.server_id = "bm-server"
        if self.server_socket:
            worker.ok("worker.createWebRtcServer", data={
                "webRtcServerId": self.server_id,
                "listenInfos": [{"protocol": "udp", "ip": PEER_IP}]})
        self.send_transport = self._transport("bm-send")
        self.sender = Sender(self._connect(self.send_transport))
        worker.ok("transport.produce", self.send_transport, {
            "producerId": "bm-producer", "kind": "video",
            "rtpParameters": vp8_parameters(SSRC, RTX_SSRC), "paused": False})
        self.receivers: list[Receiver] = []
        consumers: list[dict[str, Any]] = []
        slab = bytearray(RECV_SLOT * 64)
        for i in range(CONSUMERS):
            transport_id = self._transport(f"bm-recv-{i}")
            peer = self._connect(transport_id)
            consumers.append(worker.ok("transport.consume", transport_id, {
                "consumerId": f"bm-consumer-{i}", "producerId": "bm-producer",
                "rtpCapabilities": caps, "paused": False}))
            batch = RecvBatch(slab, RECV_SLOT)
            for k in range(64):
                batch.slots[k] = k
            self.receivers.append(Receiver(peer, batch))
        self.probe = self.receivers[0].peer.sock
        self.check_key_frame(consumers)

    def check_key_frame(self, consumers: list[dict[str, Any]]) -> None:
        """Start the stream with a key frame (a consumer forwards from a key frame on) and
        check, once, what every receiver gets: the producer's packet as its consumer's."""
        packet = self.sender.plain(keyframe=True)
        self.sender.peer.send_rtp(packet)
        payload = packet[12 + len(_EXTENSIONS):]
        for receiver, consumer in zip(self.receivers, consumers, strict=True):
            peer = receiver.peer
            _, plain = peer.wait_for(lambda item: item[0] == "rtp", ARRIVAL_TIMEOUT_S,
                                     "the key frame")[-1]
            peer.sock.setblocking(False)
            receiver.got += 1
            ssrc = consumer["rtpParameters"]["encodings"][0]["ssrc"]
            if struct.unpack_from("!I", plain, 8)[0] != ssrc or not plain.endswith(payload):
                raise AssertionError(f"a receiver got {plain[:32].hex()}..., not the key frame "
                                     f"as SSRC {ssrc:#x}")
        forwarded = self.stats()["rtpPacketsForwarded"]
        if forwarded != CONSUMERS:
            raise DropError(f"the key frame was forwarded {forwarded} times")

    def stats(self) -> dict[str, Any]:
        """The sending transport's stats (a request: the worker spends CPU on it)."""
        stats: dict[str, Any] = self.worker.ok("transport.getStats", self.send_transport)[0]
        return stats

    def drain(self) -> None:
        for receiver in self.receivers:
            receiver.drain()

    def wait_idle(self) -> int:
        """Wait until the worker's CPU clock stops moving; returns its value (ns)."""
        pid = self.worker.pid
        deadline = time.monotonic() + IDLE_TIMEOUT_S
        before = worker_cpu_ns(pid)
        while True:
            time.sleep(IDLE_POLL_S)
            now = worker_cpu_ns(pid)
            if now == before or time.monotonic() > deadline:
                return now
            before = now

    def send(self, packets: list[bytes]) -> None:
        """Send ``packets`` paced by the first receiver; drain every receiver as they come;
        DropError if the first receiver misses one."""
        sock, server = self.sender.peer.sock, self.sender.peer.server
        sendto = sock.sendto
        first = self.receivers[0]
        start = first.got
        total = len(packets)
        sent = 0
        while first.got - start < total:
            arrived = first.got - start
            if sent < total and sent - arrived <= WINDOW - BURST:
                end = min(total, arrived + WINDOW, sent + BURST)
                for packet in packets[sent:end]:
                    sendto(packet, server)
                sent = end
            if not select.select([self.probe], [], [], ARRIVAL_TIMEOUT_S)[0]:
                raise DropError(f"the first receiver got {first.got - start} of {sent} "
                                f"packets sent ({total} to send)")
            for receiver in self.receivers:
                receiver.drain()

    def wait_stragglers(self, counts: list[int], loops: int) -> None:
        """Drain until every receiver has ``loops`` more packets than ``counts`` (or nothing
        came for a while): the loopback device delivers from a backlog that the kernel may
        process a little later (in ksoftirqd when it is busy)."""
        socks = [r.peer.sock for r in self.receivers]
        deadline = time.monotonic() + STRAGGLER_TIMEOUT_S
        while True:
            self.drain()
            if all(r.got - c >= loops for r, c in zip(self.receivers, counts, strict=True)):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select(socks, [], [], remaining)[0]:
                return

    def measure(self, loops: int) -> float:
        """Worker CPU seconds for ``loops`` input packets, checked for drops."""
        packets = [self.sender.packet() for _ in range(loops)]
        self.drain()
        counts = [r.got for r in self.receivers]
        before_stats = self.stats()
        t0 = self.wait_idle()
        self.send(packets)
        t1 = self.wait_idle()
        self.wait_stragglers(counts, loops)
        after_stats = self.stats()
        got = [r.got - c for r, c in zip(self.receivers, counts, strict=True)]
        received = after_stats["rtpPacketsReceived"] - before_stats["rtpPacketsReceived"]
        forwarded = after_stats["rtpPacketsForwarded"] - before_stats["rtpPacketsForwarded"]
        if got != [loops] * CONSUMERS or received != loops or forwarded != CONSUMERS * loops:
            raise DropError(f"{loops} packets sent: the worker received {received} and "
                            f"forwarded {forwarded} (want {CONSUMERS * loops}); the receivers "
                            f"got {got}")
        return (t1 - t0) / 1e9

    def close(self) -> None:
        for peer in self.peers:
            peer.close()
        self.peers.clear()
        self.worker.close()


_rigs: dict[bool, Rig] = {}


def _rig(server_socket: bool) -> Rig:
    """This process's rig for one variant (made on first use; the other variant's is closed)."""
    rig = _rigs.get(server_socket)
    if rig is None:
        for other in list(_rigs.values()):
            other.close()
        _rigs.clear()
        rig = _rigs[server_socket] = Rig(server_socket)
    return rig


def _close_rigs() -> None:
    for rig in _rigs.values():
        rig.close()
    _rigs.clear()


atexit.register(_close_rigs)


def time_media_path(loops: int, server_socket: bool) -> float:
    """pyperf's timed function: worker CPU seconds for ``loops`` input packets."""
    return _rig(server_socket).measure(loops)


def benchmark_names() -> list[str]:
    """Every benchmark this script runs, in order."""
    return list(BENCHMARK_NAMES)


def _print_summary(benches: list[pyperf.Benchmark | None]) -> None:
    parts = []
    for bench in benches:
        if bench is not None:
            per_input = bench.mean() * 1e6
            parts.append(f"{bench.get_name()} {per_input:.1f} us per input, "
                         f"{per_input / CONSUMERS:.2f} us per output")
    if parts:
        print(f"summary: worker CPU, 1 producer x {CONSUMERS} consumers: {'; '.join(parts)}")


def main() -> None:
    program_args = ("-m", __spec__.name) if __spec__ is not None else (sys.argv[0],)
    runner = pyperf.Runner(program_args=program_args)
    args = runner.parse_args()
    runner.metadata["description"] = (
        f"python -m worker, SRTP in -> 1 producer -> {CONSUMERS} consumers -> SRTP out, "
        f"{PAYLOAD_BYTES} B VP8 payload, worker CPU time per input packet")
    meta = {"consumers": str(CONSUMERS), "payload_bytes": str(PAYLOAD_BYTES),
            "window_packets": str(WINDOW), "burst_packets": str(BURST),
            "measured": "worker process CPU time (user+system)"}
    benches = [runner.bench_time_func(name, time_media_path, server_socket, metadata=meta)
               for name, server_socket in VARIANTS.items()]
    if not args.worker:
        _print_summary(benches)


if __name__ == "__main__":
    if not sys.platform.startswith("linux"):
        raise SystemExit("bm_media_path reads the worker's CPU clock the Linux way")
    main()
