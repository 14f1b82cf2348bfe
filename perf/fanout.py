"""``python -m perf.fanout``: the fan-out load harness's command line.

One producer PlainTransport on a real ``python -m worker``, N consumer PlainTransports, RTP blasted
from a C generator at a fixed rate, every forwarded packet checked by C receivers, the worker's
CPU time per output packet, and the same run through a plain C forwarder (recvmmsg + sendmmsg,
no parsing) as the baseline; see :mod:`perf.fanout_rig` for how a run works.

Usage::

    python -m perf.fanout                        # the default variants, about a minute
    python -m perf.fanout --all                  # N = 1, 10, 100 x plain, SRTP x 200, 1200 B
    python -m perf.fanout --consumers 1,10 --srtp both --sizes 200
    python -m perf.fanout --search               # also the highest rate with < 1% loss
    python -m perf.fanout --search-baseline      # and the C forwarder's own highest rate
    python -m perf.fanout --srtp both --gcm      # SRTP with AEAD_AES_128_GCM
    python -m perf.fanout --json fanout.json     # keep every figure

Without ``--all``, ``--consumers``, ``--srtp`` or ``--sizes`` it runs the default variants
(:data:`perf.fanout_rig.DEFAULT_VARIANTS`: N=10 plain 1200 B, N=10 SRTP 1200 B, N=100 plain
1200 B, N=1 plain 200 B); with any of them, every combination of the values given (the others
default to N=10, plain, 1200 B). A 200-byte variant is an Opus producer, a 1200-byte one a VP8
producer. The default input rate is 30,000 / N packets/s, at most 10,000 (``--rate`` sets it for
every variant).

Prints one line per variant as it finishes, then a table: input and output packets/s, loss %,
CPU µs per output packet of the worker and of the baseline, their ratio, and with ``--search``
the highest input rate the worker forwarded with under 1% loss while keeping up (and its CPU µs
per output there). Exit status 0; 1 when a receiver found a packet that was forwarded wrong
(duplicated, reordered, a wrong header or payload, SRTP that does not verify); loss alone is
reported, not failed; 130 when interrupted (Ctrl-C; the worker and every C program are stopped
first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Final

from perf.fanout_rig import (
    BUFFER_BYTES,
    DEFAULT_VARIANTS,
    KIND_BY_SIZE,
    MAX_LOSS_PCT,
    SEARCH_STEPS,
    SRTP_SUITE,
    RunResult,
    Variant,
    VariantResult,
    build_tools,
    run_variant,
)

__all__ = ["format_table", "main", "select_variants"]

CONSUMER_CHOICES: Final = (1, 10, 100)
SETUP_BOUND_S: Final = 60.0  # worker start, N transports, priming, closing: per variant, at most


def _int_list(choices: Sequence[int]) -> Callable[[str], list[int]]:
    def parse(text: str) -> list[int]:
        try:
            values = [int(part) for part in text.split(",") if part]
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
        bad = [v for v in values if v not in choices]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"choose among {', '.join(map(str, choices))}")
        return values

    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m perf.fanout",
        description="Fan-out load harness: 1 producer PlainTransport, N consumer PlainTransports "
                    "on a real worker, against a plain C recvmmsg/sendmmsg forwarder.")
    p.add_argument("--consumers", type=_int_list(CONSUMER_CHOICES), metavar="N[,N...]",
                   help="consumers per variant, among 1, 10, 100")
    p.add_argument("--srtp", choices=("off", "on", "both"),
                   help="plain RTP, SRTP (AES_CM_128_HMAC_SHA1_80) or both")
    p.add_argument("--gcm", action="store_true",
                   help="SRTP variants use AEAD_AES_128_GCM instead of AES_CM_128_HMAC_SHA1_80")
    p.add_argument("--sizes", type=_int_list(tuple(KIND_BY_SIZE)), metavar="B[,B...]",
                   help="payload bytes: 200 (Opus producer), 1200 (VP8 producer)")
    p.add_argument("--all", action="store_true", help="every combination (12 variants)")
    p.add_argument("--seconds", type=float, default=5.0,
                   help="length of each measured run (default: %(default)s)")
    p.add_argument("--rate", type=float,
                   help="input packets/s for every variant (default: 30000/N, at most 10000)")
    p.add_argument("--search", action="store_true",
                   help=f"also search the highest input rate with < {MAX_LOSS_PCT:g}%% loss")
    p.add_argument("--search-baseline", action="store_true",
                   help="also search the baseline forwarder's own highest rate (this machine's "
                        "kernel limit)")
    p.add_argument("--search-seconds", type=float, default=2.0,
                   help="length of each run of the search (default: %(default)s)")
    p.add_argument("--buffer-bytes", type=int, default=BUFFER_BYTES,
                   help="SO_SNDBUF and SO_RCVBUF of every socket (default: %(default)s)")
    p.add_argument("--no-baseline", action="store_true", help="skip the C forwarder")
    p.add_argument("--json", type=Path, help="write every figure to this file")
    return p


def select_variants(args: argparse.Namespace) -> list[Variant]:
    """The variants the command line asks for (see the module docstring)."""
    suite = "AEAD_AES_128_GCM" if args.gcm else SRTP_SUITE
    if args.all:
        consumers, srtp, sizes = list(CONSUMER_CHOICES), [False, True], list(KIND_BY_SIZE)
    elif args.consumers is None and args.srtp is None and args.sizes is None:
        return [replace(v, suite=suite) for v in DEFAULT_VARIANTS]
    else:
        consumers = args.consumers or [10]
        srtp = {"off": [False], "on": [True], "both": [False, True], None: [False]}[args.srtp]
        sizes = args.sizes or [1200]
    return [Variant(n, s, b, suite) for n in consumers for s in srtp for b in sizes]


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _line(result: VariantResult) -> str:
    w, b = result.worker, result.baseline
    text = (f"{result.variant.name}: in {w.in_pps:,.0f} pps, out {w.out_pps:,.0f} pps, "
            f"loss {w.loss_pct:.3f}%, worker {w.cpu_us_per_output:.2f} us/out")
    if b is not None:
        text += (f"; baseline {b.cpu_us_per_output:.2f} us/out (loss {b.loss_pct:.3f}%), "
                 f"ratio {result.ratio:.2f}")
    if result.search is not None:
        text += f"; max in {_cell(result.search.best_in_pps, ',.0f')} pps"
        if result.ratio_at_best is not None:
            text += f" (ratio there {result.ratio_at_best:.2f})"
    if result.baseline_search is not None:
        text += f"; baseline max in {_cell(result.baseline_search.best_in_pps, ',.0f')} pps"
    return text


def _us(run: RunResult | None) -> float | None:
    return None if run is None else run.cpu_us_per_output


def format_table(results: Sequence[VariantResult]) -> str:
    """The results as a fixed-width table, with a line per check that failed. With ``--search``
    four more columns: the worker's best rate and, at that rate, the CPU µs per output of the
    worker and of the baseline, and their ratio."""
    searched = any(r.search is not None for r in results)
    base_searched = any(r.baseline_search is not None for r in results)
    head = (f"{'variant':<17}{'in pps':>8}{'out pps':>9}{'loss %':>7}{'worker':>8}"
            f"{'base':>7}{'ratio':>6}")
    units = f"{'':<17}{'':>8}{'':>9}{'':>7}{'us/out':>8}{'us/out':>7}{'':>6}"
    if searched:
        head += f" |{'max in pps':>11}{'worker':>8}{'base':>7}{'ratio':>6}"
        units += f" |{'<1% loss':>11}{'us/out':>8}{'us/out':>7}{'':>6}"
    if base_searched:
        head += f" |{'base max':>11}"
        units += f" |{'in pps':>11}"
    lines = [head, units]
    notes = []
    for r in results:
        w, b = r.worker, r.baseline
        row = (f"{r.variant.name:<17}{w.in_pps:>8,.0f}{w.out_pps:>9,.0f}{w.loss_pct:>7.2f}"
               f"{w.cpu_us_per_output:>8.2f}{_cell(_us(b), '.2f'):>7}{_cell(r.ratio, '.2f'):>6}")
        if searched:
            best = None if r.search is None else r.search.best
            bound = "+" if r.search is not None and r.search.generator_bound else ""
            row += (f" |{_cell(None if best is None else best.in_pps, ',.0f') + bound:>11}"
                    f"{_cell(_us(best), '.2f'):>8}{_cell(_us(r.baseline_at_best), '.2f'):>7}"
                    f"{_cell(r.ratio_at_best, '.2f'):>6}")
        if base_searched:
            bs = r.baseline_search
            best_base = None if bs is None else bs.best_in_pps
            bound = "+" if bs is not None and bs.generator_bound else ""
            row += f" |{_cell(best_base, ',.0f') + bound:>11}"
        lines.append(row)
        for run in (w, b, r.baseline_at_best, *(r.search.steps if r.search else ())):
            if run is not None and run.errors:
                notes.append(f"  {r.variant.name} {run.target} at {run.rate:,.0f} pps: "
                             f"receivers found {run.errors}")
    if any(r.search is not None and r.search.generator_bound for r in results):
        notes.append("  +: the generator could not send faster; the worker may forward more")
    return "\n".join(line.rstrip() for line in lines + notes)


async def _run(args: argparse.Namespace, variants: list[Variant]) -> list[VariantResult]:
    tools = build_tools()
    results = []
    for variant in variants:
        result = await run_variant(variant, tools, seconds=args.seconds, rate=args.rate,
                                   baseline=not args.no_baseline, search=args.search,
                                   search_seconds=args.search_seconds,
                                   search_baseline=args.search_baseline,
                                   buffer_bytes=args.buffer_bytes)
        print(_line(result), flush=True)
        results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.seconds <= 0 or args.search_seconds <= 0 or (args.rate is not None and args.rate <= 0):
        _parser().error("--seconds, --search-seconds and --rate must be positive")
    variants = select_variants(args)
    per_variant = 2 * (args.seconds + SETUP_BOUND_S)
    if args.search:
        per_variant += SEARCH_STEPS * (3 * args.search_seconds + 10)
    if args.search_baseline:
        per_variant += SEARCH_STEPS * (3 * args.search_seconds + 10)
    bound = len(variants) * per_variant
    print(f"{len(variants)} variant(s), {args.seconds:g} s each; worker and baseline CPU time "
          f"per output packet; socket buffers {args.buffer_bytes} B", flush=True)
    try:
        results = asyncio.run(asyncio.wait_for(_run(args, variants), bound))
    except TimeoutError:
        print(f"fanout: not done after {bound:.0f} s", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # every process it started was stopped on the way out
        print("fanout: interrupted", file=sys.stderr)
        return 130
    print()
    print(format_table(results))
    if args.json is not None:
        args.json.write_text(json.dumps([r.summary() for r in results], indent=2) + "\n")
    runs = [run for r in results for run in (r.worker, r.baseline, r.baseline_at_best)
            if run is not None]
    return 1 if any(run.errors for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
