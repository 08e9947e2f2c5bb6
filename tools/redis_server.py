"""Start a private redis-server (Debian ``redis-server``) for tests and
benchmarks: loopback only, a free port, no persistence, its own directory.

    from redis_server import RedisServer     # tools/ on sys.path
    with RedisServer() as r:
        print(r.url)                         # redis://127.0.0.1:PORT/0

    python3 tools/redis_server.py            # run one in the foreground
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

__all__ = ["RedisServer", "free_port"]


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class RedisServer:
    """A redis-server child process; ``start()``/``stop()`` or ``with``."""

    def __init__(self, executable="redis-server"):
        self.executable = shutil.which(executable) or executable
        self.port = None
        self.proc = None
        self.dir = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self, timeout=10.0):
        if not os.path.exists(self.executable):
            raise RuntimeError("redis-server not found (Debian: apt-get "
                               "install redis-server)")
        self.dir = tempfile.mkdtemp(prefix="slp-redis-")
        for _ in range(5):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [self.executable, "--port", str(self.port),
                 "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", self.dir, "--daemonize", "no",
                 "--protected-mode", "yes", "--loglevel", "warning",
                 "--maxclients", "10000"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if self._wait_ready(timeout):
                return self
            self.proc.kill()
            self.proc.wait()
        raise RuntimeError("redis-server did not start: %s"
                           % self.proc.stderr.read().decode(errors="replace"))

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), 1) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(64).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            self.proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    with RedisServer() as r:
        print(r.url, flush=True)
        try:
            r.proc.wait()
        except KeyboardInterrupt:
            pass
    sys.exit(0)
