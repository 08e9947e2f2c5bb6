"""Cooperative ssl: ``SSLContext.wrap_socket`` returns an SSLSocket whose
handshake, read, write, sendall and unwrap park the tasklet on
want-read/want-write, with the stdlib's exceptions and timeouts."""
import errno as _errno
import ssl as _stdssl

import _socket
import _ssl

from stackless_compat import _stackless
from stackless_compat.patches._deadline import AGAIN as _AGAIN
from stackless_compat.patches._deadline import retry as _retry_loop

__implements__ = ["SSLContext"]
__target__ = "ssl"

_nb = _stackless._sock_nb
_settimeout = _stackless._sock_settimeout
_wait_read = _stackless.wait_read
_wait_write = _stackless.wait_write
_ss = _socket.socket
_StdSSLSocket = _stdssl.SSLSocket
_SSLWantRead = _stdssl.SSLWantReadError
_SSLWantWrite = _stdssl.SSLWantWriteError


class SSLSocket(_StdSSLSocket):
    """ssl.SSLSocket that parks instead of blocking."""

    def settimeout(self, value):
        _settimeout(self, value)

    def setblocking(self, flag):
        _settimeout(self, None if flag else 0.0)

    def _co(self, func, what, *args):
        timeout = _ss.gettimeout(self)
        if timeout == 0.0 or self._sslobj is None:
            return func(self, *args)
        try:                    # the common case: done at once
            return _nb(self, func, *args)
        except _SSLWantRead:
            waits = [_wait_read]    # the wait the last attempt asked for
        except _SSLWantWrite:
            waits = [_wait_write]

        def attempt():
            try:
                return _nb(self, func, *args)
            except _SSLWantRead:
                waits.append(_wait_read)
            except _SSLWantWrite:
                waits.append(_wait_write)
            return _AGAIN

        def park(remaining):
            try:
                waits.pop()(self.fileno(), remaining)
            except TimeoutError:
                if remaining is None:
                    raise
                expired()

        def expired():
            raise TimeoutError("The %s operation timed out" % what) from None

        return _retry_loop(attempt, park, timeout, expired, attempted=True)

    def do_handshake(self, block=False):
        self._check_connected()
        return self._co(_StdSSLSocket.do_handshake, "handshake", block)

    def read(self, len=1024, buffer=None):
        if self._sslobj is None:
            return _StdSSLSocket.read(self, len, buffer)
        return self._co(_StdSSLSocket.read, "read", len, buffer)

    def write(self, data):
        if self._sslobj is None:
            return _StdSSLSocket.write(self, data)
        return self._co(_StdSSLSocket.write, "write", data)

    def unwrap(self):
        if self._sslobj is None:
            return _StdSSLSocket.unwrap(self)
        return self._co(_StdSSLSocket.unwrap, "unwrap")

    def recv(self, buflen=1024, flags=0):
        if self._sslobj is not None:
            return _StdSSLSocket.recv(self, buflen, flags)
        return _stackless._sock_methods()["recv"](self, buflen, flags)

    def recv_into(self, buffer, nbytes=None, flags=0):
        if self._sslobj is not None:
            return _StdSSLSocket.recv_into(self, buffer, nbytes, flags)
        return _stackless._sock_methods()["recv_into"](self, buffer, nbytes or 0, flags)

    def send(self, data, flags=0):
        if self._sslobj is not None:
            return _StdSSLSocket.send(self, data, flags)
        return _stackless._sock_methods()["send"](self, data, flags)

    def sendall(self, data, flags=0):
        if self._sslobj is not None:
            return _StdSSLSocket.sendall(self, data, flags)
        return _stackless._sock_methods()["sendall"](self, data, flags)

    def _real_close(self):
        fd = _ss.fileno(self)
        if fd >= 0:
            _stackless._cancel_fd(fd)
        _StdSSLSocket._real_close(self)

    from .socket import socket as _cosock
    _connect = _cosock._connect
    _accept = _cosock._accept
    del _cosock

    def _connect_common(self, addr, connect_ex):
        # The stdlib's order (ssl.SSLSocket._real_connect): create the
        # SSL object first, so that a non-blocking connect_ex() returning
        # EINPROGRESS can be followed by do_handshake().
        if self.server_side:
            raise ValueError("can't connect in server-side mode")
        if self._connected or self._sslobj is not None:
            raise ValueError("attempt to connect already-connected SSLSocket!")
        self._sslobj = self.context._wrap_socket(
            self, False, self.server_hostname,
            owner=self, session=self._session)
        try:
            if connect_ex:
                try:
                    rc = self._connect(addr)
                except TimeoutError:
                    rc = _errno.EAGAIN
            else:
                rc = self._connect(addr)
                if rc:
                    from . import socket as cosock
                    raise OSError(rc, cosock._errno_message(rc))
            if not rc:
                self._connected = True
                if self.do_handshake_on_connect:
                    self.do_handshake()
            return rc
        except (OSError, ValueError):
            self._sslobj = None
            raise

    def connect(self, addr):
        self._connect_common(addr, False)

    def connect_ex(self, addr):
        return self._connect_common(addr, True)

    def accept(self):
        newsock, addr = _stdsocket_accept(self)
        newsock = self.context.wrap_socket(
            newsock, do_handshake_on_connect=self.do_handshake_on_connect,
            suppress_ragged_eofs=self.suppress_ragged_eofs, server_side=True)
        return newsock, addr

    @classmethod
    def _create(cls, sock, *args, **kwds):
        # The stdlib makes a new socket object on sock's fd: keep the fd
        # non-blocking before the handshake it may run.
        _stackless._sock_setnonblock(sock)
        return super()._create(sock, *args, **kwds)


import socket as _stdsocket_mod  # noqa: E402
_stdsocket_accept = _stdsocket_mod.socket.accept


_CBase = _ssl._SSLContext


def _ctx_property(name, wrap):
    base = getattr(_CBase, name)

    def get(self):
        return wrap(base.__get__(self))

    def set(self, value):
        base.__set__(self, value)
    return property(get, set)


def _to_enum(enum, value):
    try:
        return enum(value)
    except ValueError:
        return value


def _get_msg_callback(self):
    inner = _CBase._msg_callback.__get__(self)
    return getattr(inner, "user_function", inner)


def _set_msg_callback(self, callback):
    # Same contract as the stdlib's property, set on the C base directly (the
    # stdlib's goes through super(SSLContext, SSLContext), which is this
    # class once patched, and would recurse).
    if callback is None:
        _CBase._msg_callback.__set__(self, None)
        return
    if not callable(callback):
        raise TypeError(f"{callback} is not callable.")
    content_types = _stdssl._TLSContentType

    def inner(conn, direction, version, content_type, msg_type, data):
        version = _to_enum(_stdssl.TLSVersion, version)
        content_type = _to_enum(content_types, content_type)
        if content_type == content_types.HEADER:
            kind = content_types
        elif content_type == content_types.ALERT:
            kind = _stdssl._TLSAlertType
        else:
            kind = _stdssl._TLSMessageType
        msg_type = _to_enum(kind, msg_type)
        return callback(conn, direction, version, content_type, msg_type,
                        data)

    inner.user_function = callback
    _CBase._msg_callback.__set__(self, inner)


class SSLContext(_stdssl.SSLContext):
    """The stdlib SSLContext making cooperative SSLSockets.  The
    properties the stdlib defines through ``super(SSLContext,
    SSLContext)`` (the module global, which is now this class) are
    redefined on the C base, or they would recurse forever."""
    sslsocket_class = SSLSocket
    options = _ctx_property("options", _stdssl.Options)
    verify_flags = _ctx_property("verify_flags", _stdssl.VerifyFlags)
    verify_mode = _ctx_property("verify_mode", _stdssl.VerifyMode)
    minimum_version = _ctx_property("minimum_version", _stdssl.TLSVersion)
    maximum_version = _ctx_property("maximum_version", _stdssl.TLSVersion)
    if hasattr(_CBase, "_msg_callback"):
        _msg_callback = property(_get_msg_callback, _set_msg_callback)


def wrap_socket(sock, *args, **kwds):
    raise NotImplementedError("ssl.wrap_socket was removed; use SSLContext")
