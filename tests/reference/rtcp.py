"""Pure-Python reference of the RTCP walk, parsers and builders in ``cffi_build/rtcp.c``.

Packets are small value types with an exact inverse: ``Type.parse(data)`` reads one sub-packet
from its first header byte and ``bytes(value)`` writes it back. It follows RFC 3550 (SR, RR,
SDES, BYE), RFC 4585 (generic NACK, PLI), RFC 5104 (FIR), draft-alvestrand-rmcat-remb (REMB),
draft-holmer-rmcat-transport-wide-cc-extensions-01 (transport-cc) and RFC 3611 (XR RRT/DLRR),
and accepts and rejects exactly what the C does, with the same reason names
(``enum mw_rtcp_error`` without its ``MW_RTCP_ERR_`` prefix).

Parsing strips RTCP padding (P bit); builders never set it. Where the wire leaves a choice the
builders take the C's: SDES chunks end with one null octet and zero padding, NACK items are
packed greedily, REMB uses the smallest exponent, transport-cc picks chunks as
``_tcc_next_chunk`` says and pads with zero bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, NamedTuple

SR, RR, SDES, BYE, APP, RTPFB, PSFB, XR = 200, 201, 202, 203, 204, 205, 206, 207
FMT_NACK, FMT_TCC = 1, 15
FMT_PLI, FMT_FIR, FMT_AFB = 1, 4, 15
SDES_CNAME = 1
XR_RRT, XR_DLRR = 4, 5
MAX_LENGTH_WORDS = 65535

_HEADER = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IB3sIIII")
_SENDER_INFO = struct.Struct("!IQIII")
_FEEDBACK = struct.Struct("!II")
_TCC_FIXED = struct.Struct("!IIHH3sB")


class RtcpMalformed(ValueError):
    """The peer sent a malformed RTCP packet; ``reason`` names the C error code."""

    def __init__(self, reason: str, sentence: str) -> None:
        super().__init__(f"{sentence} [{reason}]")
        self.reason = reason


class RtcpBuildError(ValueError):
    """A builder was given values the wire format cannot carry (or no room)."""

    def __init__(self, sentence: str, reason: str = "INVALID_ARGUMENT") -> None:
        super().__init__(f"{sentence} [{reason}]")
        self.reason = reason


def _sign(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def _pad4(n: int) -> int:
    return (n + 3) & ~3


# ---- common header and walk --------------------------------------------------------------


class Header(NamedTuple):
    """Common header of one sub-packet: ``body`` excludes the header and the padding."""

    packet_type: int
    count_fmt: int  # the 5-bit RC / SC / FMT field
    length: int
    padding: int
    body: bytes


def read_header(data: bytes, offset: int = 0) -> Header:
    """Read the sub-packet header at ``offset``; raise RtcpMalformed if it cannot stand."""
    avail = len(data) - offset
    if avail < 4:
        raise RtcpMalformed("HEADER_TRUNCATED", "fewer than 4 bytes left for an RTCP header")
    first, packet_type, words = _HEADER.unpack_from(data, offset)
    if first >> 6 != 2:
        raise RtcpMalformed("VERSION", f"RTCP version is {first >> 6}, not 2")
    length = 4 * (words + 1)
    if length > avail:
        raise RtcpMalformed("LENGTH", f"RTCP length {length} runs past the {avail} bytes left")
    padding = 0
    if first & 0x20:
        padding = data[offset + length - 1] if length > 4 else 0
        if padding == 0 or padding > length - 4:
            raise RtcpMalformed("PADDING", f"RTCP padding count {padding} is invalid")
    body = bytes(data[offset + 4 : offset + length - padding])
    return Header(packet_type, first & 0x1F, length, padding, body)


class Item(NamedTuple):
    offset: int
    length: int
    packet_type: int
    count_fmt: int
    padding: int


@dataclass(frozen=True)
class WalkError:
    index: int
    offset: int
    reason: str


def walk(data: bytes) -> tuple[list[Item], WalkError | None]:
    """Split a compound packet; the sub-packets before the first malformed one are kept."""
    if not data:
        return [], WalkError(0, 0, "EMPTY")
    items: list[Item] = []
    pos = 0
    while pos < len(data):
        try:
            h = read_header(data, pos)
        except RtcpMalformed as exc:
            return items, WalkError(len(items), pos, exc.reason)
        items.append(Item(pos, h.length, h.packet_type, h.count_fmt, h.padding))
        pos += h.length
    return items, None


def _open(data: bytes, packet_type: int, fmt: int | None = None) -> Header:
    h = read_header(data)
    if h.packet_type != packet_type or (fmt is not None and h.count_fmt != fmt):
        raise RtcpMalformed("WRONG_TYPE", f"expected RTCP type {packet_type}/{fmt}, got "
                            f"{h.packet_type}/{h.count_fmt}")
    return h


def _pack(packet_type: int, count: int, body: bytes) -> bytes:
    words = (4 + len(body)) // 4 - 1
    if len(body) % 4 or words > MAX_LENGTH_WORDS:
        raise RtcpBuildError(f"RTCP body of {len(body)} bytes cannot be framed")
    return _HEADER.pack(0x80 | count, packet_type, words) + body


def _check_count(n: int, what: str) -> None:
    if n > 31:
        raise RtcpBuildError(f"{n} {what} do not fit the 5-bit count")


# ---- SR / RR ------------------------------------------------------------------------------


@dataclass
class ReportBlock:
    ssrc: int
    fraction_lost: int
    packets_lost: int
    highest_seq: int
    jitter: int
    lsr: int
    dlsr: int

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> ReportBlock:
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        return cls(ssrc, fraction, _sign(int.from_bytes(lost, "big"), 24), highest, jitter,
                   lsr, dlsr)

    def __bytes__(self) -> bytes:
        if not (0 <= self.fraction_lost <= 255 and -(1 << 23) <= self.packets_lost < 1 << 23):
            raise RtcpBuildError("fraction lost or cumulative lost out of range")
        lost = (self.packets_lost & 0xFFFFFF).to_bytes(3, "big")
        return _BLOCK.pack(self.ssrc, self.fraction_lost, lost, self.highest_seq, self.jitter,
                           self.lsr, self.dlsr)


def _blocks(body: bytes, start: int, count: int) -> list[ReportBlock]:
    return [ReportBlock.parse(body, start + 24 * i) for i in range(count)]


@dataclass
class SenderReport:
    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)
    extension: bytes = b""  # profile-specific extension after the report blocks

    @classmethod
    def parse(cls, data: bytes) -> SenderReport:
        h = _open(data, SR)
        if len(h.body) < 24 + 24 * h.count_fmt:
            raise RtcpMalformed("TRUNCATED", f"SR body of {len(h.body)} bytes is too short "
                                f"for {h.count_fmt} report blocks")
        ssrc, ntp, rtp, packets, octets = _SENDER_INFO.unpack_from(h.body)
        end = 24 + 24 * h.count_fmt
        return cls(ssrc, ntp, rtp, packets, octets, _blocks(h.body, 24, h.count_fmt), h.body[end:])

    def __bytes__(self) -> bytes:
        _check_count(len(self.reports), "report blocks")
        body = _SENDER_INFO.pack(self.ssrc, self.ntp_timestamp, self.rtp_timestamp,
                                 self.packet_count, self.octet_count)
        body += b"".join(bytes(r) for r in self.reports) + self.extension
        return _pack(SR, len(self.reports), body)


@dataclass
class ReceiverReport:
    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)
    extension: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> ReceiverReport:
        h = _open(data, RR)
        if len(h.body) < 4 + 24 * h.count_fmt:
            raise RtcpMalformed("TRUNCATED", f"RR body of {len(h.body)} bytes is too short "
                                f"for {h.count_fmt} report blocks")
        end = 4 + 24 * h.count_fmt
        (ssrc,) = struct.unpack_from("!I", h.body)
        return cls(ssrc, _blocks(h.body, 4, h.count_fmt), h.body[end:])

    def __bytes__(self) -> bytes:
        _check_count(len(self.reports), "report blocks")
        body = struct.pack("!I", self.ssrc) + b"".join(bytes(r) for r in self.reports)
        return _pack(RR, len(self.reports), body + self.extension)


# ---- SDES / BYE ---------------------------------------------------------------------------


@dataclass
class SdesChunk:
    ssrc: int
    items: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def cname(self) -> bytes | None:
        return next((value for kind, value in self.items if kind == SDES_CNAME), None)


@dataclass
class SourceDescription:
    chunks: list[SdesChunk] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes) -> SourceDescription:
        h = _open(data, SDES)
        body, end, pos = h.body, len(h.body), 0
        chunks = []
        for _ in range(h.count_fmt):
            if pos + 4 > end:
                raise RtcpMalformed("TRUNCATED", "SDES chunk SSRC runs past the body")
            chunk = SdesChunk(int.from_bytes(body[pos : pos + 4], "big"))
            pos += 4
            while True:
                if pos >= end:
                    raise RtcpMalformed("SDES_UNTERMINATED", "SDES chunk has no null item")
                if body[pos] == 0:
                    pos = _pad4(pos + 1)
                    if pos > end:
                        raise RtcpMalformed("SDES_UNTERMINATED", "SDES chunk padding missing")
                    break
                if pos + 2 > end or pos + 2 + body[pos + 1] > end:
                    raise RtcpMalformed("TRUNCATED", "SDES item runs past the body")
                size = body[pos + 1]
                chunk.items.append((body[pos], body[pos + 2 : pos + 2 + size]))
                pos += 2 + size
            chunks.append(chunk)
        return cls(chunks)

    def __bytes__(self) -> bytes:
        _check_count(len(self.chunks), "SDES chunks")
        body = b""
        for chunk in self.chunks:
            raw = struct.pack("!I", chunk.ssrc)
            for kind, value in chunk.items:
                if not 0 < kind <= 255 or len(value) > 255:
                    raise RtcpBuildError("SDES item type or length out of range")
                raw += bytes([kind, len(value)]) + value
            raw += b"\x00"
            body += raw + b"\x00" * (_pad4(len(raw)) - len(raw))
        return _pack(SDES, len(self.chunks), body)


@dataclass
class Bye:
    sources: list[int] = field(default_factory=list)
    reason: bytes | None = None

    @classmethod
    def parse(cls, data: bytes) -> Bye:
        h = _open(data, BYE)
        pos = 4 * h.count_fmt
        if pos > len(h.body):
            raise RtcpMalformed("TRUNCATED", f"BYE body too short for {h.count_fmt} sources")
        reason = None
        if pos < len(h.body):
            size = h.body[pos]
            if pos + 1 + size > len(h.body):
                raise RtcpMalformed("TRUNCATED", "BYE reason runs past the body")
            reason = h.body[pos + 1 : pos + 1 + size]
        return cls(list(struct.unpack_from(f"!{h.count_fmt}I", h.body)), reason)

    def __bytes__(self) -> bytes:
        _check_count(len(self.sources), "BYE sources")
        body = struct.pack(f"!{len(self.sources)}I", *self.sources)
        if self.reason is not None:
            if len(self.reason) > 255:
                raise RtcpBuildError("BYE reason longer than 255 bytes")
            raw = bytes([len(self.reason)]) + self.reason
            body += raw + b"\x00" * (_pad4(len(raw)) - len(raw))
        return _pack(BYE, len(self.sources), body)


# ---- feedback: NACK, PLI, FIR, REMB ------------------------------------------------------


def _open_feedback(data: bytes, packet_type: int, fmt: int) -> tuple[Header, int, int]:
    h = _open(data, packet_type, fmt)
    if len(h.body) < 8:
        raise RtcpMalformed("TRUNCATED", "feedback message shorter than its two SSRCs")
    sender, media = _FEEDBACK.unpack_from(h.body)
    return h, sender, media


def _entries(h: Header, size: int) -> int:
    fci = len(h.body) - 8
    if fci % size:
        raise RtcpMalformed("ITEM_LENGTH", f"FCI of {fci} bytes is not whole {size}-byte entries")
    if fci == 0:
        raise RtcpMalformed("NO_ITEMS", "feedback message without any FCI entry")
    return fci // size


@dataclass
class GenericNack:
    sender_ssrc: int
    media_ssrc: int
    items: list[tuple[int, int]] = field(default_factory=list)  # (PID, BLP)

    @classmethod
    def parse(cls, data: bytes) -> GenericNack:
        h, sender, media = _open_feedback(data, RTPFB, FMT_NACK)
        n = _entries(h, 4)
        values = struct.unpack_from(f"!{2 * n}H", h.body, 8)
        return cls(sender, media, list(zip(values[0::2], values[1::2], strict=True)))

    @classmethod
    def from_lost(cls, sender_ssrc: int, media_ssrc: int, lost: list[int]) -> GenericNack:
        """Pack sequence numbers (in RTP order) greedily into PID+BLP items."""
        if not lost:
            raise RtcpBuildError("a generic NACK needs at least one lost sequence number")
        items = []
        pid, blp = lost[0], 0
        for seq in lost[1:]:
            distance = (seq - pid - 1) & 0xFFFF
            if distance < 16:
                blp |= 1 << distance
            else:
                items.append((pid, blp))
                pid, blp = seq, 0
        items.append((pid, blp))
        return cls(sender_ssrc, media_ssrc, items)

    @property
    def lost(self) -> list[int]:
        out = []
        for pid, blp in self.items:
            out.append(pid)
            out.extend((pid + bit + 1) & 0xFFFF for bit in range(16) if blp >> bit & 1)
        return out

    def __bytes__(self) -> bytes:
        if not self.items:
            raise RtcpBuildError("a generic NACK needs at least one item")
        fci = b"".join(struct.pack("!HH", pid, blp) for pid, blp in self.items)
        return _pack(RTPFB, FMT_NACK, _FEEDBACK.pack(self.sender_ssrc, self.media_ssrc) + fci)


@dataclass
class Pli:
    sender_ssrc: int
    media_ssrc: int
    fci: bytes = b""  # RFC 4585 says none; extra bytes are kept, not rejected

    @classmethod
    def parse(cls, data: bytes) -> Pli:
        h, sender, media = _open_feedback(data, PSFB, FMT_PLI)
        return cls(sender, media, h.body[8:])

    def __bytes__(self) -> bytes:
        return _pack(PSFB, FMT_PLI, _FEEDBACK.pack(self.sender_ssrc, self.media_ssrc) + self.fci)


@dataclass
class Fir:
    sender_ssrc: int
    media_ssrc: int
    entries: list[tuple[int, int]] = field(default_factory=list)  # (SSRC, command seq nr)

    @classmethod
    def parse(cls, data: bytes) -> Fir:
        h, sender, media = _open_feedback(data, PSFB, FMT_FIR)
        n = _entries(h, 8)
        entries = [struct.unpack_from("!IB", h.body, 8 + 8 * i) for i in range(n)]
        return cls(sender, media, [(ssrc, seq) for ssrc, seq in entries])

    def __bytes__(self) -> bytes:
        if not self.entries or any(not 0 <= seq <= 255 for _, seq in self.entries):
            raise RtcpBuildError("a FIR needs entries with 8-bit sequence numbers")
        fci = b"".join(struct.pack("!IB3x", ssrc, seq) for ssrc, seq in self.entries)
        return _pack(PSFB, FMT_FIR, _FEEDBACK.pack(self.sender_ssrc, self.media_ssrc) + fci)


def remb_encode(bitrate: int) -> tuple[int, int]:
    """(exponent, mantissa) with the smallest exponent whose mantissa fits 18 bits."""
    exponent = 0
    while bitrate >> exponent > 0x3FFFF:
        exponent += 1
    return exponent, bitrate >> exponent


@dataclass
class Remb:
    sender_ssrc: int
    media_ssrc: int
    bitrate: int
    ssrcs: list[int] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes) -> Remb:
        h, sender, media = _open_feedback(data, PSFB, FMT_AFB)
        body = h.body
        if len(body) < 12 or body[8:12] != b"REMB":
            raise RtcpMalformed("NOT_REMB", "application feedback is not a REMB")
        if len(body) < 16 or len(body) < 16 + 4 * body[12]:
            raise RtcpMalformed("TRUNCATED", "REMB SSRC list runs past the body")
        exponent, mantissa = body[13] >> 2, (body[13] & 3) << 16 | body[14] << 8 | body[15]
        bitrate = min(mantissa << exponent, (1 << 64) - 1)
        return cls(sender, media, bitrate, list(struct.unpack_from(f"!{body[12]}I", body, 16)))

    def __bytes__(self) -> bytes:
        if len(self.ssrcs) > 255 or not 0 <= self.bitrate < 1 << 64:
            raise RtcpBuildError("REMB bitrate or SSRC count out of range")
        exponent, mantissa = remb_encode(self.bitrate)
        fci = b"REMB" + struct.pack("!BBH", len(self.ssrcs), exponent << 2 | mantissa >> 16,
                                    mantissa & 0xFFFF)
        fci += struct.pack(f"!{len(self.ssrcs)}I", *self.ssrcs)
        return _pack(PSFB, FMT_AFB, _FEEDBACK.pack(self.sender_ssrc, self.media_ssrc) + fci)


# ---- transport-cc -------------------------------------------------------------------------


def _tcc_chunk(chunk: int, remaining: int) -> list[int]:
    """Status symbols of one packet chunk, at most ``remaining`` of them."""
    if not chunk & 0x8000:
        return [chunk >> 13 & 3] * min(chunk & 0x1FFF, remaining)
    if not chunk & 0x4000:
        return [chunk >> (13 - i) & 1 for i in range(min(14, remaining))]
    return [chunk >> (12 - 2 * i) & 3 for i in range(min(7, remaining))]


def _tcc_status(delta: int | None) -> int:
    return 0 if delta is None else 1 if 0 <= delta <= 255 else 2


def _tcc_next_chunk(statuses: list[int], i: int) -> tuple[int, int]:
    """(chunk value, packets covered) for the chunk starting at packet i; see rtcp.c."""
    remaining = len(statuses) - i
    first, run = statuses[i], 1
    while run < remaining and run < 8191 and statuses[i + run] == first:
        run += 1
    if run == remaining or run >= 14:
        return first << 13 | run, run
    window = statuses[i : i + 14]
    if 2 not in window:
        return 0x8000 | sum(s << (13 - k) for k, s in enumerate(window)), len(window)
    if run >= 7:
        return first << 13 | run, run
    window = statuses[i : i + 7]
    return 0xC000 | sum(s << (12 - 2 * k) for k, s in enumerate(window)), len(window)


@dataclass
class TransportFeedback:
    """Per packet from base_seq on: its receive delta in 250 us ticks, or None if not received."""

    sender_ssrc: int
    media_ssrc: int
    base_seq: int
    reference_time: int  # 24-bit signed, units of 64 ms
    fb_count: int
    deltas: list[int | None] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list, compare=False)  # as received

    @classmethod
    def parse(cls, data: bytes) -> TransportFeedback:
        h = _open(data, RTPFB, FMT_TCC)
        body = h.body
        if len(body) < 16:
            raise RtcpMalformed("TRUNCATED", "transport-cc shorter than its fixed fields")
        sender, media, base, count, ref, fb_count = _TCC_FIXED.unpack_from(body)
        statuses: list[int] = []
        pos = 16
        while len(statuses) < count:
            if pos + 2 > len(body):
                raise RtcpMalformed("TRUNCATED", "transport-cc packet chunks run past the body")
            symbols = _tcc_chunk(int.from_bytes(body[pos : pos + 2], "big"),
                                 count - len(statuses))
            if 3 in symbols:
                raise RtcpMalformed("TCC_RESERVED", "transport-cc status symbol 3 is reserved")
            statuses += symbols
            pos += 2
        if pos + sum(statuses) > len(body):
            raise RtcpMalformed("TRUNCATED", "transport-cc receive deltas run past the body")
        deltas: list[int | None] = []
        for status in statuses:
            if status == 0:
                deltas.append(None)
            elif status == 1:
                deltas.append(body[pos])
            else:
                deltas.append(_sign(int.from_bytes(body[pos : pos + 2], "big"), 16))
            pos += status
        return cls(sender, media, base, _sign(int.from_bytes(ref, "big"), 24), fb_count,
                   deltas, statuses)

    def __bytes__(self) -> bytes:
        n = len(self.deltas)
        if (n > 65535 or not 0 <= self.base_seq <= 0xFFFF or not 0 <= self.fb_count <= 255
                or not -(1 << 23) <= self.reference_time < 1 << 23
                or any(d is not None and not -32768 <= d <= 32767 for d in self.deltas)):
            raise RtcpBuildError("transport-cc field or delta out of range")
        statuses = [_tcc_status(d) for d in self.deltas]
        body = _TCC_FIXED.pack(self.sender_ssrc, self.media_ssrc, self.base_seq, n,
                               (self.reference_time & 0xFFFFFF).to_bytes(3, "big"),
                               self.fb_count)
        i = 0
        while i < n:
            chunk, covered = _tcc_next_chunk(statuses, i)
            body += struct.pack("!H", chunk)
            i += covered
        for status, delta in zip(statuses, self.deltas, strict=True):
            if status == 1:
                body += struct.pack("!B", delta)
            elif status == 2:
                body += struct.pack("!h", delta)
        body += b"\x00" * (_pad4(len(body)) - len(body))
        return _pack(RTPFB, FMT_TCC, body)


# ---- XR -----------------------------------------------------------------------------------


@dataclass
class XrBlock:
    """An XR report block other than RRT and DLRR, kept as it came."""

    block_type: int
    type_specific: int
    content: bytes


@dataclass
class ExtendedReport:
    sender_ssrc: int
    blocks: list[XrBlock | int | list[tuple[int, int, int]]] = field(default_factory=list)
    # each block: an int is an RRT NTP timestamp, a list is a DLRR's (ssrc, lrr, dlrr) triples

    @property
    def rrt(self) -> int | None:
        return next((b for b in self.blocks if isinstance(b, int)), None)

    @property
    def dlrr(self) -> list[tuple[int, int, int]]:
        return [sub for b in self.blocks if isinstance(b, list) for sub in b]

    @classmethod
    def parse(cls, data: bytes) -> ExtendedReport:
        body = _open(data, XR).body
        if len(body) < 4:
            raise RtcpMalformed("TRUNCATED", "XR shorter than its sender SSRC")
        xr = cls(int.from_bytes(body[:4], "big"))
        pos = 4
        while pos < len(body):
            if pos + 4 > len(body):
                raise RtcpMalformed("TRUNCATED", "XR block header runs past the body")
            block_type, specific, words = _HEADER.unpack_from(body, pos)
            content = body[pos + 4 : pos + 4 + 4 * words]
            if pos + 4 + 4 * words > len(body):
                raise RtcpMalformed("TRUNCATED", "XR block runs past the body")
            if block_type == XR_RRT:
                if words != 2:
                    raise RtcpMalformed("ITEM_LENGTH", f"XR RRT block of {words} words")
                xr.blocks.append(int.from_bytes(content, "big"))
            elif block_type == XR_DLRR:
                if words % 3:
                    raise RtcpMalformed("ITEM_LENGTH", f"XR DLRR block of {words} words")
                values = struct.unpack(f"!{words}I", content)
                xr.blocks.append(list(zip(values[0::3], values[1::3], values[2::3], strict=True)))
            else:
                xr.blocks.append(XrBlock(block_type, specific, content))
            pos += 4 + 4 * words
        return xr

    def __bytes__(self) -> bytes:
        body = struct.pack("!I", self.sender_ssrc)
        for block in self.blocks:
            if isinstance(block, int):
                body += struct.pack("!BBHQ", XR_RRT, 0, 2, block)
            elif isinstance(block, list):
                body += struct.pack("!BBH", XR_DLRR, 0, 3 * len(block))
                body += b"".join(struct.pack("!III", *sub) for sub in block)
            else:
                if len(block.content) % 4:
                    raise RtcpBuildError("XR block content is not whole 32-bit words")
                body += struct.pack("!BBH", block.block_type, block.type_specific,
                                    len(block.content) // 4) + block.content
        return _pack(XR, 0, body)


# ---- anything else, and compound packets --------------------------------------------------


@dataclass
class UnknownPacket:
    """APP, an unknown type or FMT, or application feedback that is not REMB."""

    packet_type: int
    count_fmt: int
    body: bytes

    def __bytes__(self) -> bytes:
        return _pack(self.packet_type, self.count_fmt, self.body)


Packet = (SenderReport | ReceiverReport | SourceDescription | Bye | GenericNack | Pli | Fir
          | Remb | TransportFeedback | ExtendedReport | UnknownPacket)

_PARSERS: dict[tuple[int, int | None], Any] = {
    (SR, None): SenderReport, (RR, None): ReceiverReport, (SDES, None): SourceDescription,
    (BYE, None): Bye, (XR, None): ExtendedReport, (RTPFB, FMT_NACK): GenericNack,
    (RTPFB, FMT_TCC): TransportFeedback, (PSFB, FMT_PLI): Pli, (PSFB, FMT_FIR): Fir,
    (PSFB, FMT_AFB): Remb,
}


def parse_packet(data: bytes) -> Packet:
    """Parse the sub-packet that starts at data[0] by its type and FMT."""
    h = read_header(data)
    parser = _PARSERS.get((h.packet_type, None)) or _PARSERS.get((h.packet_type, h.count_fmt))
    if parser is None:
        return UnknownPacket(h.packet_type, h.count_fmt, h.body)
    try:
        packet: Packet = parser.parse(data)
    except RtcpMalformed as exc:
        if exc.reason != "NOT_REMB":
            raise
        return UnknownPacket(h.packet_type, h.count_fmt, h.body)
    return packet


def parse_compound(data: bytes) -> tuple[list[Packet], WalkError | None]:
    """Parse every sub-packet; stop at the first malformed one and say which and why."""
    items, error = walk(data)
    packets: list[Packet] = []
    for index, item in enumerate(items):
        try:
            packets.append(parse_packet(data[item.offset : item.offset + item.length]))
        except RtcpMalformed as exc:
            return packets, WalkError(index, item.offset, exc.reason)
    return packets, error


def build_compound(packets: list[Packet]) -> bytes:
    return b"".join(bytes(packet) for packet in packets)
