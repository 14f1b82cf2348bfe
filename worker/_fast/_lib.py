"""The only module that imports the compiled extension ``worker._fastlib`` (built from
``cffi_build/`` by ``cffi_build/build_fast.py``). The typed modules of this package take ``ffi``
and ``lib`` from here."""

from __future__ import annotations

from typing import Any

from worker import _fastlib  # type: ignore[attr-defined]

__all__ = ["Buffer", "buffer_pointer", "ffi", "lib"]

ffi: Any = _fastlib.ffi
lib: Any = _fastlib.lib

Buffer = bytes | bytearray | memoryview


def buffer_pointer(view: memoryview, writable: bool) -> tuple[Any, Any]:
    """A ``uint8_t *`` to the first byte of ``view``, and the cdata that keeps it valid.

    The buffer is taken from the object under the memoryview (a bytearray, an mmap), never
    kept on the memoryview itself: CPython 3.11 crashes when the garbage collector clears a
    memoryview whose buffer is still exported (``memory_clear`` then ``memory_dealloc``), which
    an object holding the export and caught in a reference cycle (a traceback, say) would risk.
    Use it for every pointer that outlives the call that makes it."""
    base = view.obj
    if isinstance(base, memoryview):  # a memoryview made by hand on top of another one
        base = base.obj
    owner = ffi.from_buffer("uint8_t[]", base, require_writable=writable)
    probe = ffi.from_buffer("uint8_t[]", view, require_writable=writable)
    try:
        offset = int(ffi.cast("uintptr_t", probe)) - int(ffi.cast("uintptr_t", owner))
    finally:
        ffi.release(probe)  # no export of the memoryview outlives this call
    if not 0 <= offset <= len(owner) - len(view):
        raise ValueError("the view is not inside the object it was made from")
    return owner + offset, owner
