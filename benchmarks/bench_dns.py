#!/usr/bin/env python3
"""Name resolution throughput: 10,000 distinct names, concurrency 100,
getaddrinfo(name, 80, family, SOCK_STREAM) for AF_INET and AF_UNSPEC.

    python3 benchmarks/bench_dns.py            # every impl, both families
    python3 benchmarks/bench_dns.py stackless_compat gevent-ares   # some
    BENCH_DNS_REPEAT=5 python3 benchmarks/bench_dns.py stackless_compat

Re-runs itself inside a private network + mount namespace (unshare, root):
only loopback exists and /etc/resolv.conf is bind-mounted to
"nameserver 127.0.0.1", so glibc-based resolvers reach the local responder
too.  The responder is benchmarks/dns_resp.c (built with cc on the fly),
answering hNNNNN.bench.test with A records (AAAA: NODATA) on ports 53 and
5353.  Each impl runs in its own child interpreter; every answer is checked.

Impls: stackless_compat (c-ares on our hub, 100 tasklets),
stackless_compat-thread (our threaded libc fallback), gevent-ares,
gevent-thread, asyncio (loop.getaddrinfo), threads (100 OS threads).
Prints one JSON line per (impl, family).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
N = 10000
CONC = 100
IMPLS = ["stackless_compat", "stackless_compat-thread", "gevent-ares",
         "gevent-thread", "asyncio", "threads"]


def names():
    return ["h%05d.bench.test" % i for i in range(1, N + 1)]


def expected(i):
    return "127.1.%d.%d" % (i >> 8, i & 255)


def check(results):
    bad = [i for i, r in enumerate(results, 1) if r != expected(i)]
    if bad:
        raise SystemExit("%d wrong answers, first %s: %r"
                         % (len(bad), bad[0], results[bad[0] - 1]))


def run_impl(impl, family):
    import socket
    fam = socket.AF_INET if family == "inet" else socket.AF_UNSPEC
    ns = names()
    out = [None] * N

    def first_v4(infos):
        return [x[4][0] for x in infos if x[0] == socket.AF_INET][0]

    if impl.startswith("stackless_compat"):
        os.environ["STACKLESS_COMPAT_DNS_SERVERS"] = "127.0.0.1:5353"
        if impl.endswith("thread"):
            os.environ["STACKLESS_COMPAT_RESOLVER"] = "thread"
        import stackless_compat as sl
        from stackless_compat.hub import sleep
        from stackless_compat.patches import dns
        it = iter(range(N))
        done = [0]

        def worker():
            for i in it:
                out[i] = first_v4(dns.getaddrinfo(ns[i], 80, fam,
                                                  socket.SOCK_STREAM))
            done[0] += 1
        t0 = time.perf_counter()
        for _ in range(CONC):
            sl.tasklet(worker)()
        while done[0] < CONC:
            sleep(0.001)
        dt = time.perf_counter() - t0
    elif impl.startswith("gevent"):
        import gevent
        from gevent.pool import Pool
        if impl == "gevent-ares":
            from gevent.resolver.ares import Resolver
            res = Resolver(servers=["127.0.0.1"], udp_port=5353)
        else:
            from gevent.resolver.thread import Resolver
            res = Resolver()

        def one(i):
            out[i] = first_v4(res.getaddrinfo(ns[i], 80, fam,
                                              socket.SOCK_STREAM))
        t0 = time.perf_counter()
        Pool(CONC).map(one, range(N))
        dt = time.perf_counter() - t0
    elif impl == "asyncio":
        import asyncio

        async def main():
            loop = asyncio.get_running_loop()
            sem = asyncio.Semaphore(CONC)

            async def one(i):
                async with sem:
                    out[i] = first_v4(await loop.getaddrinfo(
                        ns[i], 80, family=fam, type=socket.SOCK_STREAM))
            await asyncio.gather(*(one(i) for i in range(N)))
        t0 = time.perf_counter()
        asyncio.run(main())
        dt = time.perf_counter() - t0
    elif impl == "threads":
        import threading
        it = iter(range(N))
        lock = threading.Lock()

        def worker():
            while True:
                with lock:
                    i = next(it, None)
                if i is None:
                    return
                out[i] = first_v4(socket.getaddrinfo(ns[i], 80, fam,
                                                     socket.SOCK_STREAM))
        ths = [threading.Thread(target=worker) for _ in range(CONC)]
        t0 = time.perf_counter()
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        dt = time.perf_counter() - t0
    else:
        raise SystemExit("unknown impl %r" % impl)
    check(out)
    print(json.dumps({"bench": "dns", "impl": impl, "family": family,
                      "names": N, "concurrency": CONC,
                      "value": round(N / dt), "unit": "names/s"}), flush=True)


def inner():
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tmp = tempfile.mkdtemp(prefix="bench_dns.")
    exe = os.path.join(tmp, "dns_resp")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(HERE, "dns_resp.c")],
                   check=True)
    conf = os.path.join(tmp, "resolv.conf")
    with open(conf, "w") as f:
        f.write("nameserver 127.0.0.1\noptions timeout:2 attempts:3\n")
    subprocess.run(["mount", "--bind", conf, "/etc/resolv.conf"], check=True)
    srv = subprocess.Popen([exe, "53", "5353"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        assert srv.stdout.readline().strip() == "READY"
        impls = sys.argv[1:] or IMPLS
        repeat = int(os.environ.get("BENCH_DNS_REPEAT", "1"))
        for family in ("inet", "unspec"):
            for impl in [i for i in impls for _ in range(repeat)]:
                p = subprocess.run([sys.executable, __file__, "--child", impl,
                                    family], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True,
                                   timeout=600)
                if p.returncode == 0:
                    sys.stdout.write(p.stdout)
                else:
                    err = (p.stderr.strip().splitlines() or ["?"])[-1]
                    print(json.dumps({"bench": "dns", "impl": impl,
                                      "family": family, "skipped": err}))
                sys.stdout.flush()
    finally:
        srv.terminate()
        srv.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        run_impl(sys.argv[2], sys.argv[3])
    elif os.environ.get("BENCH_DNS_INNER"):
        inner()
    else:
        env = dict(os.environ, BENCH_DNS_INNER="1")
        bad = [i for i in sys.argv[1:] if i not in IMPLS]
        if bad:
            raise SystemExit("unknown impl(s) %s; choose from %s"
                             % (", ".join(bad), ", ".join(IMPLS)))
        sys.exit(subprocess.call(["unshare", "--net", "--mount",
                                  "--propagation", "private", sys.executable,
                                  os.path.abspath(__file__)] + sys.argv[1:],
                                 env=env))
