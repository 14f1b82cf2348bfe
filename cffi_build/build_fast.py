"""Build script for ``worker._fastlib``, the compiled hot path.

The C lives in real files beside this script, one header and one source per area (classify, RTP,
RTCP, STUN, socket batches). cffi reads the headers with their preprocessor lines skipped, so the
declarations in them must stand without macros. ``worker/_fast/_lib.py`` is the only module
that imports the compiled extension. Set ``MW_SANITIZE=1`` to build with AddressSanitizer and UBSan.
"""

from __future__ import annotations

import os
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
AREAS = ["fast", "rtp", "rtcp", "stun", "sockio", "srtp", "forward", "pool", "store", "keyframe",
         "recv_stream", "ingress"]
HEADERS = [f"{area}.h" for area in AREAS]
SOURCES = [*(f"{area}.c" for area in AREAS), "rtcp_build.c"]
PRIVATE_HEADERS = ["rtcp_wire.h"]  # shared by some sources, not part of the cffi declarations


def _cdef_text(header: Path) -> str:
    """The header without preprocessor lines, which cffi's parser does not take."""
    lines = header.read_text().splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def _compile_args() -> list[str]:
    args = ["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"]
    if os.environ.get("MW_SANITIZE") == "1":
        args += ["-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                 "-fno-sanitize-recover=undefined"]
    return args


def _link_args() -> list[str]:
    if os.environ.get("MW_SANITIZE") == "1":
        return ["-fsanitize=address,undefined"]
    return []


def _source_path(name: str) -> str:
    """setuptools wants sources relative to setup.py's folder when they are inside it."""
    path = HERE / name
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


ffibuilder = FFI()
ffibuilder.cdef("\n".join(_cdef_text(HERE / header) for header in HEADERS))
ffibuilder.set_source(
    "worker._fastlib",
    "\n".join(f'#include "{header}"' for header in HEADERS),
    sources=[_source_path(name) for name in SOURCES],
    depends=[_source_path(name) for name in HEADERS + PRIVATE_HEADERS],
    include_dirs=[str(HERE)],
    extra_compile_args=_compile_args(),
    extra_link_args=_link_args(),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
