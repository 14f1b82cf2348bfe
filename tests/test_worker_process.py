"""The worker process (PROTOCOL.md section 1): options, running, close paths, signals, stdout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from channel.codec import encode_frame
from channel.protocol import ALL_METHODS, EXIT_SETTINGS_ERROR, MAX_FRAME_BYTES
from tests.worker_process import ROOT, WorkerProcess

CLOSE_DEADLINE_S = 2.0


def run_worker(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "worker", *args], input=stdin, cwd=ROOT,
                          capture_output=True, timeout=20, check=False)


def assert_exits_promptly(proc: WorkerProcess) -> None:
    start = time.monotonic()
    code = proc.wait(timeout=CLOSE_DEADLINE_S + 3)
    elapsed = time.monotonic() - start
    assert code == 0, proc.stderr_text()
    assert elapsed < CLOSE_DEADLINE_S, f"took {elapsed:.2f} s to exit"


def test_running_is_the_first_frame() -> None:
    with WorkerProcess() as proc:
        assert proc.running == {
            "event": "running",
            "handlerId": str(proc.pid),
            "data": {"pid": proc.pid, "version": proc.running["data"]["version"]},
        }
        assert isinstance(proc.running["data"]["version"], str)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_close_signals_exit_zero_promptly(signum: int) -> None:
    with WorkerProcess() as proc:
        proc.ok("worker.createRouter", data={"routerId": "r1", "mediaCodecs": []})
        proc.signal(signum)
        assert_exits_promptly(proc)


def test_stdin_eof_exits_zero_promptly() -> None:
    with WorkerProcess() as proc:
        proc.close_stdin()
        assert_exits_promptly(proc)


def test_close_request_is_answered_then_exits() -> None:
    with WorkerProcess() as proc:
        proc.ok("worker.createRouter", data={"routerId": "r1", "mediaCodecs": []})
        assert proc.request("worker.close")["accepted"] is True
        assert_exits_promptly(proc)


def test_requests_behind_close_in_the_same_read_are_answered() -> None:
    with WorkerProcess() as proc:
        proc.send_bytes(encode_frame({"id": 50, "method": "worker.close"})
                        + encode_frame({"id": 51, "method": "worker.dump"}))
        first = proc.read_message()
        second = proc.read_message()
        assert first == {"id": 50, "accepted": True, "data": None}
        assert second["id"] == 51 and second["accepted"] is False
        assert "closing" in second["reason"]
        assert_exits_promptly(proc)


@pytest.mark.parametrize("name", ["SIGPIPE", "SIGHUP", "SIGALRM", "SIGUSR1", "SIGUSR2"])
def test_ignored_signals(name: str) -> None:
    with WorkerProcess() as proc:
        proc.signal(getattr(signal, name))
        time.sleep(0.1)
        assert proc.proc.poll() is None
        assert proc.ok("worker.dump")["pid"] == proc.pid


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus=1"],
        ["--logLevel=loud"],
        ["--logLevel"],
        ["--logTag=nosuchtag"],
        ["--rtcMinPort=abc"],
        ["--rtcMaxPort=70000"],
        ["--rtcMinPort=20000", "--rtcMaxPort=10000"],
        ["--dtlsCertificateFile=/nonexistent.pem", "--dtlsPrivateKeyFile=/nonexistent.pem"],
        ["--dtlsCertificateFile=" + str(ROOT / "setup.py")],
        ["positional"],
    ],
)
def test_bad_options_exit_42_with_one_line(args: list[str]) -> None:
    result = run_worker(*args)
    assert result.returncode == EXIT_SETTINGS_ERROR
    assert result.stdout == b""
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "wrong settings" in lines[0], lines


def test_good_options_in_both_forms() -> None:
    args = ["--logLevel", "debug", "--logTag=info", "--logTag", "ice", "--rtcMinPort=20000",
            "--rtcMaxPort=20100"]
    with WorkerProcess(args) as proc:
        assert proc.ok("worker.dump")["pid"] == proc.pid


def test_stdin_from_a_regular_file(tmp_path: Path) -> None:
    frames = tmp_path / "frames.bin"
    frames.write_bytes(encode_frame({"id": 1, "method": "worker.dump"}))
    with frames.open("rb") as stdin:
        result = subprocess.run([sys.executable, "-m", "worker"], stdin=stdin, cwd=ROOT,
                                capture_output=True, timeout=20, check=False)
    assert result.returncode == 0
    assert b"running" in result.stdout and b"webRtcServerIds" in result.stdout


STRAY_OUTPUT_WORKER = textwrap.dedent(
    """
    import os, sys
    import worker.worker as entity
    from worker.main import main

    original = entity.Worker.dump

    def noisy_dump(self, data):
        print("stray print from a handler")
        sys.stdout.flush()
        os.write(1, b"raw bytes written to fd 1\\n")
        return original(self, data)

    entity.Worker._handlers["dump"] = noisy_dump
    sys.exit(main(sys.argv[1:]))
    """
)


def test_stray_stdout_writes_cannot_corrupt_the_channel() -> None:
    command = [sys.executable, "-c", STRAY_OUTPUT_WORKER]
    with WorkerProcess(command=command) as proc:
        for _ in range(3):
            assert proc.ok("worker.dump")["pid"] == proc.pid
        proc.close_stdin()
        assert proc.wait() == 0
        assert proc.stdout_rest() == b""
        stderr = proc.stderr_text()
        assert "stray print from a handler" in stderr
        assert "raw bytes written to fd 1" in stderr


def test_every_protocol_method_is_answered() -> None:
    """Each method of the table answers (success or a clear Error), never silence or a crash."""
    with WorkerProcess() as proc:
        proc.ok("worker.createRouter", data={"routerId": "r1", "mediaCodecs": []})
        for method in sorted(ALL_METHODS - {"worker.close"}):
            handler = "r1" if method.startswith("router.") else ""
            response = proc.request(method, handler, {})
            assert set(response) >= {"id", "accepted"}
            if not response["accepted"]:
                assert response["error"] in ("TypeError", "Error", "InvalidStateError",
                                             "UnsupportedError")
                assert response["reason"].endswith(f"[method:{method}]"), response
            if method == "router.close":
                proc.ok("worker.createRouter", data={"routerId": "r1", "mediaCodecs": []})
        assert proc.ok("worker.dump")["pid"] == proc.pid


def test_unimplemented_methods_say_so() -> None:
    with WorkerProcess() as proc:
        proc.ok("worker.createRouter", data={"routerId": "r1", "mediaCodecs": []})
        response = proc.request("router.createActiveSpeakerObserver", "r1",
                                {"rtpObserverId": "o"})
        assert response["accepted"] is False and response["error"] == "Error"
        assert response["reason"] == ("router.createActiveSpeakerObserver is not implemented "
                                      "yet [method:router.createActiveSpeakerObserver]")
        proc.ok("router.createDirectTransport", "r1", {"transportId": "t"})
        response = proc.request("transport.setMaxIncomingBitrate", "t", {"bitrate": 100000})
        assert "not implemented yet" in response["reason"]


def test_unknown_handler_and_method() -> None:
    with WorkerProcess() as proc:
        response = proc.request("router.dump", "no-such-router")
        assert (response["error"], response["reason"]) == (
            "Error", "no entity with handlerId 'no-such-router' [method:router.dump]")
        response = proc.request("worker.fly")
        assert response["error"] == "Error" and "unknown method" in response["reason"]
        proc.ok("worker.createRouter", data={"routerId": "r1", "mediaCodecs": []})
        response = proc.request("producer.pause", "r1")
        assert response["error"] == "Error" and "does not apply" in response["reason"]


def test_router_lifecycle_and_registry() -> None:
    with WorkerProcess() as proc:
        proc.ok("worker.createRouter", data={"routerId": "r1", "mediaCodecs": []})
        proc.ok("worker.createRouter", data={"routerId": "r2"})
        dump = proc.ok("worker.dump")
        assert dump["routerIds"] == ["r1", "r2"]
        assert sorted(dump["channelMessageHandlers"]["channelRequestHandlers"]) == ["r1", "r2"]
        duplicate = proc.request("worker.createRouter", data={"routerId": "r1"})
        assert duplicate["error"] == "Error" and "already exists" in duplicate["reason"]
        assert proc.ok("router.dump", "r1")["id"] == "r1"
        proc.ok("worker.closeRouter", data={"routerId": "r1"})
        proc.ok("router.close", "r2")
        dump = proc.ok("worker.dump")
        assert dump["routerIds"] == []
        assert dump["channelMessageHandlers"]["channelRequestHandlers"] == []
        gone = proc.request("router.dump", "r1")
        assert gone["error"] == "Error"
        missing = proc.request("worker.closeRouter", data={"routerId": "r1"})
        assert missing["error"] == "Error" and "not found" in missing["reason"]
        bad = proc.request("worker.createRouter", data={"routerId": 5})
        assert bad["error"] == "TypeError" and "routerId" in bad["reason"]


def test_dump_shape() -> None:
    with WorkerProcess() as proc:
        dump = proc.ok("worker.dump")
        assert dump["pid"] == proc.pid
        assert dump["webRtcServerIds"] == [] and dump["routerIds"] == []
        assert set(dump["channel"]) >= {"requestsIn", "responsesOut", "notificationsOut",
                                        "framesDropped"}
        assert dump["channel"]["requestsIn"] == 1
        assert dump["channel"]["notificationsOut"] == 1  # running
        for name, pool in dump["bufferPools"].items():
            assert set(pool) == {"slotSize", "capacity", "inUse", "highWater", "exhausted"}, name
            assert pool["inUse"] == 0 and pool["capacity"] > 0
        assert dump["bufferPools"]["tcpRecv"]["slotSize"] == 65536


def test_resource_usage() -> None:
    with WorkerProcess() as proc:
        usage = proc.ok("worker.getResourceUsage")
        expected = {"ru_utime", "ru_stime", "ru_maxrss", "ru_ixrss", "ru_idrss", "ru_isrss",
                    "ru_minflt", "ru_majflt", "ru_nswap", "ru_inblock", "ru_oublock",
                    "ru_msgsnd", "ru_msgrcv", "ru_nsignals", "ru_nvcsw", "ru_nivcsw"}
        assert set(usage) == expected
        assert all(isinstance(v, int) for v in usage.values())
        assert usage["ru_maxrss"] > 1000  # kilobytes: a Python process is bigger than 1 MB


# -- logs ---------------------------------------------------------------------------------


def channel_logs(proc: WorkerProcess) -> list[dict[str, str]]:
    proc.ok("worker.dump")  # a round trip: what the worker logged before it has arrived
    logs, proc.logs = proc.logs, []
    return logs


def bad_frame(proc: WorkerProcess) -> None:
    proc.send_bytes(b"\x00\x00\x00\x01\xc1")  # logs an error


def test_logs_follow_level() -> None:
    with WorkerProcess(["--logLevel=none"]) as proc:
        bad_frame(proc)
        assert channel_logs(proc) == []
        proc.ok("worker.updateSettings", data={"logLevel": "error"})
        bad_frame(proc)
        logs = channel_logs(proc)
        assert [log["log"] for log in logs] == ["E"]
        assert "dropped a frame" in logs[0]["text"]


def test_debug_logs_follow_tags() -> None:
    with WorkerProcess(["--logLevel=debug"]) as proc:
        proc.ok("worker.createRouter", data={"routerId": "r1"})
        assert channel_logs(proc) == []  # the router log is tagged "info", not enabled
        proc.ok("worker.updateSettings", data={"logTags": ["info"]})
        proc.ok("worker.createRouter", data={"routerId": "r2"})
        logs = channel_logs(proc)
        assert [log["log"] for log in logs] == ["D"]
        assert "r2" in logs[0]["text"]
        proc.ok("worker.updateSettings", data={"logLevel": "warn"})
        proc.ok("worker.createRouter", data={"routerId": "r3"})
        assert channel_logs(proc) == []


def test_update_settings_rejects_bad_values() -> None:
    with WorkerProcess() as proc:
        for data in ({"logLevel": "loud"}, {"logLevel": 3}, {"logTags": "info"},
                     {"logTags": ["info", "nope"]}, {"logTags": [1]}):
            response = proc.request("worker.updateSettings", data=data)
            assert response["error"] == "TypeError", (data, response)


# -- framing and flow control --------------------------------------------------------------


def test_oversize_frame_is_skipped_and_named() -> None:
    with WorkerProcess(["--logLevel=error"]) as proc:
        size = MAX_FRAME_BYTES + 100
        proc.send_bytes(size.to_bytes(4, "big") + bytes(size))
        dump = proc.ok("worker.dump")
        assert dump["channel"]["framesDropped"] == 1
        assert any(str(size) in log["text"] for log in proc.logs)


def test_many_frames_in_one_write_and_one_frame_in_many() -> None:
    with WorkerProcess() as proc:
        batch = b"".join(encode_frame({"id": i, "method": "worker.dump"}) for i in range(1, 101))
        proc.send_bytes(batch)
        ids = [proc.read_message()["id"] for _ in range(100)]
        assert sorted(ids) == list(range(1, 101))
        frame = encode_frame({"id": 500, "method": "worker.getResourceUsage"})
        for byte in frame:
            proc.send_bytes(bytes([byte]))
        assert proc.wait_response(500)["accepted"] is True


def test_a_controller_that_does_not_read_cannot_grow_the_worker() -> None:
    """Requests keep coming while nobody reads stdout: the worker pauses, then answers all."""
    with WorkerProcess() as proc:

        count = 20000  # about 18 MB of dump responses: more than the writer's bound
        payload = b"".join(encode_frame({"id": i, "method": "worker.dump"})
                           for i in range(1000, 1000 + count))
        writer = threading.Thread(target=proc.send_bytes, args=(payload,), daemon=True)
        writer.start()
        time.sleep(1.5)
        rss_kb = int(Path(f"/proc/{proc.pid}/status").read_text().split("VmRSS:")[1].split()[0])
        assert rss_kb < 120_000, f"worker RSS {rss_kb} kB while its output was not read"
        seen = set()
        for _ in range(count):
            message = proc.read_message(timeout=20)
            assert message["accepted"] is True
            seen.add(message["id"])
        writer.join(timeout=20)
        assert seen == set(range(1000, 1000 + count))


def test_truncated_frame_then_eof_exits_zero() -> None:
    frame = encode_frame({"id": 1, "method": "worker.dump"})
    result = run_worker(stdin=frame + frame[:5])
    assert result.returncode == 0
    assert b"webRtcServerIds" in result.stdout


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_killed_controller_makes_the_worker_exit() -> None:
    """The controller's pipes close when it dies: the worker sees EOF and exits by itself."""
    script = textwrap.dedent(
        """
        import subprocess, sys, time
        worker = subprocess.Popen([sys.executable, "-m", "worker"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE)
        worker.stdout.read(4)
        print(worker.pid, flush=True)
        time.sleep(60)
        """
    )
    controller = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True)
    try:
        assert controller.stdout is not None
        worker_pid = int(controller.stdout.readline())
        controller.send_signal(signal.SIGKILL)
        controller.wait(timeout=5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if not _alive(worker_pid):
                break
            time.sleep(0.05)
        else:
            os.kill(worker_pid, signal.SIGKILL)
            pytest.fail("the worker outlived its controller")
    finally:
        controller.kill()
        controller.wait(timeout=5)


def test_broken_install_exits_40(tmp_path: Path) -> None:
    """A dependency that fails to import is a start-up failure: exit 40, not a traceback's 1."""
    (tmp_path / "msgpack.py").write_text("raise ImportError('msgpack is broken here')\n")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}")
    result = subprocess.run([sys.executable, "-m", "worker"], cwd=ROOT, env=env,
                            capture_output=True, timeout=20, check=False)
    assert result.returncode == 40
    assert result.stdout == b""
    assert b"msgpack is broken here" in result.stderr


def test_dtls_certificate_files(tmp_path: Path) -> None:
    """PEM files given on the command line are used; files that are not a certificate: exit 40."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    from worker.certificate import DtlsCertificate  # noqa: PLC0415

    generated = DtlsCertificate.generate()
    cert = tmp_path / "cert.pem"
    key = tmp_path / "key.pem"
    cert.write_bytes(generated.certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(generated.private_key.private_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with WorkerProcess([f"--dtlsCertificateFile={cert}", f"--dtlsPrivateKeyFile={key}"]) as proc:
        assert proc.ok("worker.dump")["pid"] == proc.pid
    result = run_worker(f"--dtlsCertificateFile={key}", f"--dtlsPrivateKeyFile={cert}")
    assert result.returncode == 40
    assert b"certificate" in result.stderr
