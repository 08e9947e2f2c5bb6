"""Cooperative pyzmq: ``import stackless_compat.patches.zmq as zmq``.

The module is pyzmq's namespace with ``Context``, ``Socket`` and
``Poller`` replaced (as gevent's ``zmq.green``): a blocking
``send``/``recv`` (and everything built on them: ``send_multipart``,
``recv_string``, ``recv_json`` ...) parks the calling tasklet, honouring
``SNDTIMEO``/``RCVTIMEO`` (``zmq.Again`` when they pass).

ZeroMQ's ``FD`` is edge-triggered: it becomes readable when the socket's
state *may* have changed, and reading ``EVENTS`` both tells the state and
consumes the edge.  So a waiter never trusts the FD alone:

* a waiter first reads ``EVENTS``; only if its direction is not ready
  does it park, on the socket's notifier (a cooperative lock per waiter);
* one watcher tasklet per socket (started while anyone waits, ended when
  nobody does) parks on the FD; when it fires, it reads ``EVENTS`` (which
  re-arms the edge) and wakes every waiter, who checks again;
* every send/recv through this module, which may have consumed an edge
  that a waiter in the other direction needed, wakes the waiters too.

``Poller.poll()`` asks zmq_poll with a zero timeout, then parks on the
sockets' FDs and plain fds, and asks again; since another tasklet's
``EVENTS`` read on one of those sockets can take the edge it waits for,
it asks again at least every 50 ms while it waits.
"""

import zmq as _zmq
from zmq import *  # noqa: F401,F403  (the namespace this module stands for)

from stackless_compat import _stackless
from stackless_compat.patches._deadline import Deadline as _Deadline

_Lock = _stackless.allocate_lock
_wait_read = _stackless.wait_read
_wait_many = _stackless._wait_many
_tasklet = _stackless.tasklet

_POLLIN = _zmq.POLLIN
_POLLOUT = _zmq.POLLOUT
_NOBLOCK = _zmq.NOBLOCK
_EVENTS = _zmq.EVENTS
_Again = _zmq.Again
_BaseSocket = _zmq.Socket
_BaseContext = _zmq.Context
_BasePoller = _zmq.Poller


class Socket(_BaseSocket):
    """zmq.Socket whose blocking calls park the tasklet."""

    _slp_waiters = None
    _slp_watcher = None

    # -- waiting ----------------------------------------------------------
    def _slp_notify(self):
        waiters = self._slp_waiters
        if waiters:
            self._slp_waiters = []
            for lock in waiters:
                lock.release()

    def _slp_watch(self):
        fd = self.getsockopt(_zmq.FD)
        try:
            while self._slp_waiters and not self.closed:
                _wait_read(fd)
                if self.closed:
                    break
                self.getsockopt(_EVENTS)        # re-arm the edge
                self._slp_notify()
        finally:
            self._slp_watcher = None

    def _slp_wait(self, event, timeout_ms):
        """Park until EVENTS has `event`; False when timeout_ms passes."""
        deadline = _Deadline(None if timeout_ms < 0 else timeout_ms / 1e3)
        while not (self.getsockopt(_EVENTS) & event):
            remaining = deadline.remaining()
            if remaining is None:
                remaining = -1
            elif remaining <= 0:
                return False
            lock = _Lock()
            lock.acquire()
            if self._slp_waiters is None:
                self._slp_waiters = []
            self._slp_waiters.append(lock)
            if self._slp_watcher is None:
                self._slp_watcher = _tasklet(self._slp_watch)()
            try:
                lock.acquire(timeout=remaining)
            finally:
                waiters = self._slp_waiters
                if waiters and lock in waiters:
                    waiters.remove(lock)
                if not waiters and self._slp_watcher is not None:
                    w, self._slp_watcher = self._slp_watcher, None
                    w.kill()
        return True

    # -- the blocking calls -------------------------------------------------
    def send(self, data, flags=0, copy=True, track=False, **kwargs):
        if flags & _NOBLOCK:
            r = super().send(data, flags, copy, track, **kwargs)
            self._slp_notify()
            return r
        timeout = self.getsockopt(_zmq.SNDTIMEO)
        while True:
            try:
                r = super().send(data, flags | _NOBLOCK, copy, track, **kwargs)
            except _Again:
                if not self._slp_wait(_POLLOUT, timeout):
                    raise
                continue
            self._slp_notify()
            return r

    def recv(self, flags=0, copy=True, track=False):
        if flags & _NOBLOCK:
            r = super().recv(flags, copy, track)
            self._slp_notify()
            return r
        timeout = self.getsockopt(_zmq.RCVTIMEO)
        while True:
            try:
                r = super().recv(flags | _NOBLOCK, copy, track)
            except _Again:
                if not self._slp_wait(_POLLIN, timeout):
                    raise
                continue
            self._slp_notify()
            return r

    def poll(self, timeout=None, flags=_POLLIN):
        if self.closed:
            raise _zmq.ZMQError(_zmq.ENOTSUP)
        p = Poller()
        p.register(self, flags)
        return dict(p.poll(timeout)).get(self, 0)

    def close(self, linger=None):
        w, self._slp_watcher = self._slp_watcher, None
        if w is not None:
            w.kill()
        super().close(linger)
        self._slp_notify()      # waiters see the closed socket (ENOTSOCK)


class Context(_BaseContext):
    """zmq.Context making cooperative Sockets."""
    _socket_class = Socket
    _instance = None


class Poller(_BasePoller):
    """zmq.Poller whose poll() parks the tasklet."""

    def poll(self, timeout=None):
        if timeout is None or timeout < 0:
            timeout = -1
        result = super().poll(0)
        if result or timeout == 0:
            return result
        deadline = _Deadline(None if timeout < 0 else timeout / 1e3)
        while True:
            slice_ = deadline.slice(0.05)
            if slice_ <= 0:
                return []
            reads, writes = [], []
            for sock, mask in self.sockets:
                if isinstance(sock, _BaseSocket):
                    reads.append(sock.getsockopt(_zmq.FD))
                else:
                    fd = sock if isinstance(sock, int) else sock.fileno()
                    if mask & _POLLIN:
                        reads.append(fd)
                    if mask & _POLLOUT:
                        writes.append(fd)
            _wait_many(sorted(set(reads)), sorted(set(writes)), slice_)
            result = super().poll(0)
            if result:
                return result


def select(rlist, wlist, xlist, timeout=None):
    """zmq.select on the cooperative Poller."""
    p = Poller()
    for s in set(rlist) | set(wlist) | set(xlist):
        mask = ((_POLLIN if s in rlist else 0) |
                (_POLLOUT if s in wlist else 0) |
                (_zmq.POLLERR if s in xlist else 0))
        p.register(s, mask)
    ready = dict(p.poll(None if timeout is None else timeout * 1000))
    return ([s for s in rlist if ready.get(s, 0) & _POLLIN],
            [s for s in wlist if ready.get(s, 0) & _POLLOUT],
            [s for s in xlist if ready.get(s, 0) & _zmq.POLLERR])
