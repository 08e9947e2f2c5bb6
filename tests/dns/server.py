"""A private dnsmasq for the DNS tests: 127.0.0.1 on a free high port,
answering from the records files in this directory and nothing else.

    .test names in hosts / big.hosts    A, AAAA and their PTR records
    alias1.test -> alias2.test -> a.test   CNAME chain
    alias6.test -> v6.test              CNAME to a name with AAAA only
    dangling.test -> txt.test           CNAME to a name with TXT only
    other .test names                   NXDOMAIN (--local=/test/)
    PTR of 10.9.0.0/16, ::1, 255.255.255.255   NXDOMAIN
    PTR of other unknown addresses      REFUSED (no upstream server)
    *.fail.test                          SERVFAIL (forwarded to a closed port)
"""
import os
import shutil
import socket
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _free_port():
    # a port free for both UDP and TCP
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            t.close()
            u.close()
        if port > 1024:
            return port
    raise RuntimeError("no free port")


def closed_port():
    return _free_port()


class Dnsmasq:
    def __init__(self, extra=(), port=None):
        self.extra = list(extra)
        self.proc = None
        self.port = None
        self.fixed_port = port      # e.g. 53 inside a private net namespace

    def start(self):
        exe = shutil.which("dnsmasq") or (
            "/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq")
            else None)
        if exe is None:
            raise RuntimeError("dnsmasq is not installed")
        last = None
        for _ in range(5):
            self.port = self.fixed_port or _free_port()
            dead = closed_port()
            args = [
                exe, "--keep-in-foreground", "--conf-file=/dev/null",
                "--no-resolv", "--no-hosts", "--no-poll",
                "--listen-address=127.0.0.1", "--bind-interfaces",
                "--port=%d" % self.port, "--pid-file=",
                "--user=%s" % ("root" if os.geteuid() == 0 else ""),
                "--addn-hosts=" + os.path.join(HERE, "hosts"),
                "--addn-hosts=" + os.path.join(HERE, "big.hosts"),
                "--cname=alias1.test,alias2.test",
                "--cname=alias2.test,a.test",
                "--cname=alias6.test,v6.test",
                "--txt-record=txt.test,text",
                "--cname=dangling.test,txt.test",
                "--local=/test/",
                "--local=/9.10.in-addr.arpa/",
                # reverse names the real DNS says NXDOMAIN for, as the
                # tests comparing with the system resolver expect
                "--local=/255.255.255.255.in-addr.arpa/",
                "--local=/1." + "0." * 31 + "ip6.arpa/",
                "--server=/fail.test/127.0.0.1#%d" % dead,
                "--cache-size=0",
            ] + self.extra
            if os.geteuid() != 0:
                args.remove("--user=")
            # dnsmasq is not ours: keep the sanitizer runtimes (make asan
            # preloads them into every child) out of it.
            env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, env=env)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last = self.proc.stderr.read().decode(errors="replace")
                    break
                try:
                    socket.create_connection(("127.0.0.1", self.port),
                                             0.2).close()
                    return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError("dnsmasq did not start: %s" % (last,))

    @property
    def server(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc.stderr.close()
            self.proc = None
