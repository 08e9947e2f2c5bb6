"""Cooperative socket module (replaces ``socket.socket`` & co.).

The OS fd is always non-blocking; the timeout the program sees (None /
0.0 / seconds, ``gettimeout()``, ``getblocking()``) is the stdlib's own,
kept in the socket object.  recv, recv_into, send and sendall are C
accept, connect and connect_ex are C (hub/sock.c); the other blocking
calls make one non-blocking attempt through the stdlib's C code and park
on EAGAIN.
"""
import errno as _errno
import socket as _stdsocket

import _socket

from stackless_compat import _stackless
from stackless_compat.patches._deadline import AGAIN as _AGAIN
from stackless_compat.patches._deadline import retry as _retry_loop

__implements__ = ["socket", "SocketType"]
__target__ = "socket"

_nb = _stackless._sock_nb
_settimeout = _stackless._sock_settimeout
_setnonblock = _stackless._sock_setnonblock
_wait_read = _stackless.wait_read
_wait_write = _stackless.wait_write
_cancel_fd = _stackless._cancel_fd
_C = _stackless._sock_methods()
_ss = _socket.socket
_stdsock = _stdsocket.socket
_EAGAIN = (_errno.EAGAIN, _errno.EWOULDBLOCK)


def _raise_timeout():
    raise TimeoutError("timed out")


_MSG_DONTWAIT = getattr(__import__('socket'), 'MSG_DONTWAIT', 0)


def _retry(sock, wait, func, *args, flags_at=None):
    """func(sock, *args) with timeout 0, parking on EAGAIN until the
    socket's timeout.  args[flags_at], when given, holds the call's flags:
    MSG_DONTWAIT makes it a single non-blocking attempt, as in the stdlib."""
    timeout = _ss.gettimeout(sock)
    if timeout == 0.0:
        return func(sock, *args)
    if (flags_at is not None and len(args) > flags_at
            and isinstance(args[flags_at], int)
            and args[flags_at] & _MSG_DONTWAIT):
        return _nb(sock, func, *args)
    try:                        # the common case: ready at once
        return _nb(sock, func, *args)
    except BlockingIOError:
        pass

    def attempt():
        try:
            return _nb(sock, func, *args)
        except BlockingIOError:
            return _AGAIN

    def park(remaining):
        wait(sock.fileno(), remaining)

    return _retry_loop(attempt, park, timeout, _raise_timeout,
                       attempted=True)


class socket(_stdsock):
    """A socket.socket whose blocking calls park the calling tasklet."""

    __slots__ = ()

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        _stdsock.__init__(self, family, type, proto, fileno)
        if _ss.fileno(self) >= 0:
            _setnonblock(self)

    recv = _C["recv"]
    recv_into = _C["recv_into"]
    send = _C["send"]
    sendall = _C["sendall"]

    def settimeout(self, value):
        _settimeout(self, value)

    def setblocking(self, flag):
        _settimeout(self, None if flag else 0.0)

    def recvfrom(self, *args):
        return _retry(self, _wait_read, _ss.recvfrom, *args, flags_at=1)

    def recvfrom_into(self, *args, **kwds):
        if kwds:
            return _retry(self, _wait_read,
                          lambda s, *a: _ss.recvfrom_into(s, *a, **kwds), *args)
        return _retry(self, _wait_read, _ss.recvfrom_into, *args, flags_at=2)

    def recvmsg(self, *args):
        return _retry(self, _wait_read, _ss.recvmsg, *args, flags_at=2)

    def recvmsg_into(self, *args):
        return _retry(self, _wait_read, _ss.recvmsg_into, *args, flags_at=2)

    def sendto(self, *args):
        return _retry(self, _wait_write, _ss.sendto, *args,
                      flags_at=1 if len(args) == 3 else None)

    def sendmsg(self, *args):
        return _retry(self, _wait_write, _ss.sendmsg, *args, flags_at=2)

    _accept = _C["_accept"]

    def accept(self):
        fd, addr = self._accept()
        sock = socket(self.family, self.type, self.proto, fileno=fd)
        # as the stdlib: a listener with a timeout hands out blocking
        # sockets when there is no default timeout
        if _stdsocket.getdefaulttimeout() is None and self.gettimeout():
            sock.setblocking(True)
        return sock, addr

    # C (hub/sock.c): numeric AF_INET/AF_INET6 addresses never reach
    # the resolver; host names go through _resolve_addr (set below).
    connect = _C["connect"]
    connect_ex = _C["connect_ex"]
    _connect = _C["_connect"]   # 0 or errno; TimeoutError (ssl.py)

    def _real_close(self, _ss=_ss):
        fd = _ss.fileno(self)
        if fd >= 0:
            _cancel_fd(fd)
        _ss.close(self)

    def detach(self):
        fd = _ss.fileno(self)
        if fd >= 0:
            _cancel_fd(fd)
        return _stdsock.detach(self)

    def shutdown(self, how):
        _ss.shutdown(self, how)


def _errno_message(err):
    import os
    return os.strerror(err)


def _resolve_addr(sock, address):
    """Resolve a host name cooperatively before connect (numeric hosts
    pass through)."""
    if sock.family not in (_stdsocket.AF_INET, _stdsocket.AF_INET6):
        return address
    if not isinstance(address, tuple) or len(address) < 2:
        return address
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode("idna")
    if not isinstance(host, str) or _is_numeric(host, sock.family):
        return address
    from . import dns
    info = dns.getaddrinfo(host, address[1], sock.family,
                           _stdsocket.SOCK_STREAM)
    return info[0][4]


def _is_numeric(host, family):
    try:
        _socket.inet_pton(family, host.split("%", 1)[0])
        return True
    except (OSError, ValueError):
        return host == ""


SocketType = socket

_stackless._sock_set_resolver(_resolve_addr)
