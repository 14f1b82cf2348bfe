"""Key-frame requests towards producers (mediasoup's KeyFrameRequestManager), sans-IO.

Consumers ask for key frames (a PLI or FIR from their peer, a resume, a layer switch); the
producer side must turn many such asks into few PLI/FIR packets, and ask again if no key frame
comes. Per SSRC, as mediasoup:

- :meth:`KeyFrameRequestManager.keyframe_needed` returns True when a request must be sent now.
  A request is pending until :meth:`KeyFrameRequestManager.keyframe_received`. While pending,
  another ask sends nothing but arms a retry; the pending request times out after 1,000 ms: if
  a retry was armed (a fresh request arms one too) the request is sent again once (its timer
  restarts with no retry armed), otherwise it is forgotten.
- With ``key_frame_request_delay_ms`` > 0 (the producer's ``keyFrameRequestDelay``), the first
  ask opens a window of that length; asks inside it send nothing and are remembered, and when
  the window closes one ask is replayed (which may send a request and opens a new window). This
  merges PLI storms from many consumers into one request per window.
- :meth:`KeyFrameRequestManager.force_keyframe_needed` always sends, and restarts the window.

The I/O edge calls :meth:`KeyFrameRequestManager.on_timeout` when ``now`` reaches
:attr:`KeyFrameRequestManager.deadline`; it returns the SSRCs to send a request for. Time is
milliseconds (int). :meth:`KeyFrameRequestManager.build_request` makes the RTCP packet (PLI when
negotiated, else FIR with a per-SSRC sequence number that grows by one per FIR, modulo 256).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from worker._fast import Fir, FirEntry, Pli

__all__ = ["KEY_FRAME_RETRY_WAIT_MS", "KeyFrameRequestManager"]

KEY_FRAME_RETRY_WAIT_MS: Final = 1000


@dataclass(slots=True)
class _Pending:
    deadline: int
    retry_on_timeout: bool = True


@dataclass(slots=True)
class _Delayer:
    deadline: int
    requested: bool = False


class KeyFrameRequestManager:
    """Pending key-frame requests of one producer, by SSRC."""

    __slots__ = ("_delayers", "_fir_seq", "_pending", "delay_ms", "requests_sent")

    def __init__(self, key_frame_request_delay_ms: int = 0) -> None:
        if key_frame_request_delay_ms < 0:
            raise ValueError("key_frame_request_delay_ms must not be negative")
        self.delay_ms = key_frame_request_delay_ms
        self._pending: dict[int, _Pending] = {}
        self._delayers: dict[int, _Delayer] = {}
        self._fir_seq: dict[int, int] = {}
        self.requests_sent = 0

    def is_pending(self, ssrc: int) -> bool:
        return ssrc in self._pending

    @property
    def deadline(self) -> int | None:
        """The earliest timer, ms; None when idle."""
        times = [p.deadline for p in self._pending.values()]
        times += [d.deadline for d in self._delayers.values()]
        return min(times) if times else None

    def keyframe_needed(self, ssrc: int, now: int) -> bool:
        """A key frame is wanted for ``ssrc``; True if a PLI/FIR must be sent now."""
        if self.delay_ms > 0:
            delayer = self._delayers.get(ssrc)
            if delayer is not None:
                delayer.requested = True
                return False
            self._delayers[ssrc] = _Delayer(now + self.delay_ms)
        pending = self._pending.get(ssrc)
        if pending is not None:
            pending.retry_on_timeout = True
            return False
        self._pending[ssrc] = _Pending(now + KEY_FRAME_RETRY_WAIT_MS)
        self.requests_sent += 1
        return True

    def force_keyframe_needed(self, ssrc: int, now: int) -> bool:
        """A key frame is wanted regardless of pending requests; always True (send now)."""
        if self.delay_ms > 0:
            self._delayers[ssrc] = _Delayer(now + self.delay_ms)
        pending = self._pending.get(ssrc)
        if pending is not None:
            pending.retry_on_timeout = True
            pending.deadline = now + KEY_FRAME_RETRY_WAIT_MS
        else:
            self._pending[ssrc] = _Pending(now + KEY_FRAME_RETRY_WAIT_MS)
        self.requests_sent += 1
        return True

    def keyframe_received(self, ssrc: int) -> None:
        """A key frame arrived on ``ssrc``: its pending request is satisfied."""
        self._pending.pop(ssrc, None)

    def remove(self, ssrc: int) -> None:
        """Forget ``ssrc`` entirely (its stream closed)."""
        self._pending.pop(ssrc, None)
        self._delayers.pop(ssrc, None)
        self._fir_seq.pop(ssrc, None)

    def close(self) -> None:
        self._pending.clear()
        self._delayers.clear()
        self._fir_seq.clear()

    def on_timeout(self, now: int) -> list[int]:
        """Run every timer due at ``now``; returns the SSRCs to send a request for now."""
        out: list[int] = []
        while True:
            due = self._next_due(now)
            if due is None:
                break
            ssrc, is_delayer = due
            if is_delayer:
                requested = self._delayers.pop(ssrc).requested
                if requested and self.keyframe_needed(ssrc, now):
                    out.append(ssrc)
                continue
            pending = self._pending[ssrc]
            if not pending.retry_on_timeout:
                del self._pending[ssrc]
                continue
            pending.retry_on_timeout = False
            pending.deadline = now + KEY_FRAME_RETRY_WAIT_MS
            self.requests_sent += 1
            out.append(ssrc)
        return list(dict.fromkeys(out))

    def _next_due(self, now: int) -> tuple[int, bool] | None:
        best: tuple[int, int, int] | None = None  # (deadline, order, ssrc): delayers first
        for ssrc, delayer in self._delayers.items():
            if delayer.deadline <= now and (best is None or (delayer.deadline, 0) < best[:2]):
                best = (delayer.deadline, 0, ssrc)
        for ssrc, pending in self._pending.items():
            if pending.deadline <= now and (best is None or (pending.deadline, 1) < best[:2]):
                best = (pending.deadline, 1, ssrc)
        return None if best is None else (best[2], best[1] == 0)

    def next_fir_seq(self, ssrc: int) -> int:
        """The FIR command sequence number for the next FIR on ``ssrc`` (1, 2, ..., 255, 0)."""
        seq = (self._fir_seq.get(ssrc, 0) + 1) & 0xFF
        self._fir_seq[ssrc] = seq
        return seq

    def build_request(self, ssrc: int, *, use_pli: bool, use_fir: bool,
                      sender_ssrc: int | None = None) -> Pli | Fir | None:
        """The RTCP request for ``ssrc``: PLI if negotiated, else FIR, else None.

        As mediasoup, the sender SSRC defaults to the media SSRC (some receivers, GStreamer
        among them, reject 0)."""
        sender = ssrc if sender_ssrc is None else sender_ssrc
        if use_pli:
            return Pli(sender, ssrc)
        if use_fir:
            return Fir(sender, ssrc, [FirEntry(ssrc, self.next_fir_seq(ssrc))])
        return None
