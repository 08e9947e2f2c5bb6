"""The c-ares resolver (hub/dns.c, patches/dns.py) against a real DNS
server: a private dnsmasq on 127.0.0.1 (tests/dns/server.py) serving the
records in tests/dns/.

Comparisons with the stdlib resolver, and why these: the stdlib (glibc)
cannot be pointed at a server on a high port in this process, so the
tests compare, call by call, what glibc answers *without* the network:
numeric addresses, ``localhost``, every name and address of the real
``/etc/hosts``, and bad input (types, NULs, long labels, unknown
families/socket types/services).  For names served by dnsmasq the
expected answers are written out from the records files, with the error
codes and messages glibc gives for NXDOMAIN (-2), NODATA (-5) and
SERVFAIL/timeout (-3).

In addition, test_same_as_stdlib_pointed_at_the_same_server runs both
resolvers against the same dnsmasq on port 53 in a child process inside
private network + mount + UTS namespaces (its docstring says what is
compared); any difference fails it.
"""
import errno
import os
import socket as stdsocket
import time

import pytest

import helpers
import stackless_compat as sl
from stackless_compat import _stackless
from stackless_compat.hub import sleep
from stackless_compat.patches import dns

from helpers import describe, run_py

Dnsmasq = helpers.dns_server_module().Dnsmasq

S = stdsocket


@pytest.fixture(scope="module")
def many_hosts(tmp_path_factory):
    path = tmp_path_factory.mktemp("dns") / "many.hosts"
    with open(path, "w") as f:
        for i in range(1000):
            f.write("10.2.%d.%d h%04d.many.test\n" % (i // 250, i % 250 + 1, i))
    return str(path)


@pytest.fixture(scope="module")
def server(many_hosts):
    d = Dnsmasq(extra=["--addn-hosts=" + many_hosts])
    try:
        d.start()
    except Exception as exc:      # not installed, cannot bind...
        pytest.skip("cannot start dnsmasq: %s" % exc)
    yield d
    d.stop()


@pytest.fixture(autouse=True)
def use_server(request, server):
    dns.configure([server.server], timeout=0.5, tries=2)
    yield
    dns.configure()


def in_tasklets(funcs):
    """Run each func in its own tasklet; results (or exceptions) in order."""
    out = [None] * len(funcs)

    def run(i, f):
        try:
            out[i] = (True, f())
        except Exception as exc:
            out[i] = (False, exc)
    for i, f in enumerate(funcs):
        sl.tasklet(run)(i, f)
    while any(o is None for o in out):
        sleep(0.001)
    return out


def gai_err(exc_info, code):
    assert exc_info.value.args[0] == code, exc_info.value.args
    assert exc_info.value.args[1] == S.gai_strerror(code) if hasattr(
        S, "gai_strerror") else True


def test_a_records():
    r = dns.getaddrinfo("a.test", 80, S.AF_INET, S.SOCK_STREAM)
    assert sorted(x[4] for x in r) == [("10.0.0.1", 80), ("10.0.0.2", 80)]
    assert all(x[:4] == (S.AF_INET, S.SOCK_STREAM, 6, "") for x in r)
    assert dns.gethostbyname("a.test") in ("10.0.0.1", "10.0.0.2")


def test_aaaa_and_unspec():
    r = dns.getaddrinfo("v6.test", "http", S.AF_INET6, S.SOCK_STREAM)
    assert [x[4] for x in r] == [("fd00::1", 80, 0, 0)]
    r = dns.getaddrinfo("both.test", 53, 0, S.SOCK_DGRAM)
    assert sorted(x[4][0] for x in r) == ["10.0.0.3", "fd00::3"]
    assert {x[2] for x in r} == {17}


def test_type_proto_expansion_is_libc():
    r = dns.getaddrinfo("a.test", 80, S.AF_INET)
    libc = S.getaddrinfo("10.0.0.1", 80, S.AF_INET)
    assert [x[:3] for x in r if x[4][0] == "10.0.0.1"] == [x[:3] for x in libc]


def test_cname_chain_without_the_family():
    # glibc: a CNAME chain ending in a name without AAAA is EAI_NONAME,
    # a name without AAAA (no answer records) EAI_NODATA; for AF_INET
    # without AI_CANONNAME (its gethostbyname2_r path) both are EAI_NODATA
    with pytest.raises(S.gaierror) as ei:
        dns.getaddrinfo("alias1.test", 80, S.AF_INET6)
    assert ei.value.args[0] == S.EAI_NONAME
    with pytest.raises(S.gaierror) as ei:
        dns.getaddrinfo("rev.test", 80, S.AF_INET6)
    assert ei.value.args[0] == S.EAI_NODATA
    with pytest.raises(S.gaierror) as ei:
        dns.getaddrinfo("alias6.test", 80, S.AF_INET)
    assert ei.value.args[0] == S.EAI_NODATA
    with pytest.raises(S.gaierror) as ei:
        dns.getaddrinfo("alias6.test", 80, S.AF_INET, 0, 0, S.AI_CANONNAME)
    assert ei.value.args[0] == S.EAI_NONAME


def test_v4mapped():
    r = dns.getaddrinfo("a.test", 80, S.AF_INET6, S.SOCK_STREAM, 0,
                        S.AI_V4MAPPED)
    assert sorted(x[4][0] for x in r) == ["::ffff:10.0.0.1", "::ffff:10.0.0.2"]
    r = dns.getaddrinfo("both.test", 80, S.AF_INET6, S.SOCK_STREAM, 0,
                        S.AI_V4MAPPED)
    assert [x[4][0] for x in r] == ["fd00::3"]
    r = dns.getaddrinfo("both.test", 80, S.AF_INET6, S.SOCK_STREAM, 0,
                        S.AI_V4MAPPED | S.AI_ALL)
    assert sorted(x[4][0] for x in r) == ["::ffff:10.0.0.3", "fd00::3"]


def test_cname_chain():
    r = dns.getaddrinfo("alias1.test", 80, S.AF_INET, S.SOCK_STREAM, 0,
                        S.AI_CANONNAME)
    assert r[0][3] == "a.test" and all(x[3] == "" for x in r[1:])
    name, aliases, addrs = dns.gethostbyname_ex("alias1.test")
    assert name == "a.test"
    assert aliases == ["alias1.test", "alias2.test"]
    assert sorted(addrs) == ["10.0.0.1", "10.0.0.2"]


def test_nxdomain_nodata():
    with pytest.raises(S.gaierror) as ei:
        dns.getaddrinfo("nx.test", 80)
    assert ei.value.args == (S.EAI_NONAME, "Name or service not known")
    with pytest.raises(S.gaierror) as ei:
        dns.gethostbyname("v6.test")
    assert ei.value.args == (S.EAI_NODATA, "No address associated with hostname")
    with pytest.raises(S.gaierror) as ei:
        dns.gethostbyname_ex("nx.test")
    assert ei.value.args[0] == S.EAI_NONAME


def test_servfail():
    with pytest.raises(S.gaierror) as ei:
        dns.getaddrinfo("x.fail.test", 80)
    assert ei.value.args == (S.EAI_AGAIN, "Temporary failure in name resolution")


def test_timeout_does_not_block_others():
    mute = S.socket(S.AF_INET, S.SOCK_DGRAM)    # receives, never answers
    mute.bind(("127.0.0.1", 0))
    try:
        dns.configure(["127.0.0.1:%d" % mute.getsockname()[1]], 0.3, 1)
        ticks = []

        def ticker():
            while len(ticks) < 1000:
                ticks.append(time.monotonic())
                sleep(0.01)
        t0 = time.monotonic()
        tk = sl.tasklet(ticker)()
        with pytest.raises(S.gaierror) as ei:
            dns.getaddrinfo("slow.test", 80)
        elapsed = time.monotonic() - t0
        tk.kill()
        assert ei.value.args[0] == S.EAI_AGAIN
        assert 0.25 < elapsed < 3, elapsed
        assert len(ticks) >= 10, "the scheduler was blocked"
    finally:
        mute.close()


def test_truncated_answer_falls_back_to_tcp():
    r = dns.getaddrinfo("big.test", 80, S.AF_INET, S.SOCK_STREAM)
    assert sorted(x[4][0] for x in r) == sorted(
        "10.1.0.%d" % i for i in range(1, 61))


def test_reverse():
    assert dns.gethostbyaddr("10.0.0.9") == ("rev.test", [], ["10.0.0.9"])
    assert dns.gethostbyaddr("fd00::1") == ("v6.test", [], ["fd00::1"])
    with pytest.raises(S.herror) as ei:
        dns.gethostbyaddr("10.9.9.9")
    assert ei.value.args == (1, "Unknown host")
    assert dns.getnameinfo(("10.0.0.9", 80), 0) == ("rev.test", "http")
    assert dns.getnameinfo(("10.9.9.9", 80), 0) == ("10.9.9.9", "http")
    with pytest.raises(S.gaierror) as ei:
        dns.getnameinfo(("10.9.9.9", 80), S.NI_NAMEREQD)
    assert ei.value.args[0] == S.EAI_NONAME
    # the server refuses: glibc says TRY_AGAIN, and getnameinfo() fails
    # with EAI_AGAIN even without NI_NAMEREQD
    with pytest.raises(S.herror) as ei:
        dns.gethostbyaddr("10.99.99.99")
    assert ei.value.args == (2, "Host name lookup failure")
    with pytest.raises(S.gaierror) as ei:
        dns.getnameinfo(("10.99.99.99", 80), 0)
    assert ei.value.args[0] == S.EAI_AGAIN
    # a name is resolved first, then its address reversed (as CPython)
    assert dns.gethostbyaddr("rev.test")[0] == "rev.test"


def test_1000_concurrent_lookups():
    names = ["h%04d.many.test" % i for i in range(1000)]
    res = in_tasklets([lambda n=n: dns.gethostbyname(n) for n in names])
    for i, (ok, value) in enumerate(res):
        assert ok, (names[i], value)
        assert value == "10.2.%d.%d" % (i // 250, i % 250 + 1), names[i]
    assert _stackless._dns_info()["pending"] == 0


def test_kill_while_resolving_cancels_cleanly():
    mute = S.socket(S.AF_INET, S.SOCK_DGRAM)
    mute.bind(("127.0.0.1", 0))
    try:
        dns.configure(["127.0.0.1:%d" % mute.getsockname()[1]], 0.2, 1)
        got = []

        def look():
            got.append(dns.getaddrinfo("k.test", 80))
        ts = [sl.tasklet(look)() for _ in range(20)]
        sleep(0.02)
        assert all(t.blocked for t in ts)
        for t in ts:
            t.kill()
        assert not got
        # two queries (A and AAAA) each, still held by c-ares
        assert _stackless._dns_info()["pending"] == 40
        deadline = time.monotonic() + 5     # c-ares times them out
        while _stackless._dns_info()["pending"] and time.monotonic() < deadline:
            sleep(0.02)
        assert _stackless._dns_info()["pending"] == 0
    finally:
        mute.close()
    dns.configure()


def _outcome(func, *args):
    try:
        return ("ok", func(*args))
    except Exception as exc:
        return ("raise", type(exc), exc.args)


def _hosts_names():
    names = set()
    with open("/etc/hosts") as f:
        for line in f:
            fields = line.split("#", 1)[0].split()
            names.update(fields)
    return sorted(names)


STDLIB_CASES = [
    ("127.0.0.1", 80), ("::1", "http"), ("0.0.0.0", 0), ("localhost", None),
    ("localhost", 22), ("fe80::1%lo", 80), (None, 80), ("", 80),
    ("127.0.0.1", "nosuchservice"), ("a\0b", 80), ("x" * 64 + ".test", 80),
    (b"localhost", b"80"), (80, 80), ("localhost", 1.5), ("localhost", [1]),
]
COMBOS = [(0, 0, 0, 0), (S.AF_INET, 0, 0, 0), (S.AF_INET6, 0, 0, 0),
          (0, S.SOCK_STREAM, 0, 0), (0, S.SOCK_DGRAM, 17, 0),
          (0, S.SOCK_RAW, 0, 0), (0, 0, 0, S.AI_PASSIVE),
          (0, 0, 0, S.AI_CANONNAME), (0, 0, 0, S.AI_NUMERICHOST),
          (S.AF_UNIX, 0, 0, 0), (0, 99, 0, 0), (0, 0, 0, 0x7fffffff),
          ("x", 0, 0, 0)]


@pytest.mark.parametrize("host,port", STDLIB_CASES)
def test_getaddrinfo_same_as_stdlib_without_network(host, port):
    for combo in COMBOS:
        assert _outcome(dns.getaddrinfo, host, port, *combo) == _outcome(
            S.getaddrinfo, host, port, *combo), (host, port, combo)


def test_hosts_file_same_as_stdlib():
    for name in _hosts_names():
        for func in (dns.gethostbyname, dns.gethostbyname_ex,
                     dns.gethostbyaddr, dns.getfqdn):
            std = getattr(S, func.__name__)
            assert _outcome(func, name) == _outcome(std, name), (func, name)
        for combo in COMBOS[:9]:
            assert _outcome(dns.getaddrinfo, name, 443, *combo) == _outcome(
                S.getaddrinfo, name, 443, *combo), (name, combo)


@pytest.mark.parametrize("arg", ["", "127.0.0.1", "::1", "<broadcast>",
                                 "255.255.255.255", "a\0b", 42, None,
                                 b"localhost", bytearray(b"127.0.0.1"),
                                 "x" * 64 + ".test", "\udcff.test"])
def test_host_functions_same_as_stdlib_without_network(arg):
    for func in (dns.gethostbyname, dns.gethostbyname_ex, dns.gethostbyaddr):
        std = getattr(S, func.__name__)
        assert _outcome(func, arg) == _outcome(std, arg), (func, arg)


@pytest.mark.parametrize("sa,flags", [
    (("127.0.0.1", 80), 0), (("127.0.0.1", 80), S.NI_NUMERICHOST),
    (("::1", 53, 0, 0), S.NI_DGRAM), (("127.0.0.1", 80), S.NI_NUMERICSERV),
    (("localhost", 80), 0), (("127.0.0.1",), 0), (("127.0.0.1", 80, 0), 0),
    (("::1", 80, 1 << 40, 0), 0), ("127.0.0.1", 0), (("127.0.0.1", 80), "x"),
    (("10.0.0.9", 80), S.NI_NUMERICHOST | S.NI_NAMEREQD),
    (("10.0.0.9", 80), S.NI_NUMERICHOST),
])
def test_getnameinfo_same_as_stdlib_without_network(sa, flags):
    assert _outcome(dns.getnameinfo, sa, flags) == _outcome(
        S.getnameinfo, sa, flags)


def test_threaded_fallback():
    dns.set_resolver("thread")
    try:
        assert dns.get_resolver() == "thread"
        assert dns.getaddrinfo("localhost", 80) == S.getaddrinfo("localhost", 80)
        assert dns.gethostbyname("127.0.0.1") == "127.0.0.1"
    finally:
        dns.set_resolver("ares")
    with pytest.raises(ValueError):
        dns.set_resolver("nope")


def test_env_configuration_and_patch(server):
    proc = run_py("""
        import socket
        from stackless_compat.patches import patch_all, dns
        patch_all(dns=True)
        assert socket.getaddrinfo is dns.getaddrinfo
        assert socket.gethostbyname is dns.gethostbyname
        assert socket.getfqdn is dns.getfqdn
        print(socket.gethostbyname("rev.test"))
        print(socket.gethostbyaddr("10.0.0.9")[0])
        from stackless_compat import _stackless
        info = _stackless._dns_info()
        print(info["timeout_ms"], info["tries"])
    """, env={"STACKLESS_COMPAT_DNS_SERVERS": server.server,
              "STACKLESS_COMPAT_DNS_TIMEOUT": "0.7",
              "STACKLESS_COMPAT_DNS_TRIES": "3"})
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.split() == ["10.0.0.9", "rev.test", "700", "3"]
    proc = run_py("""
        from stackless_compat.patches import dns
        print(dns.get_resolver())
    """, env={"STACKLESS_COMPAT_RESOLVER": "thread"})
    assert proc.stdout.strip() == "thread", describe(proc)


def test_channel_recreated_after_fork():
    assert dns.gethostbyname("rev.test") == "10.0.0.9"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            if dns.gethostbyname("a.test").startswith("10.0.0."):
                code = 0
        finally:
            os._exit(code)
    os.close(w)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert dns.gethostbyname("rev.test") == "10.0.0.9"


def test_threads_have_their_own_channel():
    import threading
    out = []

    def work():
        out.append(dns.gethostbyname("rev.test"))
    ths = [threading.Thread(target=work) for _ in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    assert out == ["10.0.0.9"] * 4


def test_bad_configuration():
    with pytest.raises(ValueError):
        dns.configure(timeout=-1)
    with pytest.raises(ValueError):
        dns.configure(tries=0)


# ---------------------------------------------------------------------------
# Against the stdlib resolver pointed at the same dnsmasq.

_NS_CHILD = r'''
import json, os, socket as S, subprocess, sys, tempfile
sys.path.insert(0, sys.argv[1])
# private UTS namespace: a host name with a domain, for NI_NOFQDN (glibc
# and we both take the local domain from it, once per process)
S.sethostname("box.test")
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
import importlib.util
spec = importlib.util.spec_from_file_location("srv", sys.argv[2])
srv = importlib.util.module_from_spec(spec); spec.loader.exec_module(srv)
d = srv.Dnsmasq(port=53).start()
conf = os.path.join(tempfile.mkdtemp(), "resolv.conf")
with open(conf, "w") as f:
    f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
subprocess.run(["mount", "--bind", conf, "/etc/resolv.conf"], check=True)
from stackless_compat.patches import dns
dns.configure(["127.0.0.1:53"], timeout=1, tries=1)

def outcome(f, *a):
    try:
        r = f(*a)
        if isinstance(r, list):
            r = [(int(x[0]), int(x[1])) + tuple(x[2:]) for x in r]
        return ["ok", repr(r)]
    except OSError as e:
        return ["err", type(e).__name__, list(e.args)]

out = []
try:
    for phase, ip_cmds, cases in json.loads(sys.argv[3]):
        for cmd in ip_cmds:
            subprocess.run(["ip"] + cmd, check=True)
        for case in cases:
            fname, args = case[0], case[1:]
            if fname == "getnameinfo":
                args = [tuple(args[0])] + args[1:]
            out.append([phase, case, outcome(getattr(dns, fname), *args),
                        outcome(getattr(S, fname), *args)])
finally:
    d.stop()
print(json.dumps(out))
'''

NS_NAMES = ["a.test", "v6.test", "both.test", "rev.test", "alias1.test",
            "alias2.test", "alias6.test", "dangling.test", "txt.test",
            "h0007.many.test", "nx.test"]
NS_FAIL = "x.fail.test"
NS_ADDRS = ["10.0.0.1", "10.0.0.9", "10.0.0.10", "fd00::1", "fd00::3",
            "10.2.0.8", "10.99.99.99", "fd00::99", "10.9.9.9",
            "::ffff:10.0.0.9", "::10.0.0.9", "::ffff:10.99.99.99"]


# single-label names and spellings: the search list ("test", from the
# host name box.test, for glibc and c-ares alike), a trailing dot, case
NS_SEARCH_NAMES = ["a", "alias1", "rev", "v6", "nx", "box", "rev.",
                   "a.test.", "ALIAS1.TEST"]


_NS_ROTATING = ("a.test", "alias1.test", "alias2.test", "a", "alias1",
                "a.test.", "ALIAS1.TEST")
_NS_EVAL = {}


def _ns_name_cases(names, families, variants):
    cases = []
    for n in names:
        for fam in families:
            for port, typ, flags in variants:
                cases.append(["getaddrinfo", n, port, fam, typ, 0, flags])
    return cases


def _ns_phases():
    """[(phase, ip commands to run first, cases)]: the cases of each phase
    run with the interface addresses the commands leave."""
    fams = (0, S.AF_INET, S.AF_INET6)
    plain = [(80, 0, 0), ("http", S.SOCK_STREAM, S.AI_CANONNAME),
             (53, S.SOCK_DGRAM, 0)]
    mapped = [(80, S.SOCK_STREAM, S.AI_V4MAPPED),
              (80, S.SOCK_STREAM, S.AI_V4MAPPED | S.AI_ALL),
              (80, S.SOCK_STREAM, S.AI_V4MAPPED | S.AI_CANONNAME),
              (80, S.SOCK_STREAM, S.AI_V4MAPPED | S.AI_ALL | S.AI_CANONNAME),
              (80, S.SOCK_STREAM, S.AI_ALL)]
    addrconfig = [(80, S.SOCK_STREAM, S.AI_ADDRCONFIG),
                  (80, S.SOCK_STREAM, S.AI_ADDRCONFIG | S.AI_V4MAPPED),
                  (80, S.SOCK_STREAM,
                   S.AI_ADDRCONFIG | S.AI_V4MAPPED | S.AI_ALL)]
    ac_names = ["a.test", "v6.test", "both.test", "alias6.test", "nx.test"]
    lo = _ns_name_cases(NS_NAMES, fams, plain)
    lo += _ns_name_cases(NS_SEARCH_NAMES, fams, plain[:2])
    lo += [[f, n] for n in NS_SEARCH_NAMES
           for f in ("gethostbyname_ex", "gethostbyaddr")]
    lo += _ns_name_cases(NS_NAMES, (S.AF_INET6,), mapped)
    lo += _ns_name_cases(["both.test", "a.test"], (0, S.AF_INET),
                         mapped[1:2])
    # not host names (res_hnok): no query, except for one family with
    # AI_CANONNAME, where the server's failure shows through
    lo += _ns_name_cases(["-x.test", "a b.test", "x_y.test"], fams, plain)
    lo += [["getaddrinfo", "-x.fail.test", 80, S.AF_INET, 0, 0, f]
           for f in (0, S.AI_CANONNAME)]
    lo += [["getaddrinfo", NS_FAIL, 80, fam, S.SOCK_STREAM] for fam in fams]
    for n in NS_NAMES + [NS_FAIL]:
        lo.append(["gethostbyname", n])
        lo.append(["gethostbyname_ex", n])
        lo.append(["gethostbyaddr", n])
    for a in NS_ADDRS:
        lo.append(["gethostbyaddr", a])
        sa = [a, 80] if "." in a and ":" not in a else [a, 80, 0, 0]
        for flags in (0, S.NI_NAMEREQD, S.NI_NOFQDN,
                      S.NI_NOFQDN | S.NI_NUMERICSERV,
                      S.NI_NUMERICHOST | S.NI_NAMEREQD):
            lo.append(["getnameinfo", sa, flags])
    lo += _ns_name_cases(ac_names, fams, addrconfig)
    ac = _ns_name_cases(ac_names, fams, addrconfig)
    v4 = ["addr", "add", "192.0.2.1/32", "dev", "lo"]
    v6 = ["-6", "addr", "add", "2001:db8::1/128", "dev", "lo", "nodad"]
    del_v4 = ["addr", "del", "192.0.2.1/32", "dev", "lo"]
    return [("loopback only", [], lo), ("+IPv4", [v4], ac),
            ("+IPv4 +IPv6", [v6], ac), ("+IPv6", [del_v4], ac)]


def _ns_cases():
    return [c for _, _, cases in _ns_phases() for c in cases]


def _ns_same(case, ours, std):
    """Whether our outcome and the stdlib's agree.  The one relaxation:
    dnsmasq rotates a name's records between queries (a.test and its
    aliases: 10.0.0.1/10.0.0.2), so for those names the order within one
    family is compared as a multiset (the family sequence and the position
    of the canonical name exactly), and gethostbyname/gethostbyaddr may
    give either address."""
    if ours == std:
        return True
    if case[1] not in _NS_ROTATING or ours[0] != "ok" or std[0] != "ok":
        return False
    if case[0] == "getaddrinfo":
        o, t = eval(ours[1], _NS_EVAL), eval(std[1], _NS_EVAL)
        return ([x[0] for x in o] == [x[0] for x in t]
                and [x[3] for x in o] == [x[3] for x in t]
                and sorted(x[:3] + x[4:] for x in o)
                == sorted(x[:3] + x[4:] for x in t))
    return case[0] in ("gethostbyname", "gethostbyaddr")


def test_ns_comparison_can_fail():
    # the relaxation is only for the rotating names and for ok outcomes
    ok = ["ok", "[(2, 1, 6, '', ('10.0.0.1', 80))]"]
    other = ["ok", "[(2, 1, 6, '', ('10.0.0.3', 80))]"]
    err = ["err", "gaierror", [-2, "Name or service not known"]]
    nodata = ["err", "gaierror", [-5, "No address associated with hostname"]]
    assert not _ns_same(["getaddrinfo", "a.test", 80, 0], ok, other)
    assert not _ns_same(["getaddrinfo", "alias1.test", 80, 10], err, nodata)
    assert not _ns_same(["getaddrinfo", "rev.test", 80, 0], ok, err)
    assert not _ns_same(["gethostbyaddr", "10.2.0.8"], err, nodata)
    assert _ns_same(["gethostbyname", "a.test"], ["ok", "'10.0.0.1'"],
                    ["ok", "'10.0.0.2'"])


def test_same_as_stdlib_pointed_at_the_same_server():
    """Our resolver and the stdlib's (glibc's) resolver, asked the same
    questions about the same dnsmasq, give the same answers.

    How: a child interpreter runs in private network, mount and UTS
    namespaces (``unshare --net --mount --uts``): there it starts the test
    dnsmasq on 127.0.0.1:53 (glibc only talks to port 53), bind-mounts a
    private ``/etc/resolv.conf`` ("nameserver 127.0.0.1") so glibc asks it
    too, and names the host "box.test" (so NI_NOFQDN has a local domain to
    strip, and both resolvers search "test" for single-label names); ours
    is configured with the same server.  What is compared,
    call by call, for the names of tests/dns (A, AAAA, both, CNAME chains
    ending in A, AAAA or no address, a name with TXT only, the many hosts
    file, NXDOMAIN, SERVFAIL, names that are not host names, names found
    through the search list, a trailing dot, upper case): the full
    result of ``getaddrinfo(name, port, family, type, 0, flags)`` for
    AF_UNSPEC, AF_INET and AF_INET6, with and without AI_CANONNAME,
    AI_V4MAPPED, AI_ALL, numeric and named services,
    SOCK_STREAM/SOCK_DGRAM/0 -- *in order*, so glibc's RFC 6724
    destination ordering is compared too -- ``gethostbyname``,
    ``gethostbyname_ex`` (canonical name, alias list, address list),
    ``gethostbyaddr`` for names and for addresses with a PTR record,
    without one (NXDOMAIN), refused by the server, v4-mapped and
    v4-compatible, and ``getnameinfo`` of those addresses with
    NI_NAMEREQD and NI_NOFQDN; or, when the call fails, the exception
    type and its ``args`` (error code and message).  AI_ADDRCONFIG is
    compared with loopback only, then with an IPv4 address, both, and an
    IPv6 address only configured (on lo: no route to the served 10.x /
    fd00:: addresses on either side).  The one relaxation (rotated
    records) is in ``_ns_same``.  Skipped when the namespaces cannot be
    created (not root, or unshare not permitted).
    """
    import json
    import shutil
    import subprocess
    import sys
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare or ip is not installed")
    ns = ["unshare", "--net", "--mount", "--uts", "--propagation", "private"]
    probe = subprocess.run(ns + ["true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unshare --net --mount --uts not permitted: %s"
                    % probe.stderr.decode(errors="replace").strip())
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    srv = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dns",
                       "server.py")
    phases = _ns_phases()
    p = subprocess.run(
        ns + [sys.executable, "-c", _NS_CHILD, root, srv,
              json.dumps(phases)],
        capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    results = json.loads(p.stdout)
    assert len(results) == sum(len(cases) for _, _, cases in phases)
    diffs = [(phase, case, ours, std) for phase, case, ours, std in results
             if not _ns_same(case, ours, std)]
    assert not diffs, "\n".join("%s %r:\n  ours   %r\n  stdlib %r" % d
                                for d in diffs)
    # the comparison did exercise answers and each kind of failure
    outcomes = [ours for _, _, ours, _ in results]
    assert sum(o[0] == "ok" for o in outcomes) > 100
    codes = {(o[1], o[2][0]) for o in outcomes
             if o[0] == "err"}
    for code in [("gaierror", S.EAI_NONAME), ("gaierror", S.EAI_NODATA),
                 ("gaierror", S.EAI_AGAIN), ("herror", 1), ("herror", 2),
                 ("OSError", errno.EAFNOSUPPORT)]:
        assert code in codes, code
