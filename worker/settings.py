"""The worker's command-line settings (PROTOCOL.md section 1).

Options take mediasoup's long forms, ``--name=value`` or ``--name value``; ``--logTag`` repeats
(``--logTags`` is accepted as the same option). Anything unknown or invalid raises
:class:`SettingsError`, which the process turns into one line on stderr and exit code 42.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from channel.protocol import DEFAULT_RTC_MAX_PORT, DEFAULT_RTC_MIN_PORT, LOG_LEVELS, LOG_TAGS

__all__ = ["Settings", "SettingsError", "check_log_level", "check_log_tags", "parse_args"]


class SettingsError(ValueError):
    """A start-up option is unknown or has a bad value."""


@dataclass(slots=True)
class Settings:
    log_level: str = "error"
    log_tags: frozenset[str] = field(default_factory=frozenset)
    rtc_min_port: int = DEFAULT_RTC_MIN_PORT
    rtc_max_port: int = DEFAULT_RTC_MAX_PORT
    dtls_certificate_file: str | None = None
    dtls_private_key_file: str | None = None


def check_log_level(value: object) -> str:
    if not isinstance(value, str) or value not in LOG_LEVELS:
        raise SettingsError(f"invalid logLevel {value!r}, expected one of {', '.join(LOG_LEVELS)}")
    return value


def check_log_tags(values: Iterable[object]) -> frozenset[str]:
    tags: set[str] = set()
    for value in values:
        if not isinstance(value, str) or value not in LOG_TAGS:
            raise SettingsError(f"invalid logTag {value!r}, expected one of {', '.join(LOG_TAGS)}")
        tags.add(value)
    return frozenset(tags)


def _port(name: str, text: str) -> int:
    try:
        port = int(text, 10)
    except ValueError:
        raise SettingsError(f"--{name} must be an integer, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise SettingsError(f"--{name} must be within 1 and 65535, got {port}")
    return port


def _readable_file(name: str, path: str) -> str:
    if not path or not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise SettingsError(f"--{name}: cannot read file {path!r}")
    return path


_OPTIONS = frozenset(
    {"logLevel", "logTag", "logTags", "rtcMinPort", "rtcMaxPort", "dtlsCertificateFile",
     "dtlsPrivateKeyFile"}
)


def _split_options(argv: Sequence[str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise SettingsError(f"unexpected argument {arg!r}")
        name, eq, value = arg[2:].partition("=")
        if name not in _OPTIONS:
            raise SettingsError(f"unknown option --{name}")
        if not eq:
            if i + 1 >= len(argv):
                raise SettingsError(f"option --{name} needs a value")
            i += 1
            value = argv[i]
        pairs.append((name, value))
        i += 1
    return pairs


def parse_args(argv: Sequence[str]) -> Settings:
    """The settings given by ``argv`` (without the program name)."""
    settings = Settings()
    tags: list[str] = []
    for name, value in _split_options(argv):
        if name == "logLevel":
            settings.log_level = check_log_level(value)
        elif name in ("logTag", "logTags"):
            tags.append(value)
        elif name == "rtcMinPort":
            settings.rtc_min_port = _port(name, value)
        elif name == "rtcMaxPort":
            settings.rtc_max_port = _port(name, value)
        elif name == "dtlsCertificateFile":
            settings.dtls_certificate_file = _readable_file(name, value)
        else:
            settings.dtls_private_key_file = _readable_file(name, value)
    settings.log_tags = check_log_tags(tags)
    if settings.rtc_min_port > settings.rtc_max_port:
        raise SettingsError(
            f"--rtcMinPort ({settings.rtc_min_port}) is greater than --rtcMaxPort "
            f"({settings.rtc_max_port})"
        )
    if (settings.dtls_certificate_file is None) != (settings.dtls_private_key_file is None):
        raise SettingsError("--dtlsCertificateFile and --dtlsPrivateKeyFile go together")
    return settings
