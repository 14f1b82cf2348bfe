"""The Node controller's generated protocol tables match channel/protocol.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from channel import gen_node, protocol

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_committed_file_is_current() -> None:
    committed = gen_node.DEFAULT_OUTPUT.read_text(encoding="utf-8")
    assert committed == gen_node.render(), (
        "node/src/protocol.generated.js is stale; run `python -m channel.gen_node`"
    )


def test_output_is_deterministic() -> None:
    assert gen_node.render() == gen_node.render()


def test_header_names_the_command() -> None:
    first_lines = gen_node.render().splitlines()[:3]
    assert "GENERATED" in first_lines[0]
    assert any("python -m channel.gen_node" in line for line in first_lines)


def test_tables_are_all_exported() -> None:
    text = gen_node.render()
    for name in (
        "PROTOCOL_VERSION",
        "MAX_FRAME_BYTES",
        "METHODS",
        "ALL_METHODS",
        "CONTROLLER_EVENTS",
        "WORKER_EVENTS",
        "ERROR_NAMES",
        "LOG_LEVELS",
        "LOG_TAGS",
        "EXIT_OK",
        "EXIT_STARTUP_FAILURE",
        "EXIT_SETTINGS_ERROR",
    ):
        assert re.search(rf"^export const {name} = ", text, re.MULTILINE), name
    for method in protocol.ALL_METHODS:
        assert f'"{method}"' in text
    assert f"export const MAX_FRAME_BYTES = {protocol.MAX_FRAME_BYTES};" in text


def test_check_flag(tmp_path: Path) -> None:
    target = tmp_path / "protocol.generated.js"
    assert gen_node.main(["--check", "--output", str(target)]) == 1  # missing
    assert gen_node.main(["--output", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == gen_node.render()
    assert gen_node.main(["--check", "--output", str(target)]) == 0
    target.write_text(target.read_text(encoding="utf-8") + "// edited\n", encoding="utf-8")
    assert gen_node.main(["--check", "--output", str(target)]) == 1


def test_check_command_on_the_committed_file() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "channel.gen_node", "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("name", ["ERROR_NAMES", "LOG_LEVELS", "LOG_TAGS", "CONTROLLER_EVENTS"])
def test_tuples_keep_their_order(name: str) -> None:
    values: tuple[str, ...] = getattr(protocol, name)
    text = gen_node.render()
    block = text.split(f"export const {name} = ", 1)[1].split("]);", 1)[0]
    assert re.findall(r'"([^"]*)"', block) == list(values)
