"""SRTP and SRTCP protect/unprotect in the C batch, through pylibsrtp's libsrtp (``srtp.h``).

The crypto is libsrtp's; the C in ``cffi_build/srtp.c`` only checks every slot and length and
calls libsrtp through function pointers, many packets per call. What it relies on in pylibsrtp
1.0.0 (the version pinned in ``setup.py``), as inspected in its installed files:

- The compiled module is ``pylibsrtp._binding``, a cffi API-mode extension (``abi3``) that links
  **libsrtp 2.7.0** statically (with its own OpenSSL); ``pylibsrtp/__init__.py`` does
  ``from ._binding import ffi, lib`` and calls ``lib.srtp_init()`` at import.
- ``lib`` declares libsrtp 2.x's ``srtp_protect``, ``srtp_unprotect``, ``srtp_protect_rtcp`` and
  ``srtp_unprotect_rtcp``, each ``srtp_err_status_t (*)(struct srtp_ctx_t_ *, void *, int *)``:
  the packet is changed in place, ``*len`` is its length in and out, and protect appends its
  trailer with no buffer size given. ``ffi.addressof(lib, name)`` is a real C function pointer
  (cffi's direct-call stub for that function, which calls libsrtp's); :class:`SrtpApi` casts the
  four into ``struct mw_srtp_api``. libsrtp 3.x has other signatures (a separate output buffer,
  ``size_t`` lengths), so a pylibsrtp built on it must fail :func:`srtp_api`'s checks.
- ``Session`` keeps its ``srtp_t`` in the private attribute ``Session._srtp``, an ``ffi.gc``'d
  ``srtp_t *`` whose finalizer calls ``srtp_dealloc``; ``_srtp[0]`` is the ``srtp_t`` itself.
  :class:`SrtpContext` holds the Session (so the session lives as long as the context) and
  exposes that pointer as our ``void *``.
- ``Policy`` wraps an ``ffi.new("srtp_policy_t *")``: its cdef shows only ``ssrc``, ``rtp``,
  ``rtcp``, ``key``, ``window_size`` and ``allow_repeat_tx``, and the rest of the real struct is
  zeroed, so MKI is never on; that is why the C may bound the trailer at 16 bytes (RTP) and 20
  (RTCP) whatever the profile. ``Session.protect`` copies the packet into a 1,500-byte buffer,
  allocates an ``int *``, calls libsrtp and copies out: 1.2-1.6 µs per call on top of the crypto
  (docs: limits.md section 3), which is why the forwarding path calls the C batch instead.

If any of this changes, :func:`srtp_api` raises :class:`SrtpInterfaceError` (an ImportError)
naming what differs, and ``tests/test_srtp.py`` pins the versions. Sessions are not
thread-safe, and cffi releases the GIL during the batch calls: use a session from one thread.

Whoever writes ``SrtpContext.pointer`` into a C array must hold the context for as long as the
array may be used (:class:`SrtpBatch` does that for its ``sessions``): the libsrtp session is
freed when the last reference to its context goes away.
"""

from __future__ import annotations

import functools as _srtp_functools
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Final

from worker._fast._lib import Buffer, buffer_pointer, ffi, lib

if TYPE_CHECKING:
    import pylibsrtp

PYLIBSRTP_VERSION: Final = "1.0.0"
LIBSRTP_MAJOR: Final = 2
LIBSRTP_SIGNATURE: Final = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"
SRTP_FUNCTIONS: Final = ("srtp_protect", "srtp_unprotect", "srtp_protect_rtcp",
                         "srtp_unprotect_rtcp")
SRTP_RTP_TRAILER_MAX: int = lib.MW_SRTP_RTP_TRAILER_MAX
SRTP_RTCP_TRAILER_MAX: int = lib.MW_SRTP_RTCP_TRAILER_MAX
SRTP_ALIGNMENT: int = lib.MW_SRTP_ALIGNMENT
SRTP_REPLAY_WINDOW: Final = 1024  # packets; libsrtp's default is 128, mediasoup uses 1024
_UPDATE_HINT: Final = (
    "worker/_fast/srtp.py and cffi_build/srtp.h were written against pylibsrtp 1.0.0 (libsrtp "
    "2.7.0): check the new pylibsrtp's _binding cdef and Session, update the function pointer "
    "type in cffi_build/srtp.h and the checks in worker/_fast/srtp.py, then the pin in setup.py")


class SrtpInterfaceError(ImportError):
    """The installed pylibsrtp is not the interface this code calls into; nothing was called."""


class SrtpArgumentError(ValueError):
    """A batch named a slot outside its slab, misaligned or too large, or had no session array.

    A bug in the caller: the C checked every slot first and libsrtp saw none of the packets."""


class SrtpStatus(IntEnum):
    """A packet's status after a batch: libsrtp 2.x's ``srtp_err_status_t`` (0 and up) or one of
    ``enum mw_srtp_status`` (negative: the C refused the packet before libsrtp saw it)."""

    OK = 0
    FAIL = 1
    BAD_PARAM = 2
    ALLOC_FAIL = 3
    DEALLOC_FAIL = 4
    INIT_FAIL = 5
    TERMINUS = 6
    AUTH_FAIL = 7
    CIPHER_FAIL = 8
    REPLAY_FAIL = 9
    REPLAY_OLD = 10
    ALGO_FAIL = 11
    NO_SUCH_OP = 12
    NO_CTX = 13
    CANT_CHECK = 14
    KEY_EXPIRED = 15
    SOCKET_ERR = 16
    SIGNAL_ERR = 17
    NONCE_BAD = 18
    READ_FAIL = 19
    WRITE_FAIL = 20
    PARSE_ERR = 21
    ENCODE_ERR = 22
    SEMAPHORE_ERR = 23
    PFKEY_ERR = 24
    BAD_MKI = 25
    PKT_IDX_OLD = 26
    PKT_IDX_ADV = 27
    NO_ROOM = lib.MW_SRTP_STATUS_NO_ROOM
    NO_SESSION = lib.MW_SRTP_STATUS_NO_SESSION
    BAD_SLOT = lib.MW_SRTP_STATUS_BAD_SLOT
    NOT_RUN = lib.MW_SRTP_STATUS_NOT_RUN
    TOO_SHORT = lib.MW_SRTP_STATUS_TOO_SHORT
    BAD_RESULT = lib.MW_SRTP_STATUS_BAD_RESULT


def srtp_status(code: int) -> SrtpStatus | int:
    """``code`` as an SrtpStatus, or the bare int when libsrtp returned a value it did not
    have in 2.7.0."""
    try:
        return SrtpStatus(code)
    except ValueError:
        return code


class SrtpError(ValueError):
    """libsrtp refused one packet (a single-packet helper): ``status`` says why (AUTH_FAIL,
    REPLAY_FAIL, ...). For unprotect it is the peer's packet that failed."""

    def __init__(self, status: int, operation: str) -> None:
        self.status = srtp_status(status)
        name = self.status.name if isinstance(self.status, SrtpStatus) else str(status)
        super().__init__(f"{operation} failed: {name}")


class SrtpProfile(IntEnum):
    """The SRTP protection profiles (RFC 5764, RFC 7714); values are libsrtp's
    ``srtp_profile_t`` (pylibsrtp's ``Policy.SRTP_PROFILE_*``)."""

    AES128_CM_SHA1_80 = 1
    AES128_CM_SHA1_32 = 2
    AEAD_AES_128_GCM = 7
    AEAD_AES_256_GCM = 8

    @property
    def dtls_name(self) -> bytes:
        """The name OpenSSL's ``use_srtp`` (pyOpenSSL's ``set_tlsext_use_srtp``) knows."""
        return _PROFILE_TRAITS[self][0]

    @property
    def openssl_name(self) -> str:
        """``dtls_name`` as text (``"SRTP_AEAD_AES_256_GCM"``), as pyOpenSSL reports it."""
        return _PROFILE_TRAITS[self][0].decode()

    @property
    def crypto_suite(self) -> str:
        """mediasoup's name in ``srtpParameters.cryptoSuite`` (``"AEAD_AES_256_GCM"``)."""
        return _CRYPTO_SUITES[self]

    @property
    def master_key_bytes(self) -> int:
        return _PROFILE_TRAITS[self][1]

    @property
    def master_salt_bytes(self) -> int:
        return _PROFILE_TRAITS[self][2]

    @property
    def rtp_tag_bytes(self) -> int:
        """What protect appends to an RTP packet (protect_rtcp adds 4 bytes of index to the
        RTCP tag, which is 10 bytes for both AES-CM profiles)."""
        return _PROFILE_TRAITS[self][3]

    @classmethod
    def from_dtls_name(cls, name: bytes) -> SrtpProfile:
        for profile, traits in _PROFILE_TRAITS.items():
            if traits[0] == name:
                return profile
        raise ValueError(f"{name!r} is not an SRTP profile this worker supports")


# (DTLS name, master key bytes, master salt bytes, RTP tag bytes)
_PROFILE_TRAITS: Final[dict[SrtpProfile, tuple[bytes, int, int, int]]] = {
    SrtpProfile.AES128_CM_SHA1_80: (b"SRTP_AES128_CM_SHA1_80", 16, 14, 10),
    SrtpProfile.AES128_CM_SHA1_32: (b"SRTP_AES128_CM_SHA1_32", 16, 14, 4),
    SrtpProfile.AEAD_AES_128_GCM: (b"SRTP_AEAD_AES_128_GCM", 16, 12, 16),
    SrtpProfile.AEAD_AES_256_GCM: (b"SRTP_AEAD_AES_256_GCM", 32, 12, 16),
}

# Negotiation order: GCM first (a quarter of AES-CM-SHA1's cost per packet, limits.md section 3).
_CRYPTO_SUITES: Final[dict[SrtpProfile, str]] = {
    SrtpProfile.AES128_CM_SHA1_80: "AES_CM_128_HMAC_SHA1_80",
    SrtpProfile.AES128_CM_SHA1_32: "AES_CM_128_HMAC_SHA1_32",
    SrtpProfile.AEAD_AES_128_GCM: "AEAD_AES_128_GCM",
    SrtpProfile.AEAD_AES_256_GCM: "AEAD_AES_256_GCM",
}

SRTP_PROFILE_PREFERENCE: Final = (SrtpProfile.AEAD_AES_256_GCM, SrtpProfile.AEAD_AES_128_GCM,
                                  SrtpProfile.AES128_CM_SHA1_80, SrtpProfile.AES128_CM_SHA1_32)


def _interface_error(what: str) -> SrtpInterfaceError:
    return SrtpInterfaceError(f"pylibsrtp is not the interface mediaworker expects: {what}. "
                              + _UPDATE_HINT)


def libsrtp_version(binding_path: str) -> str | None:
    """libsrtp's version string (``"libsrtp2 2.7.0"``) from the shared object at
    ``binding_path`` (pylibsrtp's ``_binding``), or None when it does not export
    ``srtp_get_version_string`` (pylibsrtp's own cdef does not declare it)."""
    import cffi  # noqa: PLC0415  (an ABI-mode look-up, once, off the hot path)

    abi = cffi.FFI()
    abi.cdef("const char *srtp_get_version_string(void);")
    try:
        handle = abi.dlopen(binding_path)
        text: bytes = abi.string(handle.srtp_get_version_string())
    except (OSError, AttributeError):
        return None
    return text.decode("ascii", "replace")


class SrtpApi:
    """libsrtp's four packet functions, taken once from pylibsrtp's cffi library and checked.

    ``struct`` is the ``struct mw_srtp_api *`` every batch function takes; ``binding`` is
    pylibsrtp's ``_binding`` module (its ``ffi`` and ``lib``), kept so the library stays loaded.
    Use :func:`srtp_api` rather than building one per caller."""

    __slots__ = ("binding", "libsrtp_version", "pylibsrtp_version", "struct")

    def __init__(self) -> None:
        try:
            import pylibsrtp  # noqa: PLC0415  (imported on first use, not with worker._fast)
            from pylibsrtp import _binding  # noqa: PLC0415
        except ImportError as exc:
            raise _interface_error(f"it cannot be imported ({exc})") from exc
        self.binding: Any = _binding
        self.pylibsrtp_version: str = str(getattr(pylibsrtp, "__version__", "unknown"))
        self.struct: Any = ffi.new("struct mw_srtp_api *")
        pointers = [self._function(name) for name in SRTP_FUNCTIONS]
        (self.struct.protect, self.struct.unprotect, self.struct.protect_rtcp,
         self.struct.unprotect_rtcp) = pointers
        self._check_profiles(pylibsrtp.Policy)
        self.libsrtp_version = libsrtp_version(_binding.__file__)
        if self.libsrtp_version is not None:
            major = self.libsrtp_version.rpartition(" ")[2].split(".")[0]
            if major != str(LIBSRTP_MAJOR):
                raise _interface_error(f"it bundles {self.libsrtp_version}, not libsrtp 2.x")

    def _function(self, name: str) -> Any:
        theirs_ffi, theirs_lib = self.binding.ffi, self.binding.lib
        try:
            pointer = theirs_ffi.addressof(theirs_lib, name)
        except (AttributeError, TypeError) as exc:
            raise _interface_error(f"its _binding.lib has no function {name}") from exc
        signature = theirs_ffi.typeof(pointer).cname
        if signature != LIBSRTP_SIGNATURE:
            raise _interface_error(f"{name} is {signature}, not {LIBSRTP_SIGNATURE}")
        return ffi.cast("mw_srtp_fn", pointer)

    @staticmethod
    def _check_profiles(policy: Any) -> None:
        for profile in SrtpProfile:
            theirs = getattr(policy, f"SRTP_PROFILE_{profile.name}", None)
            if theirs != profile.value:
                raise _interface_error(
                    f"Policy.SRTP_PROFILE_{profile.name} is {theirs}, not {profile.value}")

    def session_pointer(self, session: pylibsrtp.Session) -> Any:
        """A pylibsrtp Session's ``srtp_t`` as our ``void *`` (it lives as long as the
        Session)."""
        holder = getattr(session, "_srtp", None)
        theirs_ffi = self.binding.ffi
        if not isinstance(holder, theirs_ffi.CData) or \
                theirs_ffi.typeof(holder) is not theirs_ffi.typeof("srtp_t *"):
            raise _interface_error("Session._srtp is not the srtp_t * it was in 1.0.0")
        pointer = ffi.cast("void *", holder[0])
        if pointer == ffi.NULL:
            raise _interface_error("Session._srtp holds a NULL srtp_t")
        return pointer


@_srtp_functools.cache
def srtp_api() -> SrtpApi:
    """The process's SrtpApi, loaded (and checked) on first use; raises SrtpInterfaceError."""
    return SrtpApi()


class SrtpContext:
    """One libsrtp session (a pylibsrtp ``Session``) as the C batch sees it.

    ``pointer`` is its ``srtp_t`` as a ``void *``; the context holds the Session, so the
    session is freed (``srtp_dealloc``) only when the last reference to the context goes.
    ``session`` is the pylibsrtp Session itself, for the control plane (``add_stream``...)."""

    __slots__ = ("__weakref__", "pointer", "profile", "session")

    def __init__(self, policy: pylibsrtp.Policy, *, api: SrtpApi | None = None) -> None:
        import pylibsrtp  # noqa: PLC0415

        api = api or srtp_api()
        self.profile = SrtpProfile(policy.srtp_profile)
        self.session: pylibsrtp.Session = pylibsrtp.Session(policy)
        self.pointer: Any = api.session_pointer(self.session)

    def remove_stream(self, ssrc: int) -> bool:
        """Forget libsrtp's state for ``ssrc`` (its stream went away); False if it had none."""
        try:
            self.session.remove_stream(ssrc)
        except Exception:  # pylibsrtp raises a bare Error for "no such stream"
            return False
        return True

    @classmethod
    def outbound(cls, profile: SrtpProfile, key: bytes, *, allow_repeat_tx: bool = True,
                 window_size: int = SRTP_REPLAY_WINDOW) -> SrtpContext:
        """A session that protects whatever SSRC it is given (``SSRC_ANY_OUTBOUND``).

        ``key`` is the master key then the master salt (``profile.master_key_bytes +
        master_salt_bytes``). ``allow_repeat_tx``: a retransmission with the same sequence
        number (NACK answered without RTX) is protected again rather than refused."""
        return cls(_policy(profile, key, inbound=False, allow_repeat_tx=allow_repeat_tx,
                           window_size=window_size))

    @classmethod
    def inbound(cls, profile: SrtpProfile, key: bytes, *,
                window_size: int = SRTP_REPLAY_WINDOW) -> SrtpContext:
        """A session that unprotects any SSRC (``SSRC_ANY_INBOUND``), with replay protection
        over ``window_size`` packets."""
        return cls(_policy(profile, key, inbound=True, allow_repeat_tx=False,
                           window_size=window_size))


def _policy(profile: SrtpProfile, key: bytes, *, inbound: bool, allow_repeat_tx: bool,
            window_size: int) -> pylibsrtp.Policy:
    import pylibsrtp  # noqa: PLC0415

    expected = profile.master_key_bytes + profile.master_salt_bytes
    if len(key) != expected:
        raise ValueError(f"{profile.name} needs {expected} bytes of key and salt, "
                         f"not {len(key)}")
    if not 64 <= window_size < 0x8000:
        raise ValueError(f"replay window {window_size} is outside libsrtp's 64..32767")
    policy = pylibsrtp.Policy(
        key=bytes(key), srtp_profile=int(profile),
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND if inbound
        else pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    policy.allow_repeat_tx = allow_repeat_tx
    policy.window_size = window_size
    return policy


class SrtpBatch:
    """The preallocated arrays of SRTP work on up to ``capacity`` packets of one slab per call.

    Packet ``i`` is ``lengths[i]`` bytes at ``offsets[i]`` in the slab, inside a slot of
    ``capacities[i]`` bytes that starts on a 4-byte boundary (protect needs
    ``SRTP_RTP_TRAILER_MAX``, protect_rtcp ``SRTP_RTCP_TRAILER_MAX``, bytes of room after the
    packet). Each call works in place, makes exactly one C call, leaves each packet's
    :class:`SrtpStatus` value in ``status[i]`` and its new length in ``lengths[i]`` (unchanged
    when the status is not OK), and returns how many succeeded. With ``ctx`` the whole batch
    uses that session; without it packet ``i`` uses ``sessions[i]`` (:meth:`set_session`; a
    consumer fan-out), and a packet with no session is skipped with NO_SESSION.

    Never raises for a packet's content (auth and replay failures are statuses); raises
    SrtpArgumentError when a slot is outside the slab or misaligned (nothing was processed)."""

    __slots__ = ("_api", "_contexts", "_owner", "_slab", "_slab_len", "_view", "capacities",
                 "capacity", "lengths", "offsets", "sessions", "status")

    def __init__(self, slab: Buffer, capacity: int = 64, *, api: SrtpApi | None = None) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity {capacity} must be positive")
        self._view = memoryview(slab).cast("B")
        if self._view.readonly:
            raise TypeError("the slab of an SrtpBatch must be writable")
        self._slab, self._owner = buffer_pointer(self._view, writable=True)
        self._slab_len = len(self._view)
        self._api = api or srtp_api()
        self._contexts: list[SrtpContext | None] = [None] * capacity
        self.capacity = capacity
        self.offsets: Any = ffi.new("size_t[]", capacity)
        self.lengths: Any = ffi.new("uint32_t[]", capacity)
        self.capacities: Any = ffi.new("uint32_t[]", capacity)
        self.status: Any = ffi.new("int32_t[]", capacity)
        self.sessions: Any = ffi.new("void *[]", capacity)

    def set(self, i: int, offset: int, length: int, capacity: int,
            ctx: SrtpContext | None = None) -> None:
        """Describe packet ``i`` (and its session, when given): control plane and tests."""
        self._check_index(i)
        self.offsets[i] = offset
        self.lengths[i] = length
        self.capacities[i] = capacity
        if ctx is not None:
            self.set_session(i, ctx)

    def set_session(self, i: int, ctx: SrtpContext | None) -> None:
        """Packet ``i``'s session for the per-packet calls; the batch holds ``ctx`` until the
        slot gets another one (or None)."""
        self._check_index(i)
        self._contexts[i] = ctx
        self.sessions[i] = ffi.NULL if ctx is None else ctx.pointer

    def protect(self, n: int, ctx: SrtpContext | None = None) -> int:
        """SRTP-protect packets ``0..n`` in place; returns how many succeeded."""
        return self._run(lib.mw_srtp_protect_batch, lib.mw_srtp_protect_each, n, ctx)

    def unprotect(self, n: int, ctx: SrtpContext | None = None) -> int:
        """Authenticate and decrypt SRTP packets ``0..n`` in place; returns how many passed."""
        return self._run(lib.mw_srtp_unprotect_batch, lib.mw_srtp_unprotect_each, n, ctx)

    def protect_rtcp(self, n: int, ctx: SrtpContext | None = None) -> int:
        """SRTCP-protect packets ``0..n`` (compound RTCP) in place."""
        return self._run(lib.mw_srtp_protect_rtcp_batch, lib.mw_srtp_protect_rtcp_each, n, ctx)

    def unprotect_rtcp(self, n: int, ctx: SrtpContext | None = None) -> int:
        """Authenticate and decrypt SRTCP packets ``0..n`` in place."""
        return self._run(lib.mw_srtp_unprotect_rtcp_batch, lib.mw_srtp_unprotect_rtcp_each, n,
                         ctx)

    def view(self, i: int) -> memoryview:
        """Packet ``i``'s current bytes in the slab (its new length after a call)."""
        self._check_index(i)
        start = self.offsets[i]
        return self._view[start : start + self.lengths[i]]

    def reason(self, i: int) -> SrtpStatus | int:
        """Packet ``i``'s status after the last call, as an SrtpStatus."""
        self._check_index(i)
        return srtp_status(self.status[i])

    def _check_index(self, i: int) -> None:
        if not 0 <= i < self.capacity:
            raise IndexError(f"packet {i} is outside a batch of {self.capacity}")

    def _run(self, one_session: Any, each: Any, n: int, ctx: SrtpContext | None) -> int:
        if not 0 <= n <= self.capacity:
            raise ValueError(f"n {n} is outside 0..{self.capacity}")
        if ctx is None:
            done: int = each(self._api.struct, self.sessions, self._slab, self._slab_len,
                             self.offsets, self.lengths, self.capacities, n, self.status)
        else:
            done = one_session(self._api.struct, ctx.pointer, self._slab, self._slab_len,
                               self.offsets, self.lengths, self.capacities, n, self.status)
        if done < 0:
            bad = [i for i in range(n) if self.status[i] == SrtpStatus.BAD_SLOT]
            raise SrtpArgumentError(
                f"packets {bad[:8]} name slots outside a slab of {self._slab_len} B or not "
                f"{SRTP_ALIGNMENT}-byte aligned; nothing was processed")
        return done


def _single(function: Any, room: int, ctx: SrtpContext, packet: Buffer, operation: str) -> bytes:
    """One packet through the batch function, in a fresh aligned buffer (control plane)."""
    data = bytes(packet)
    capacity = len(data) + room
    words = ffi.new("uint32_t[]", capacity // 4 + 1)  # 4-byte aligned, as libsrtp wants
    buf = ffi.cast("uint8_t *", words)
    ffi.memmove(buf, data, len(data))
    offsets = ffi.new("size_t[1]")
    lengths = ffi.new("uint32_t[1]", [len(data)])
    capacities = ffi.new("uint32_t[1]", [capacity])
    status = ffi.new("int32_t[1]")
    done = function(srtp_api().struct, ctx.pointer, buf, capacity, offsets, lengths, capacities,
                    1, status)
    if done < 0:
        raise SrtpArgumentError(f"a packet of {len(data)} B is too large for libsrtp")
    if status[0] != SrtpStatus.OK:
        raise SrtpError(status[0], operation)
    return bytes(ffi.buffer(buf, lengths[0]))


def protect_rtp(ctx: SrtpContext, packet: Buffer) -> bytes:
    """The SRTP packet for one RTP packet (control plane; raises SrtpError)."""
    return _single(lib.mw_srtp_protect_batch, SRTP_RTP_TRAILER_MAX, ctx, packet, "protect")


def unprotect_rtp(ctx: SrtpContext, packet: Buffer) -> bytes:
    """The RTP packet inside one SRTP packet; raises SrtpError (AUTH_FAIL, REPLAY_FAIL...)."""
    return _single(lib.mw_srtp_unprotect_batch, 0, ctx, packet, "unprotect")


def protect_rtcp(ctx: SrtpContext, packet: Buffer) -> bytes:
    """The SRTCP packet for one (compound) RTCP packet; raises SrtpError."""
    return _single(lib.mw_srtp_protect_rtcp_batch, SRTP_RTCP_TRAILER_MAX, ctx, packet,
                   "protect_rtcp")


def unprotect_rtcp(ctx: SrtpContext, packet: Buffer) -> bytes:
    """The RTCP packet inside one SRTCP packet; raises SrtpError."""
    return _single(lib.mw_srtp_unprotect_rtcp_batch, 0, ctx, packet, "unprotect_rtcp")
