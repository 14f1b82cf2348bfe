"""Benchmark STUN: parse of ICE binding requests and build of binding responses (pyperf).

Usage::

    python -m perf.bm_stun            # full run
    python -m perf.bm_stun --fast     # quick run
    python -m perf.bm_stun --fast -o stun.json   # keep the results

Every pyperf option works (``--help``). Times are **per message**; each benchmark walks a list of
``MESSAGES`` seeded messages per loop and pyperf divides by it (``inner_loops``). Each pair is
the C path through :mod:`worker._fast` (``_c``) and the pure-Python reference
``tests/reference/stun.py`` (``_ref``):

- ``stun_parse_*``: parse a typical browser ICE binding request (USERNAME, GOOG-NETWORK-INFO,
  ICE-CONTROLLING, USE-CANDIDATE, PRIORITY, MESSAGE-INTEGRITY, FINGERPRINT: 100 bytes), with the
  FINGERPRINT checked, into a value the caller can read.
- ``stun_check_*``: the same parse, then MESSAGE-INTEGRITY checked with the ICE password: what
  an ICE-lite agent does with every request it accepts.
- ``stun_build_success_*``: a binding success response (XOR-MAPPED-ADDRESS, IPv4 and IPv6 in
  turn, MESSAGE-INTEGRITY, FINGERPRINT) to each request.
- ``stun_build_error_*``: a 487 Role Conflict error response with MESSAGE-INTEGRITY.
"""

from __future__ import annotations

import ipaddress
import random
import string
import sys
from collections.abc import Callable
from time import perf_counter
from typing import Any, Final

import pyperf

from tests.reference import stun as ref
from worker import _fast

__all__ = ["MESSAGES", "SEED", "benchmark_names", "main", "requests", "responses"]

SEED: Final = 20240612
MESSAGES: Final = 64
PASSWORD: Final = "Rk5yOGq2xVz1mN4bT8cW0dLp"  # 24 characters, as browsers generate
GOOG_NETWORK_INFO: Final = 0xC057


def _ufrag(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_letters + string.digits + "+/", k=4))


def requests(seed: int = SEED) -> list[bytes]:
    """``MESSAGES`` browser-style binding requests, the same bytes for the same seed."""
    rng = random.Random(seed)
    out = []
    for _ in range(MESSAGES):
        attrs: dict[int, Any] = {
            ref.USERNAME: f"{_ufrag(rng)}:{_ufrag(rng)}".encode(),
            GOOG_NETWORK_INFO: rng.randbytes(4),
            ref.ICE_CONTROLLING: rng.getrandbits(64),
            ref.USE_CANDIDATE: True,
            ref.PRIORITY: rng.getrandbits(31),
        }
        message = ref.StunMessage(ref.METHOD_BINDING, ref.StunClass.REQUEST, rng.randbytes(12),
                                  attrs)
        out.append(message.build(PASSWORD.encode()))
    return out


def responses(seed: int = SEED) -> list[tuple[bytes, str, int]]:
    """(transaction id, address, port) for each response: IPv4 and IPv6 in turn."""
    rng = random.Random(seed + 1)
    out = []
    for n in range(MESSAGES):
        if n % 2:
            host = str(ipaddress.IPv6Address(rng.getrandbits(128)))
        else:
            host = str(ipaddress.IPv4Address(rng.getrandbits(32)))
        out.append((rng.randbytes(12), host, rng.randrange(1024, 65536)))
    return out


def benchmark_names() -> list[str]:
    """Every benchmark this script runs, in order."""
    return [f"stun_{name}_{side}" for name in ("parse", "check", "build_success", "build_error")
            for side in ("c", "ref")]


# -- the two sides -----------------------------------------------------------------------------


def _check_c(data: bytes) -> bool:
    return _fast.check_message_integrity(data, _fast.parse_stun(data), PASSWORD)


def _check_ref(data: bytes) -> bool:
    return ref.check_message_integrity(data, ref.parse_message(data), PASSWORD.encode())


def _success_c(tid: bytes, host: str, port: int) -> bytes:
    return _fast.build_binding_success(tid, host, port, PASSWORD)


def _success_ref(tid: bytes, host: str, port: int) -> bytes:
    return ref.binding_success(tid, host, port, PASSWORD.encode())


def _error_c(tid: bytes, host: str, port: int) -> bytes:
    return _fast.build_binding_error(tid, 487, "Role Conflict", PASSWORD)


def _error_ref(tid: bytes, host: str, port: int) -> bytes:
    return ref.binding_error(tid, 487, "Role Conflict", PASSWORD.encode())


# -- timed functions (pyperf calls them with the number of loops) ---------------------------


def time_each(loops: int, func: Callable[[bytes], object], datagrams: list[bytes]) -> float:
    t0 = perf_counter()
    for _ in range(loops):
        for data in datagrams:
            func(data)
    return perf_counter() - t0


def time_build(loops: int, func: Callable[[bytes, str, int], bytes],
               args: list[tuple[bytes, str, int]]) -> float:
    t0 = perf_counter()
    for _ in range(loops):
        for tid, host, port in args:
            func(tid, host, port)
    return perf_counter() - t0


def _check_sides(datagrams: list[bytes], args: list[tuple[bytes, str, int]]) -> None:
    """Both sides give the same answers on the benchmark data: we time working code."""
    for data in datagrams:
        view, message = _fast.parse_stun(data), ref.parse_message(data)
        if (view.username != message.attributes[ref.USERNAME] or not view.fingerprint_valid
                or not message.fingerprint_valid or not _check_c(data) or not _check_ref(data)):
            raise AssertionError("C and reference disagree on a benchmark request")
    for tid, host, port in args:
        if (_success_c(tid, host, port) != _success_ref(tid, host, port)
                or _error_c(tid, host, port) != _error_ref(tid, host, port)):
            raise AssertionError("C and reference build different responses")


def main() -> None:
    # Worker processes must be spawned the way this one was started: `-m perf.bm_...` keeps
    # the `perf` and `tests` packages importable.
    program_args = ("-m", __spec__.name) if __spec__ is not None else (sys.argv[0],)
    runner = pyperf.Runner(program_args=program_args)
    runner.metadata["description"] = "STUN: per-message parse, integrity check and build"
    runner.metadata["stun_seed"] = str(SEED)

    datagrams, args = requests(), responses()
    _check_sides(datagrams, args)
    meta = {"request_bytes": str(len(datagrams[0]))}
    timed: list[tuple[str, Callable[..., float], tuple[Any, ...]]] = [
        ("stun_parse_c", time_each, (_fast.parse_stun, datagrams)),
        ("stun_parse_ref", time_each, (ref.parse_message, datagrams)),
        ("stun_check_c", time_each, (_check_c, datagrams)),
        ("stun_check_ref", time_each, (_check_ref, datagrams)),
        ("stun_build_success_c", time_build, (_success_c, args)),
        ("stun_build_success_ref", time_build, (_success_ref, args)),
        ("stun_build_error_c", time_build, (_error_c, args)),
        ("stun_build_error_ref", time_build, (_error_ref, args)),
    ]
    for name, func, func_args in timed:
        runner.bench_time_func(name, func, *func_args, inner_loops=MESSAGES, metadata=meta)


if __name__ == "__main__":
    main()
