"""Pure-Python reference for the fan-out with its egress header extensions
(``cffi_build/forward.c``): :func:`tests.reference.forward.forward`'s rules, plus, per output,
after the extension-id remap and before SRTP:

- MID (``mid`` with a non-zero ``midExtId``): ``rtp.ext_put`` of the MID's bytes, within the slot
  less the SRTP trailer room; a failure counts ``rewrite_failed`` (the consumer's ``failures``
  and ``last_error``, as a failed remap) and makes no output;
- abs-send-time (``absSendTimeExtId``): the first of the first 16 elements with that id, when its
  value is 3 bytes, gets ``abs_time`` (big-endian); otherwise nothing changes;
- transport-wide sequence number (``twccExtId``): the same lookup for a 2-byte value, which gets
  the consumer's counter + 1 (mod 2^16); the counter takes that value (an output not made uses
  no number).

The consumer's ``bytes`` count the output after these steps. ``counters`` maps each
``twccCounter`` object to its value (the last number used) and is updated in place.
"""

from __future__ import annotations

import struct
from collections.abc import Hashable, Mapping, MutableMapping, Sequence
from dataclasses import replace
from typing import Any

from tests.reference import rtp
from tests.reference.forward import RefConsumerState, RefOutput, RefResult, _one


def _value_at(data: bytes, ext_id: int, length: int) -> int | None:
    element = rtp.parse_header(data).find(ext_id)
    if element is None or len(element.value) != length:
        return None
    return element.offset


def egress(spec: Mapping[str, Any], data: bytes, cap: int, abs_time: int,
           counters: Mapping[Any, int]) -> tuple[bytes, tuple[Any, int] | None]:
    """The output after the three extension steps, and the TWCC (counter, number) it used.
    Raises ``rtp.RtpError`` when the MID cannot be put."""
    mid, mid_id = spec.get("mid"), spec.get("midExtId", 0)
    if mid is not None and mid_id:
        data = rtp.ext_put(data, cap, mid_id, mid.encode())
    out = bytearray(data)
    abs_id = spec.get("absSendTimeExtId", 0)
    offset = _value_at(data, abs_id, 3) if abs_id else None
    if offset is not None:
        out[offset : offset + 3] = (abs_time & 0xFFFFFF).to_bytes(3, "big")
    used = None
    twcc_id = spec.get("twccExtId", 0)
    offset = _value_at(data, twcc_id, 2) if twcc_id else None
    if offset is not None:
        counter = spec["twccCounter"]
        number = (counters[counter] + 1) & 0xFFFF
        struct.pack_into("!H", out, offset, number)
        used = (counter, number)
    return bytes(out), used


def _output(spec: Mapping[str, Any], packet: bytes, info: rtp.HeaderInfo, slot_size: int,
            states: dict[Hashable, RefConsumerState], counts: dict[str, int], abs_time: int,
            counters: MutableMapping[Any, int]) -> bytes | None:
    state = states.setdefault(spec["id"], RefConsumerState())
    trial = replace(state)
    data = _one(spec, packet, info, slot_size, trial, counts)
    if data is None:
        states[spec["id"]] = trial
        return None
    cap = slot_size - (16 if spec.get("srtp") is not None else 0)
    try:
        final, used = egress(spec, data, cap, abs_time, counters)
    except rtp.RtpError as exc:
        state.failures += 1
        state.last_error = exc.reason
        counts["rewrite_failed"] += 1
        return None
    trial.bytes += len(final) - len(data)
    states[spec["id"]] = trial
    if used is not None:
        counters[used[0]] = used[1]
    return final


def forward(packets: Sequence[bytes], producers: Mapping[int, Sequence[Mapping[str, Any]]],
            states: dict[Hashable, RefConsumerState], free_count: int, slot_size: int,
            in_slot_size: int = 1 << 30, *, abs_time: int = 0,
            counters: MutableMapping[Any, int] | None = None) -> RefResult:
    """Fan out ``packets``; ``states`` (by consumer id) and ``counters`` are updated in place.
    Without ``counters``, each ``twccCounter`` starts from its ``value``."""
    if counters is None:
        counters = {}
    for specs in producers.values():
        for spec in specs:
            counter = spec.get("twccCounter")
            if counter is not None and counter not in counters:
                counters[counter] = counter.value
    result = RefResult()
    counts = result.counts
    stopped_at = len(packets)
    for i, packet in enumerate(packets):
        try:
            if len(packet) > in_slot_size:
                raise rtp.RtpError(rtp.Reason.BAD_ARGUMENT, "longer than its slot")
            info = rtp.parse_header(packet)
        except rtp.RtpError:
            counts["malformed"] += 1
            continue
        consumers = producers.get(info.ssrc)
        if consumers is None:
            counts["unknown_ssrc"] += 1
            continue
        active = sum(1 for spec in consumers if not spec.get("paused", False))
        if active > free_count - len(result.outputs):
            stopped_at = i
            break
        counts["handled"] += 1
        for spec in consumers:
            if spec.get("paused", False):
                counts["paused"] += 1
                continue
            data = _output(spec, packet, info, slot_size, states, counts, abs_time, counters)
            if data is not None:
                result.outputs.append(RefOutput(spec["id"], data, tuple(spec["dest"])))
    counts["stopped_at"] = stopped_at
    counts["out_of_slots"] = len(packets) - stopped_at
    counts["outputs"] = counts["forwarded"] = len(result.outputs)
    return result
