"""H.264 ``profile-level-id`` rules (RFC 6184 section 8.1), as WebRTC stacks apply them.

A ``profile-level-id`` is three bytes written as six hex digits: ``profile_idc``,
``profile-iop`` (the constraint_set0..5 flags in its top six bits, then two reserved zero bits)
and ``level_idc``. The profile an SFU cares about is not ``profile_idc`` alone: Constrained
Baseline, for one, is Baseline, Main or Extended with the constraint flags that forbid the
tools a Baseline-only decoder lacks. :data:`_PROFILE_PATTERNS` lists the combinations
recognised, each a ``profile_idc`` plus a pattern over the ``profile-iop`` bits.

Level 1b is the odd one: for the Baseline, Main and Extended families it is written as
``level_idc`` 11 with constraint_set3 set (``level_idc`` 11 alone is level 1.1). It sorts
between levels 1 and 1.1.

Two rules decide what is sent in an SDP answer (RFC 6184 section 8.2.2):

- both sides must use the same profile (:func:`is_same_profile`);
- the answer's level is the answerer's own level when both sides allow level asymmetry
  (``level-asymmetry-allowed=1``), otherwise the lower of the two levels
  (:func:`generate_profile_level_id_for_answer`).

A missing ``profile-level-id`` means ``42e01f`` (Constrained Baseline, level 3.1), the default
browsers use. Parsing never raises on bad input: it returns ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

__all__ = [
    "DEFAULT_PROFILE_LEVEL_ID",
    "H264ProfileError",
    "Level",
    "Profile",
    "ProfileLevelId",
    "generate_profile_level_id_for_answer",
    "is_level_asymmetry_allowed",
    "is_same_profile",
    "is_same_profile_and_level",
    "parse_profile_level_id",
    "parse_sdp_profile_level_id",
    "profile_level_id_to_string",
]


class H264ProfileError(ValueError):
    """Two sets of H.264 parameters cannot be negotiated (bad or different profiles)."""


class Profile(IntEnum):
    CONSTRAINED_BASELINE = 1
    BASELINE = 2
    MAIN = 3
    CONSTRAINED_HIGH = 4
    HIGH = 5
    PREDICTIVE_HIGH_444 = 6


class Level(IntEnum):
    """H.264 levels; the value is ``level_idc`` except for level 1b."""

    L1_B = 0
    L1 = 10
    L1_1 = 11
    L1_2 = 12
    L1_3 = 13
    L2 = 20
    L2_1 = 21
    L2_2 = 22
    L3 = 30
    L3_1 = 31
    L3_2 = 32
    L4 = 40
    L4_1 = 41
    L4_2 = 42
    L5 = 50
    L5_1 = 51
    L5_2 = 52
    L6 = 60
    L6_1 = 61
    L6_2 = 62


@dataclass(frozen=True, slots=True)
class ProfileLevelId:
    profile: Profile
    level: Level


_CONSTRAINT_SET3_FLAG: Final = 0x10
_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")
_LEVEL_IDC_BY_VALUE: Final = {level.value: level for level in Level if level is not Level.L1_B}


def _bit_pattern(pattern: str) -> tuple[int, int]:
    """``"x1xx0000"`` (bit 7 first; ``x`` is "any") as a ``(mask, expected)`` pair."""
    mask = expected = 0
    for char in pattern:
        mask <<= 1
        expected <<= 1
        if char != "x":
            mask |= 1
            expected |= int(char)
    return mask, expected


# (profile_idc, profile-iop pattern, profile). The first match wins.
_PROFILE_PATTERNS: Final[tuple[tuple[int, tuple[int, int], Profile], ...]] = (
    (0x42, _bit_pattern("x1xx0000"), Profile.CONSTRAINED_BASELINE),
    (0x4D, _bit_pattern("1xxx0000"), Profile.CONSTRAINED_BASELINE),
    (0x58, _bit_pattern("11xx0000"), Profile.CONSTRAINED_BASELINE),
    (0x42, _bit_pattern("x0xx0000"), Profile.BASELINE),
    (0x58, _bit_pattern("10xx0000"), Profile.BASELINE),
    (0x4D, _bit_pattern("0x0x0000"), Profile.MAIN),
    (0x64, _bit_pattern("00000000"), Profile.HIGH),
    (0x64, _bit_pattern("00001100"), Profile.CONSTRAINED_HIGH),
    (0xF4, _bit_pattern("00000000"), Profile.PREDICTIVE_HIGH_444),
)

# The profile_idc and profile-iop bytes written for each profile.
_PROFILE_PREFIX: Final[dict[Profile, str]] = {
    Profile.CONSTRAINED_BASELINE: "42e0",
    Profile.BASELINE: "4200",
    Profile.MAIN: "4d00",
    Profile.CONSTRAINED_HIGH: "640c",
    Profile.HIGH: "6400",
    Profile.PREDICTIVE_HIGH_444: "f400",
}

# Level 1b can only be written for these profiles (constraint_set3 with level_idc 11).
_LEVEL_1B_STRING: Final[dict[Profile, str]] = {
    Profile.CONSTRAINED_BASELINE: "42f00b",
    Profile.BASELINE: "42100b",
    Profile.MAIN: "4d100b",
}

DEFAULT_PROFILE_LEVEL_ID: Final = ProfileLevelId(Profile.CONSTRAINED_BASELINE, Level.L3_1)


def parse_profile_level_id(text: str) -> ProfileLevelId | None:
    """The profile and level a six-hex-digit ``profile-level-id`` names, or ``None``."""
    if len(text) != 6 or not all(char in _HEX_DIGITS for char in text):
        return None
    numeric = int(text, 16)
    if numeric == 0:
        return None
    profile_idc = numeric >> 16
    profile_iop = (numeric >> 8) & 0xFF
    level_idc = numeric & 0xFF

    if level_idc == Level.L1_1:
        level = Level.L1_B if profile_iop & _CONSTRAINT_SET3_FLAG else Level.L1_1
    elif level_idc in _LEVEL_IDC_BY_VALUE:
        level = _LEVEL_IDC_BY_VALUE[level_idc]
    else:
        return None

    for idc, (mask, expected), profile in _PROFILE_PATTERNS:
        if idc == profile_idc and profile_iop & mask == expected:
            return ProfileLevelId(profile, level)
    return None


def profile_level_id_to_string(plid: ProfileLevelId) -> str | None:
    """The six lowercase hex digits for ``plid``, or ``None`` if it cannot be written."""
    if plid.level is Level.L1_B:
        return _LEVEL_1B_STRING.get(plid.profile)
    return f"{_PROFILE_PREFIX[plid.profile]}{plid.level.value:02x}"


def parse_sdp_profile_level_id(params: Mapping[str, object]) -> ProfileLevelId | None:
    """The profile and level of a codec's ``parameters``; the default when none is given.

    A value given as a number (``640032``, which some SDP parsers turn into an integer) is
    read as its decimal digits.
    """
    value = params.get("profile-level-id")
    if value is None or value == "":
        return DEFAULT_PROFILE_LEVEL_ID
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    return parse_profile_level_id(value)


def is_same_profile(params_a: Mapping[str, object], params_b: Mapping[str, object]) -> bool:
    """Whether both codecs' parameters name the same valid H.264 profile (levels may differ)."""
    a = parse_sdp_profile_level_id(params_a)
    b = parse_sdp_profile_level_id(params_b)
    return a is not None and b is not None and a.profile == b.profile


def is_same_profile_and_level(params_a: Mapping[str, object],
                              params_b: Mapping[str, object]) -> bool:
    """Whether both codecs' parameters name the same valid H.264 profile and level."""
    a = parse_sdp_profile_level_id(params_a)
    b = parse_sdp_profile_level_id(params_b)
    return a is not None and a == b


def is_level_asymmetry_allowed(params: Mapping[str, object]) -> bool:
    """Whether ``level-asymmetry-allowed`` is 1 (as a number or a string)."""
    value = params.get("level-asymmetry-allowed")
    return value in (1, "1") and not isinstance(value, bool)


def _is_lower_level(a: Level, b: Level) -> bool:
    """``a < b`` with level 1b sorted between levels 1 and 1.1."""
    if a is Level.L1_B:
        return b not in (Level.L1, Level.L1_B)
    if b is Level.L1_B:
        return a is Level.L1
    return a < b


def _min_level(a: Level, b: Level) -> Level:
    return a if _is_lower_level(a, b) else b


def generate_profile_level_id_for_answer(local_params: Mapping[str, object],
                                         remote_params: Mapping[str, object]) -> str | None:
    """The ``profile-level-id`` to answer ``remote_params`` (an offer) with ``local_params``.

    Returns ``None`` when neither side gives a ``profile-level-id`` (both use the default, so
    the answer leaves it out too), or when the answer's level cannot be written for its
    profile (level 1b of a High profile). Raises :class:`H264ProfileError` when either side's
    value is invalid or the profiles differ.
    """
    if "profile-level-id" not in local_params and "profile-level-id" not in remote_params:
        return None
    local = parse_sdp_profile_level_id(local_params)
    if local is None:
        raise H264ProfileError(
            f"invalid local profile-level-id {local_params.get('profile-level-id')!r}")
    remote = parse_sdp_profile_level_id(remote_params)
    if remote is None:
        raise H264ProfileError(
            f"invalid remote profile-level-id {remote_params.get('profile-level-id')!r}")
    if local.profile != remote.profile:
        raise H264ProfileError(
            f"H264 profile mismatch (local {local.profile.name}, remote {remote.profile.name})")

    # Without asymmetry the answerer may not raise the level above the offer's.
    if is_level_asymmetry_allowed(local_params) and is_level_asymmetry_allowed(remote_params):
        answer_level = local.level
    else:
        answer_level = _min_level(local.level, remote.level)
    return profile_level_id_to_string(ProfileLevelId(local.profile, answer_level))
