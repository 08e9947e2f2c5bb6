"""Loopback echo: round trips/s and p50/p99 latency of one echo server per
impl, driven by the C load generator (benchmarks/loadgen.c) at 1, 100 and
1000 connections x M ping-pong round trips of 64 bytes, all in one run.

Servers (each in its own child process, started by this script with
``--serve IMPL --port P``; every one echoes what one recv() returns):

  stackless_compat  patch_all(); the stdlib socket API, one tasklet per
                    connection doing recv()/sendall()
  stackless_compat-c  the same acceptor, but each connection's tasklet runs
                    the echo loop in C on the hub (socket._echo in
                    hub/sock.c): the floor the Python-level server can
                    approach (same scheduler, hub and syscalls, no bytecode)
  gevent            monkey.patch_all(); the same socket code, one greenlet
                    per connection
  asyncio-streams   asyncio.start_server, read() / write() + drain()
  uvloop-streams    the same on uvloop
  uvloop-proto      uvloop, a Protocol whose data_received writes back
  c                 benchmarks/echo_c: single-thread epoll, the machine's limit

An impl that is not installed is skipped with a note.  Prints one JSON line
per (impl, connections):

  {"bench": "echo", "figure": "echo_c100", "impl": "gevent",
   "value": <round trips/s>, "unit": "rt/s", "p50_us": ..., "p99_us": ...}

    python3 benchmarks/bench_echo.py                    # every impl, 1/100/1000
    python3 benchmarks/bench_echo.py --impl stackless_compat --conns 100
    python3 benchmarks/bench_echo.py --quick            # small sizes, smoke run
"""
import argparse
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
IMPLS = ("stackless_compat", "stackless_compat-c", "gevent", "asyncio-streams",
         "uvloop-streams", "uvloop-proto", "c")
# timed round trips per connection: a run of 1-4 s per (impl, conns)
ROUND_TRIPS = {1: 20000, 100: 1500, 1000: 200}
QUICK_ROUND_TRIPS = {1: 500, 100: 50, 1000: 10}
SKIP_RC = 77
PY = "%s %s" % (platform.python_implementation(), platform.python_version())


# --------------------------------------------------------------------------
# the servers (child side)

def announce(port):
    sys.stdout.write("LISTENING %d\n" % port)
    sys.stdout.flush()


def blocking_style_server(port, start, c_echo=None):
    """What a user of patch_all writes: a listener and one handler per
    connection with plain socket calls.  ``start(func, *args)`` runs func
    concurrently (a tasklet or a greenlet).  ``c_echo(conn)``, when given,
    replaces the handler's loop."""
    import socket as S

    def handler(conn):
        conn.setsockopt(S.IPPROTO_TCP, S.TCP_NODELAY, 1)
        recv, sendall = conn.recv, conn.sendall
        try:
            if c_echo is not None:
                c_echo(conn)
                return
            while True:
                chunk = recv(65536)
                if not chunk:
                    break
                sendall(chunk)
        except OSError:
            pass
        finally:
            conn.close()

    listener = S.socket(S.AF_INET, S.SOCK_STREAM)
    listener.setsockopt(S.SOL_SOCKET, S.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(4096)
    announce(port)

    def accept_loop():
        while True:
            conn, _ = listener.accept()
            start(handler, conn)

    return accept_loop


def serve_stackless_compat(port, c_loop=False):
    # measure this checkout when it has an in-place build, else what is
    # installed
    if any(f.startswith("_stackless.") for f in
           os.listdir(os.path.join(REPO, "stackless_compat"))):
        sys.path.insert(0, REPO)
    import stackless_compat as sl
    from stackless_compat.patches import patch_all
    patch_all()
    c_echo = None
    if c_loop:
        from stackless_compat import _stackless
        c_echo = _stackless._sock_methods()["_echo"]
    loop = blocking_style_server(port, lambda f, *a: sl.tasklet(f)(*a), c_echo)
    sl.tasklet(loop)()
    sl.run()            # returns only if the acceptor dies


def serve_gevent(port):
    from gevent import monkey
    monkey.patch_all()
    import gevent
    loop = blocking_style_server(port, gevent.spawn)
    loop()


def serve_asyncio(port, flavour, uv):
    import asyncio
    if uv:
        import uvloop
        uvloop.install()

    class EchoProtocol(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    async def on_client(reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def amain():
        loop = asyncio.get_running_loop()
        if flavour == "proto":
            server = await loop.create_server(EchoProtocol, "127.0.0.1", port,
                                              backlog=4096)
        else:
            server = await asyncio.start_server(on_client, "127.0.0.1", port,
                                                backlog=4096)
        announce(port)
        done = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, done.set_result, None)
        async with server:
            await done

    asyncio.run(amain())


SERVERS = {
    "stackless_compat": serve_stackless_compat,
    "stackless_compat-c": lambda p: serve_stackless_compat(p, True),
    "gevent": serve_gevent,
    "asyncio-streams": lambda p: serve_asyncio(p, "streams", False),
    "asyncio-proto": lambda p: serve_asyncio(p, "proto", False),
    "uvloop-streams": lambda p: serve_asyncio(p, "streams", True),
    "uvloop-proto": lambda p: serve_asyncio(p, "proto", True),
}
NEEDS = {"gevent": "gevent", "uvloop-streams": "uvloop", "uvloop-proto": "uvloop"}


# --------------------------------------------------------------------------
# the driver (parent side)

def build_tools():
    if all(os.path.exists(os.path.join(HERE, t)) for t in ("loadgen", "echo_c")):
        return
    subprocess.run(["make", "-s", "-C", HERE, "loadgen", "echo_c"], check=True)


def available(impl):
    """None if impl can run here, else why not."""
    mod = NEEDS.get(impl)
    if mod is None:
        return None
    p = subprocess.run([sys.executable, "-c", "import " + mod],
                       capture_output=True, text=True)
    return None if p.returncode == 0 else "%s is not installed" % mod


def unused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(impl, conns, round_trips, warmup, timeout):
    port = unused_port()
    if impl == "c":
        cmd = [os.path.join(HERE, "echo_c"), str(port)]
    else:
        cmd = [sys.executable, os.path.abspath(__file__), "--serve", impl,
               "--port", str(port)]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        first = server.stdout.readline()
        if not first.split()[:1] or first.split()[0] not in ("LISTENING", "READY"):
            server.kill()
            raise RuntimeError("%s server did not start: %r %s"
                               % (impl, first, server.stderr.read()[-2000:]))
        cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
        lg = subprocess.run(
            [os.path.join(HERE, "loadgen"), "-p", str(port), "-c", str(conns),
             "-m", str(round_trips), "-w", str(warmup), "-s", "64",
             "-t", str(int(timeout)), "-l", impl],
            capture_output=True, text=True, timeout=timeout + 30)
        server_cpu = (cpu_seconds(server.pid) - cpu0) / (time.perf_counter() - t0)
        if lg.returncode != 0 or not lg.stdout.strip():
            raise RuntimeError("loadgen against %s failed (rc %d): %s"
                               % (impl, lg.returncode, lg.stderr[-2000:]))
        res = json.loads(lg.stdout.strip().splitlines()[-1])
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(5)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)
        server.stdout.close()
        server.stderr.close()
    rec = {"bench": "echo", "figure": "echo_c%d" % conns, "impl": impl,
           "value": round(res["rt_per_s"], 1), "unit": "rt/s",
           "p50_us": res["p50_us"], "p99_us": res["p99_us"],
           "max_us": res["max_us"], "conns": conns, "rt_per_conn": round_trips,
           "round_trips": res["round_trips"], "elapsed_s": res["elapsed_s"],
           "client_cpu": res.get("client_cpu"),
           "server_cpu": round(server_cpu, 3), "timeout": res["timeout"],
           "python": PY, "machine": platform.machine()}
    return rec


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impl", default="all",
                    help="comma-separated impls, or all (default): " + ",".join(IMPLS))
    ap.add_argument("--conns", default="1,100,1000",
                    help="comma-separated connection counts (default 1,100,1000)")
    ap.add_argument("--rt", type=int, default=None,
                    help="timed round trips per connection (default by conns)")
    ap.add_argument("--warm", type=int, default=20,
                    help="untimed round trips per connection first")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--quick", action="store_true", help="small sizes, smoke run")
    ap.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.serve:
        SERVERS[args.serve](args.port)
        return 0

    impls = IMPLS if args.impl == "all" else tuple(
        i.strip() for i in args.impl.split(",") if i.strip())
    for i in impls:
        if i not in SERVERS and i != "c":
            ap.error("unknown impl %r" % i)
    conns = [int(c) for c in args.conns.split(",") if c.strip()]
    table = QUICK_ROUND_TRIPS if args.quick else ROUND_TRIPS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * max(conns) + 256
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))
    build_tools()

    failed = skipped = 0
    runnable = []
    for impl in impls:
        why = available(impl)
        if why:
            sys.stderr.write("note: %s not measured -- %s\n" % (impl, why))
            skipped += 1
        else:
            runnable.append(impl)
    for n in conns:
        rt = args.rt or table.get(n) or max(10, 100000 // n)
        for impl in runnable:
            try:
                rec = measure(impl, n, rt, args.warm, args.timeout)
            except Exception as e:          # report, go on with the others
                sys.stderr.write("FAILED %s at %d conns: %s\n" % (impl, n, e))
                failed += 1
                continue
            sys.stdout.write(json.dumps(rec, sort_keys=True) + "\n")
            sys.stdout.flush()
    if failed:
        return 1
    if not runnable and skipped:
        return SKIP_RC
    return 0


if __name__ == "__main__":
    sys.exit(main())
