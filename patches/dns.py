"""Cooperative name resolution with the stdlib's exact behaviour.

The resolver functions of the ``socket`` module, answered by c-ares on the
thread's hub loop (``hub/dns.c``): the calling tasklet parks while the
query is out, other tasklets run, no helper threads.

What goes to c-ares and what stays with libc:

* Anything libc answers without the network goes to libc, so that the
  answer is the stdlib's by construction: numeric addresses (scoped IPv6
  included), ``AI_NUMERICHOST``, ``None``/empty hosts, ``localhost`` and
  every name or address listed in ``/etc/hosts``.  Bad input (wrong types,
  embedded NULs, unknown families or socket types, unknown services) also
  goes to libc, or is rejected by the same codec call CPython makes, and
  raises what the stdlib raises.
* Other names go to c-ares for the addresses (and the canonical name).
  Socket types, protocols and ports of a ``getaddrinfo`` answer are still
  libc's: they come from a numeric ``getaddrinfo`` with the same port,
  family, type, proto and flags (cached), so the expansion of
  ``type=0``/``proto=0`` and service names is exactly the stdlib's.
* c-ares statuses become the ``socket.gaierror``/``socket.herror`` codes
  and messages glibc's resolver gives (one table, in ``hub/dns.c``).

Configuration: nameservers, timeout and tries come from the system
(``/etc/resolv.conf``) unless overridden by :func:`configure` or the
environment, read when this module is imported:

``STACKLESS_COMPAT_DNS_SERVERS``   ``"1.2.3.4,[::1]:5353,..."``
``STACKLESS_COMPAT_DNS_TIMEOUT``   seconds per try (float)
``STACKLESS_COMPAT_DNS_TRIES``     tries per server
``STACKLESS_COMPAT_RESOLVER``      ``ares`` (default) or ``thread``: libc's
                                   resolver in a helper thread per call
"""
import errno
import os
import time
import _socket
import _thread
import socket as _stdsocket

from stackless_compat import _stackless

__implements__ = ["getaddrinfo", "gethostbyname", "gethostbyname_ex",
                  "gethostbyaddr", "getnameinfo", "getfqdn"]
__target__ = "socket"

AF_INET = _socket.AF_INET
AF_INET6 = _socket.AF_INET6
AF_UNSPEC = _socket.AF_UNSPEC
AI_CANONNAME = _socket.AI_CANONNAME
AI_ADDRCONFIG = _socket.AI_ADDRCONFIG
AI_NUMERICHOST = _socket.AI_NUMERICHOST
NI_NUMERICHOST = _socket.NI_NUMERICHOST
NI_NAMEREQD = _socket.NI_NAMEREQD
_HOST_TYPES = (str, bytes, bytearray)


# ---------------------------------------------------------------------------
# libc, exactly as the stdlib calls it (never patched).

def _libc_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    conv = _stdsocket._intenum_converter
    return [(conv(af, _stdsocket.AddressFamily),
             conv(st, _stdsocket.SocketKind), pr, cn, sa)
            for af, st, pr, cn, sa in _socket.getaddrinfo(
                host, port, family, type, proto, flags)]


def _libc_getfqdn(name=""):
    return _fqdn(name, _socket.gethostbyaddr)


_libc = {
    "getaddrinfo": _libc_getaddrinfo,
    "gethostbyname": _socket.gethostbyname,
    "gethostbyname_ex": _socket.gethostbyname_ex,
    "gethostbyaddr": _socket.gethostbyaddr,
    "getnameinfo": _socket.getnameinfo,
    "getfqdn": _libc_getfqdn,
}


# ---------------------------------------------------------------------------
# /etc/hosts: names and addresses listed there are libc's to answer.

_HOSTS_PATH = "/etc/hosts"
_hosts = {"checked": 0.0, "mtime": None, "names": frozenset(),
          "addrs": frozenset()}


def _hosts_tables():
    now = time.monotonic()
    if now - _hosts["checked"] >= 1.0:
        _hosts["checked"] = now
        try:
            mtime = os.stat(_HOSTS_PATH).st_mtime_ns
        except OSError:
            mtime = None
        if mtime != _hosts["mtime"]:
            names, addrs = {b"localhost"}, set()
            try:
                with open(_HOSTS_PATH, "rb") as f:
                    for line in f:
                        fields = line.split(b"#", 1)[0].split()
                        if len(fields) >= 2:
                            addrs.add(_packed(fields[0]))
                            names.update(n.lower() for n in fields[1:])
            except OSError:
                pass
            addrs.discard(None)
            _hosts.update(mtime=mtime, names=frozenset(names),
                          addrs=frozenset(addrs))
    return _hosts["names"], _hosts["addrs"]


def _packed(addr):
    """Packed form of a numeric address (bytes or str, scope id dropped),
    or None."""
    if isinstance(addr, (bytes, bytearray)):
        try:
            addr = bytes(addr).decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(addr, str) or "\0" in addr:
        return None
    addr = addr.split("%", 1)[0]
    for fam in (AF_INET, AF_INET6):
        try:
            return _socket.inet_pton(fam, addr)
        except (OSError, ValueError):
            pass
    return None


def _dns_name(host, accept=(str, bytes)):
    """The name to send to c-ares, or None when libc answers this host
    itself (or rejects it): the stdlib's behaviour by construction."""
    if isinstance(host, str):
        name = host.encode("idna")      # the codec call CPython makes
    elif isinstance(host, accept) and not isinstance(host, str):
        name = bytes(host)
    else:
        return None
    if not name or b"\0" in name or _packed(name) is not None:
        return None
    key = name.lower().rstrip(b".")
    names, _ = _hosts_tables()
    if key in names or key == b"localhost" or key.endswith(b".localhost"):
        return None
    return name


# ---------------------------------------------------------------------------
# getaddrinfo

_templates = {}
_ANY = {AF_INET: "0.0.0.0", AF_INET6: "::"}


def _template(port, family, type, proto, flags):
    """libc's (family, type, proto, port tail) entries for this request:
    its socket-type/protocol expansion and service lookup, no network."""
    key = (port, family, type, proto, flags)
    t = _templates.get(key)
    if t is None:
        t = []
        for fam in (AF_INET, AF_INET6):
            if family in (AF_UNSPEC, fam):
                for af, st, pr, _, sa in _libc_getaddrinfo(
                        _ANY[fam], port, fam, type, proto,
                        flags | AI_NUMERICHOST):
                    t.append((af, st, pr, sa[1:]))
        if len(_templates) > 512:
            _templates.clear()
        _templates[key] = t
    return t


def _ares_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    # CPython checks the integer arguments first, then encodes the host
    if (not isinstance(family, int) or not isinstance(type, int)
            or not isinstance(proto, int) or not isinstance(flags, int)):
        return _libc_getaddrinfo(host, port, family, type, proto, flags)
    name = _dns_name(host)
    if (name is None or flags & AI_NUMERICHOST
            or family not in (AF_UNSPEC, AF_INET, AF_INET6)
            or not isinstance(port, (int, str, bytes, type_none))):
        return _libc_getaddrinfo(host, port, family, type, proto, flags)
    if flags & AI_ADDRCONFIG:
        family = _addrconfig(family)
    tmpl = _template(port, family, type, proto,
                     flags & ~AI_CANONNAME & ~AI_ADDRCONFIG)
    canon, _, addrs = _stackless._dns_getaddrinfo(name, family, flags)
    result = []
    cn = canon or ""
    for af, addr, scope in addrs:
        for taf, st, pr, tail in tmpl:
            if taf != af:
                continue
            if af == AF_INET:
                sa = (addr, tail[0])
            else:
                sa = (addr, tail[0], tail[1], scope)
            result.append((taf, st, pr, cn, sa))
            cn = ""
    if not result:
        raise _socket.gaierror(_socket.EAI_NODATA,
                               "No address associated with hostname")
    return result


type_none = type(None)


def _addrconfig(family):
    """AI_ADDRCONFIG as glibc's getaddrinfo() applies it, before anything
    else: only families with a configured address other than 127.0.0.1 /
    ::1 (on any interface); AF_UNSPEC narrows to the one family seen, and
    stays AF_UNSPEC when none or both are."""
    v4, v6 = _stackless._dns_addrconfig()
    if family == AF_UNSPEC:
        if v4 != v6:
            return AF_INET if v4 else AF_INET6
    elif (family == AF_INET and not v4) or (family == AF_INET6 and not v6):
        raise _socket.gaierror(_socket.EAI_NONAME,
                               "Name or service not known")
    return family


# ---------------------------------------------------------------------------
# Host entries

def _ares_gethostbyname(hostname):
    name = _dns_name(hostname, _HOST_TYPES)
    if name is None or name == b"<broadcast>":
        return _socket.gethostbyname(hostname)
    _, _, addrs = _stackless._dns_getaddrinfo(name, AF_INET, 0)
    if not addrs:
        raise _socket.gaierror(_socket.EAI_NODATA,
                               "No address associated with hostname")
    return addrs[0][1]


def _ares_gethostbyname_ex(hostname):
    name = _dns_name(hostname, _HOST_TYPES)
    if name is None or name == b"<broadcast>":
        return _socket.gethostbyname_ex(hostname)
    # CPython resolves with getaddrinfo first (so errors are gaierror),
    # then takes the host entry: canonical name, the CNAME chain, the
    # IPv4 addresses.
    canon, aliases, addrs = _stackless._dns_getaddrinfo(name, AF_INET, 0,
                                                        True)
    if not addrs:
        raise _socket.gaierror(_socket.EAI_NODATA,
                               "No address associated with hostname")
    return canon, aliases, [a for _, a, _ in addrs]


def _ares_gethostbyaddr(ip_address):
    if not isinstance(ip_address, _HOST_TYPES) or isinstance(
            ip_address, bytearray):
        return _socket.gethostbyaddr(ip_address)
    if ip_address in ("<broadcast>", b"<broadcast>"):
        ip_address = "255.255.255.255"      # as CPython's setipaddr()
    packed = _packed(ip_address)
    if packed is None:
        name = _dns_name(ip_address, _HOST_TYPES)
        if name is None:
            return _socket.gethostbyaddr(ip_address)
        # CPython resolves a name first (AF_UNSPEC), then asks for the PTR
        _, _, addrs = _stackless._dns_getaddrinfo(name, AF_UNSPEC, 0)
        if not addrs:
            raise _socket.gaierror(_socket.EAI_NODATA,
                                   "No address associated with hostname")
        ip = addrs[0][1]
        packed = _packed(ip)
    else:
        ip = ip_address.decode("ascii") if isinstance(
            ip_address, bytes) else ip_address
        ip = ip.split("%", 1)[0]
    _, hosts_addrs = _hosts_tables()
    if packed in hosts_addrs:
        return _socket.gethostbyaddr(ip_address)
    hname, aliases, addrs, family = _stackless._dns_gethostbyaddr(packed)
    if family != (AF_INET if len(packed) == 4 else AF_INET6):
        # glibc answers a v4-mapped address with an AF_INET entry, which
        # CPython's gethost_common() refuses
        raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))
    return hname, aliases, addrs


def _ares_getnameinfo(sockaddr, flags):
    # libc checks the arguments and gives the numeric host and the service
    # (from /etc/services): no network.
    if not isinstance(flags, int) or flags & NI_NUMERICHOST:
        return _socket.getnameinfo(sockaddr, flags)
    host, serv = _socket.getnameinfo(
        sockaddr, (flags | NI_NUMERICHOST) & ~NI_NAMEREQD)
    packed = _packed(host)
    _, hosts_addrs = _hosts_tables()
    if packed is None or packed in hosts_addrs:
        return _socket.getnameinfo(sockaddr, flags)
    # as glibc's getnameinfo(): a lookup that could not be completed
    # (TRY_AGAIN) fails with EAI_AGAIN, any other failure gives the
    # numeric host unless NI_NAMEREQD
    try:
        hname = _stackless._dns_gethostbyaddr(packed)[0]
    except _socket.herror as exc:
        if exc.errno == _TRY_AGAIN:
            raise _socket.gaierror(
                _socket.EAI_AGAIN,
                "Temporary failure in name resolution") from None
        if flags & NI_NAMEREQD:
            raise _socket.gaierror(_socket.EAI_NONAME,
                                   "Name or service not known") from None
        return host, serv
    if flags & _socket.NI_NOFQDN:
        domain = _local_domain()
        i = hname.find(domain) if domain else -1
        if i > 0 and hname[i - 1] == ".":
            hname = hname[:i - 1]
    return hname, serv


_TRY_AGAIN = 2
_domain = []


def _local_domain():
    """The local domain NI_NOFQDN strips, found once per process the way
    glibc's getnameinfo() finds it: what follows the first dot of the
    canonical name of "localhost", else of the host name, else of the
    host name's canonical name, else of the name of 127.0.0.1; None
    when none has a dot."""
    if not _domain:
        domain = None
        for step in (lambda: _ares_gethostbyname_ex("localhost")[0],
                     _socket.gethostname,
                     lambda: _ares_gethostbyname_ex(_socket.gethostname())[0],
                     lambda: _ares_gethostbyaddr("127.0.0.1")[0]):
            try:
                name = step()
            except OSError:
                continue
            if "." in name:
                domain = name.split(".", 1)[1]
                break
        if not _domain:
            _domain.append(domain)
    return _domain[0]


def _fqdn(name, byaddr):
    name = name.strip()
    if not name or name in ("0.0.0.0", "::"):
        name = _socket.gethostname()
    try:
        hostname, aliases, _ = byaddr(name)
    except OSError:
        return name
    for candidate in [hostname] + aliases:
        if "." in candidate:
            return candidate
    return hostname


def _ares_getfqdn(name=""):
    return _fqdn(name, gethostbyaddr)


_ares = {
    "getaddrinfo": _ares_getaddrinfo,
    "gethostbyname": _ares_gethostbyname,
    "gethostbyname_ex": _ares_gethostbyname_ex,
    "gethostbyaddr": _ares_gethostbyaddr,
    "getnameinfo": _ares_getnameinfo,
    "getfqdn": _ares_getfqdn,
}


# ---------------------------------------------------------------------------
# The threaded libc fallback: each call in a helper OS thread while the
# caller parks on a pipe.

def _in_thread(func, *args):
    r, w = os.pipe()
    box = []

    def work():
        try:
            box.append((True, func(*args)))
        except BaseException as exc:
            box.append((False, exc))
        try:
            os.write(w, b"x")
        except OSError:
            pass            # the caller was killed and left
        finally:
            os.close(w)

    try:
        _thread.start_new_thread(work, ())
    except BaseException:
        os.close(r)
        os.close(w)
        raise
    try:
        while not box:
            _stackless.wait_read(r)
    finally:
        os.close(r)
    ok, value = box[0]
    if ok:
        return value
    raise value


def _threaded(name):
    func = _libc[name]

    def call(*args, **kwargs):
        if name == "getaddrinfo" and args and _packed(args[0]) is not None:
            return func(*args, **kwargs)
        return _in_thread(lambda: func(*args, **kwargs))
    return call


_thread_impl = {name: _threaded(name) for name in _libc}


# ---------------------------------------------------------------------------
# Selection and configuration

_impl = _ares


def set_resolver(kind):
    """``"ares"`` (c-ares on the hub, the default) or ``"thread"`` (libc
    in a helper thread per call)."""
    global _impl
    if kind == "ares":
        _impl = _ares
    elif kind == "thread":
        _impl = _thread_impl
    else:
        raise ValueError("resolver must be 'ares' or 'thread', not %r"
                         % (kind,))


def get_resolver():
    return "thread" if _impl is _thread_impl else "ares"


def configure(servers=None, timeout=None, tries=None):
    """Override the system's nameservers (a list of ``"addr"``,
    ``"addr:port"``, ``"[v6addr]:port"`` or one comma-separated string),
    the timeout per try in seconds and the number of tries.  ``None``
    keeps the system's value.  Takes effect on every thread's next
    lookup."""
    if servers is not None and not isinstance(servers, str):
        servers = ",".join(servers)
    _stackless._dns_configure(servers, timeout, tries)


def _configure_from_env():
    env = os.environ
    servers = env.get("STACKLESS_COMPAT_DNS_SERVERS") or None
    timeout = env.get("STACKLESS_COMPAT_DNS_TIMEOUT") or None
    tries = env.get("STACKLESS_COMPAT_DNS_TRIES") or None
    if servers or timeout or tries:
        configure(servers, float(timeout) if timeout else None,
                  int(tries) if tries else None)
    kind = env.get("STACKLESS_COMPAT_RESOLVER", "").strip().lower()
    if kind:
        set_resolver(kind)


_configure_from_env()


# ---------------------------------------------------------------------------
# The functions patch_dns() puts into the socket module.

def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    return _impl["getaddrinfo"](host, port, family, type, proto, flags)


def gethostbyname(hostname):
    return _impl["gethostbyname"](hostname)


def gethostbyname_ex(hostname):
    return _impl["gethostbyname_ex"](hostname)


def gethostbyaddr(ip_address):
    return _impl["gethostbyaddr"](ip_address)


def getnameinfo(sockaddr, flags):
    return _impl["getnameinfo"](sockaddr, flags)


def getfqdn(name=""):
    return _impl["getfqdn"](name)


for _f in (getaddrinfo, gethostbyname, gethostbyname_ex, gethostbyaddr,
           getnameinfo, getfqdn):
    _f.__doc__ = getattr(_stdsocket, _f.__name__).__doc__
del _f
