"""Fuzz the running worker through its channel: it stays up and answers every readable id."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channel.protocol import ALL_METHODS
from tests.worker_process import WorkerProcess

FUZZ_SETTINGS = settings(max_examples=150, deadline=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture])
FUZZ_ID_BASE = 1_000_000

# Methods that would end the run if they succeeded by chance.
SAFE_METHODS = sorted(ALL_METHODS - {"worker.close"})

msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=20) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[WorkerProcess]:
    with WorkerProcess() as proc:
        proc.ok("worker.createRouter", data={"routerId": "fuzz-router"})
        yield proc
        assert proc.proc.poll() is None, "the worker died while being fuzzed"
        dump = proc.ok("worker.dump")
        assert dump["pid"] == proc.pid


class Ids:
    next = FUZZ_ID_BASE


def fresh_id() -> int:
    Ids.next += 1
    return Ids.next


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def still_serving(proc: WorkerProcess) -> None:
    response = proc.request("worker.dump", timeout=10)
    assert response["accepted"] is True


def expect_one_response(proc: WorkerProcess, request_id: int) -> dict[str, Any]:
    response = proc.wait_response(request_id, timeout=10)
    assert set(response) >= {"id", "accepted"}
    if not response["accepted"]:
        assert response["error"] in ("TypeError", "Error", "InvalidStateError",
                                     "UnsupportedError")
        assert isinstance(response["reason"], str) and response["reason"]
    return response


@FUZZ_SETTINGS
@given(st.binary(max_size=300))
def test_random_payload_bytes(fuzzed: WorkerProcess, payload: bytes) -> None:
    fuzzed.send_bytes(frame(payload))
    still_serving(fuzzed)


@FUZZ_SETTINGS
@given(msgpack_values)
def test_random_msgpack_values(fuzzed: WorkerProcess, value: Any) -> None:
    fuzzed.send_bytes(frame(msgpack.packb(value, use_bin_type=True)))
    still_serving(fuzzed)


@FUZZ_SETTINGS
@given(st.integers(-(2**63), 2**64 - 1), msgpack_values, msgpack_values)
def test_any_integer_id_is_answered(fuzzed: WorkerProcess, request_id: int, method: Any,
                                    data: Any) -> None:
    """A map with an integer id is answered with that id, whatever else it holds."""
    if method == "worker.close":
        method = "worker.dump"
    fuzzed.send_bytes(frame(msgpack.packb({"id": request_id, "method": method, "data": data},
                                          use_bin_type=True)))
    response = fuzzed.read_message()
    while "id" not in response:
        response = fuzzed.read_message()
    assert response["id"] == request_id
    valid = 0 < request_id < 2**32 and isinstance(method, str) and (
        data is None or isinstance(data, dict))
    if not valid:
        assert response["accepted"] is False and response["error"] == "TypeError"


@FUZZ_SETTINGS
@given(msgpack_values.filter(lambda v: not isinstance(v, str)),
       st.sampled_from(["method", "handlerId", "data"]))
def test_wrong_types_in_every_field(fuzzed: WorkerProcess, bad: Any, field: str) -> None:
    """Nil stands for an absent handlerId or data (docs/protocol.md); other types are wrong."""
    request_id = fresh_id()
    message: dict[str, Any] = {"id": request_id, "method": "worker.dump", "handlerId": "",
                               "data": {}}
    if field != "method" and (bad is None or isinstance(bad, dict)):
        bad = [bad]
    message[field] = bad
    fuzzed.send_bytes(frame(msgpack.packb(message, use_bin_type=True)))
    response = expect_one_response(fuzzed, request_id)
    assert response["accepted"] is False and response["error"] == "TypeError"


@FUZZ_SETTINGS
@given(st.sampled_from(SAFE_METHODS), st.sampled_from(["", "fuzz-router", "nobody"]),
       st.dictionaries(st.sampled_from(["routerId", "mediaCodecs", "logLevel", "logTags",
                                        "transportId", "producerId", "webRtcServerId",
                                        "rtpCapabilities", "listenInfos", "kind"]),
                       msgpack_values, max_size=4))
def test_real_methods_with_random_data(fuzzed: WorkerProcess, method: str, handler_id: str,
                                       data: dict[str, Any]) -> None:
    if method == "router.close" or (method == "worker.closeRouter"
                                    and data.get("routerId") == "fuzz-router"):
        data = {}
        handler_id = "nobody"
    request_id = fresh_id()
    fuzzed.send_bytes(frame(msgpack.packb(
        {"id": request_id, "method": method, "handlerId": handler_id, "data": data},
        use_bin_type=True)))
    expect_one_response(fuzzed, request_id)
    if method == "worker.updateSettings":
        fuzzed.ok("worker.updateSettings", data={"logLevel": "error", "logTags": []})


def test_fuzzed_worker_still_dumps(fuzzed: WorkerProcess) -> None:
    dump = fuzzed.ok("worker.dump")
    assert "fuzz-router" in dump["routerIds"]
    assert dump["channel"]["framesDropped"] > 0
    # Every request with a readable id was answered exactly once (this one's response is
    # counted after its dump was taken).
    assert dump["channel"]["responsesOut"] == dump["channel"]["requestsIn"] - 1
