"""DNS for patched programs: the libc resolver run in a helper OS thread
while the calling tasklet parks on a pipe (c-ares comes with the DNS
issue)."""
import os
import _thread
import socket as _stdsocket

from stackless_compat import _stackless

__implements__ = ["getaddrinfo", "gethostbyname", "gethostbyname_ex",
                  "gethostbyaddr", "getnameinfo"]
__target__ = "socket"

_originals = {name: getattr(_stdsocket, name) for name in __implements__}


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


def _numeric(host):
    if host is None:
        return True
    if isinstance(host, bytes):
        try:
            host = host.decode("ascii")
        except UnicodeDecodeError:
            return False
    if not isinstance(host, str):
        return False
    for fam in (_stdsocket.AF_INET, _stdsocket.AF_INET6):
        try:
            _stdsocket.inet_pton(fam, host.split("%", 1)[0])
            return True
        except (OSError, ValueError):
            pass
    return False


def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    if _numeric(host):
        return _originals["getaddrinfo"](host, port, family, type, proto,
                                         flags)
    return _in_thread(_originals["getaddrinfo"], host, port, family, type,
                      proto, flags)


def gethostbyname(hostname):
    return _in_thread(_originals["gethostbyname"], hostname)


def gethostbyname_ex(hostname):
    return _in_thread(_originals["gethostbyname_ex"], hostname)


def gethostbyaddr(ip_address):
    return _in_thread(_originals["gethostbyaddr"], ip_address)


def getnameinfo(sockaddr, flags):
    return _in_thread(_originals["getnameinfo"], sockaddr, flags)
