"""The examples run as the README says: examples/run_main.sh (the legacy
program, then the lobby server under its built-in load) and the lobby
server on its own, in child processes, at small sizes."""

import os
import re
import subprocess
import sys

import pytest

from helpers import ROOT, child_env, describe, run_runner, scaled
from helpers import FAULTHANDLER_ARGS

LOBBY = os.path.join("examples", "lobby_server.py")


def _lobby(*args, runner=False, timeout=60):
    if runner:
        return run_runner("--patch", LOBBY, *args, timeout=timeout, cwd=ROOT)
    return subprocess.run(
        [sys.executable, *FAULTHANDLER_ARGS, LOBBY, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, timeout=scaled(timeout), cwd=ROOT,
        env=child_env())


def _check_ok(proc, clients, messages, room_size):
    assert proc.returncode == 0, describe(proc)
    assert proc.stderr == "", describe(proc)
    out = proc.stdout
    assert "lobby: OK" in out, describe(proc)
    per_room = min(room_size, clients)
    expected = clients * messages * (per_room - 1)
    m = re.search(r"(\d+) of (\d+) deliveries, (\d+) private messages, "
                  r"(\d+) connections served", out)
    assert m, out
    assert int(m.group(1)) == int(m.group(2)) == expected
    assert int(m.group(3)) == clients
    assert int(m.group(4)) == clients
    assert re.search(r"latency p50 [\d.]+ ms, p99 [\d.]+ ms", out), out


@pytest.mark.timeout(60)
def test_lobby_direct():
    proc = _lobby("--clients", "60", "--messages", "5", "--room-size", "6")
    _check_ok(proc, 60, 5, 6)


@pytest.mark.timeout(60)
def test_lobby_under_runner_patch():
    proc = _lobby("--clients", "200", "--messages", "3", runner=True)
    _check_ok(proc, 200, 3, 10)


@pytest.mark.timeout(60)
def test_lobby_with_pacing():
    # clients sleep between lines: the hub's timers and sockets interleave
    proc = _lobby("--clients", "30", "--messages", "4", "--interval", "0.002")
    _check_ok(proc, 30, 4, 10)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", ["drop", "dup"])
def test_lobby_detects_lost_and_duplicated_lines(fault):
    proc = _lobby("--clients", "20", "--messages", "4", "--fault", fault,
                  "--deadline", "2")
    assert proc.returncode == 1, describe(proc)
    assert "lobby: FAILED" in proc.stdout
    word = "lost/reordered" if fault == "drop" else "duplicate"
    assert word in proc.stdout, describe(proc)


@pytest.mark.timeout(60)
def test_lobby_serves_a_real_client():
    """--serve mode: a plain (unpatched) client in another process talks
    to it over loopback."""
    proc = subprocess.Popen(
        [sys.executable, LOBBY, "--serve", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT, env=child_env())
    try:
        line = proc.stdout.readline()
        m = re.match(r"lobby listening on ([\d.]+):(\d+)", line)
        assert m, line + proc.stderr.read()
        import socket
        with socket.create_connection((m.group(1), int(m.group(2))), 10) as a, \
                socket.create_connection((m.group(1), int(m.group(2))), 10) as b:
            fa, fb = a.makefile("rb"), b.makefile("rb")
            a.sendall(b"HELLO ann\nJOIN hall\n")
            assert fa.readline() == b"WELCOME ann\n"
            assert fa.readline() == b"JOINED hall 1\n"
            b.sendall(b"HELLO bob\nJOIN hall\n")
            assert fb.readline() == b"WELCOME bob\n"
            assert fb.readline() == b"JOINED hall 2\n"
            a.sendall(b"SAY hello bob\n")
            assert fb.readline() == b"FROM ann hall hello bob\n"
            b.sendall(b"TELL ann psst\nWHO\n")
            assert fa.readline() == b"PRIVATE bob psst\n"
            assert fb.readline() == b"ROOMS hall=2\n"
            a.sendall(b"QUIT\n")
            assert fa.readline() == b"BYE\n"
            assert fa.readline() == b""          # the server closed it
            fa.close()
            fb.close()
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.timeout(90)
def test_run_main_sh():
    env = child_env({"SLP_SKIP_INSTALL": "1",
                     "LOBBY_ARGS": "--clients 50 --messages 3"})
    proc = subprocess.run(["bash", os.path.join("examples", "run_main.sh"), "3"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=60, cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, describe(proc)
    assert "ping 2 -> pong 2" in proc.stdout, describe(proc)
    assert "lobby: OK" in proc.stdout, describe(proc)
