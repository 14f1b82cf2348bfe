"""Which producer an incoming RTP packet belongs to, for one transport (mediasoup's RtpListener).

A producer registers the SSRCs it announces (media and RTX), its MID and its RIDs. A packet is
matched by SSRC first; an unknown SSRC is matched by the packet's MID extension, then by its
RID extension, and the SSRC is then bound to that producer so that later packets take the
first, cheapest look-up. A MID or SSRC already used by another producer of the transport is an
``Error`` at produce time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from worker.errors import WorkerError

if TYPE_CHECKING:
    from worker.producer import Producer

__all__ = ["RtpListener"]


class RtpListener:
    __slots__ = ("mid_table", "rid_table", "ssrc_table")

    def __init__(self) -> None:
        self.ssrc_table: dict[int, Producer] = {}
        self.mid_table: dict[str, Producer] = {}
        self.rid_table: dict[str, Producer] = {}

    def add_producer(self, producer: Producer) -> None:
        """Register ``producer``'s SSRCs, MID and RIDs; nothing is registered on error."""
        ssrcs = producer.announced_ssrcs()
        for ssrc in ssrcs:
            owner = self.ssrc_table.get(ssrc)
            if owner is not None and owner is not producer:
                raise WorkerError(f"ssrc already exists in RTP listener [ssrc:{ssrc}]")
        mid = producer.mid
        if mid is not None and self.mid_table.get(mid, producer) is not producer:
            raise WorkerError(f"MID already exists in RTP listener [mid:{mid}]")
        rids = producer.rids()
        for rid in rids:
            if self.rid_table.get(rid, producer) is not producer:
                raise WorkerError(f"RID already exists in RTP listener [rid:{rid}]")
        for ssrc in ssrcs:
            self.ssrc_table[ssrc] = producer
        if mid is not None:
            self.mid_table[mid] = producer
        for rid in rids:
            self.rid_table[rid] = producer

    def remove_producer(self, producer: Producer) -> None:
        for ssrc in [k for k, p in self.ssrc_table.items() if p is producer]:
            del self.ssrc_table[ssrc]
        for table in (self.mid_table, self.rid_table):
            for key in [k for k, p in table.items() if p is producer]:
                del table[key]

    def find(self, ssrc: int, mid: str | None, rid: str | None) -> Producer | None:
        """The producer of a packet with an SSRC not in the table (mid/rid from its header
        extensions); binds the SSRC to it when found."""
        producer = None
        if mid is not None:
            producer = self.mid_table.get(mid)
        if producer is None and rid is not None:
            producer = self.rid_table.get(rid)
        if producer is not None:
            self.ssrc_table[ssrc] = producer
        return producer

    def bind_ssrc(self, ssrc: int, producer: Producer) -> None:
        self.ssrc_table[ssrc] = producer

    def dump(self) -> dict[str, Any]:
        return {
            "ssrcTable": [{"key": k, "value": p.id} for k, p in self.ssrc_table.items()],
            "midTable": [{"key": k, "value": p.id} for k, p in self.mid_table.items()],
            "ridTable": [{"key": k, "value": p.id} for k, p in self.rid_table.items()],
        }
