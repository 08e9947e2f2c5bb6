"""Cooperative pyzmq: ``import stackless_compat.patches.zmq as zmq``.

The module is pyzmq's namespace with ``Context``, ``Socket`` and
``Poller`` replaced (as gevent's ``zmq.green``): a blocking
``send``/``recv`` (and everything built on them: ``send_multipart``,
``recv_string``, ``recv_json`` ...) parks the calling tasklet, honouring
``SNDTIMEO``/``RCVTIMEO`` (``zmq.Again`` when they pass).

ZeroMQ's ``FD`` is edge-triggered: it becomes readable when the socket's
state *may* have changed, and reading ``EVENTS`` both tells the state and
consumes the edge.  So a waiter never trusts the FD alone, and whoever
reads ``EVENTS`` passes on what it saw:

* a waiter (a blocking send/recv, or ``Poller.poll()`` for each of its
  sockets) registers on the socket's notifier with the events it wants,
  then reads ``EVENTS``; only if none of them is there does it park;
* one watcher tasklet per socket (started while anyone waits, ended when
  nobody does) parks on the FD; when it fires, it reads ``EVENTS`` (which
  re-arms the edge) and wakes every waiter, who checks again;
* every ``EVENTS`` read through this module wakes the other waiters whose
  events it saw (the edge they needed is gone), and every send/recv,
  which may have consumed an edge too, wakes all of them.

``Poller.poll()`` thus wakes within one hub round of a message on any of
its sockets, with no periodic re-check; plain fds (and zmq sockets not
made by this module's ``Context``, whose ``EVENTS`` reads it cannot see)
are waited on directly by a helper tasklet while it is parked.
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


class _Waiter:
    """One wait: parked on a cooperative lock; wake() is idempotent (a
    Poller's waiter is registered on several sockets)."""

    __slots__ = ("_lock", "woken")

    def __init__(self):
        self._lock = _Lock()
        self._lock.acquire()
        self.woken = False

    def wake(self):
        if not self.woken:
            self.woken = True
            self._lock.release()

    def wait(self, timeout=-1):
        """True when woken, False after timeout seconds (-1: never)."""
        return self._lock.acquire(timeout=timeout)


class Socket(_BaseSocket):
    """zmq.Socket whose blocking calls park the tasklet."""

    _slp_waiters = None
    _slp_watcher = None

    # -- waiting ----------------------------------------------------------
    def _slp_add(self, waiter, event):
        if self._slp_waiters is None:
            self._slp_waiters = []
        self._slp_waiters.append((waiter, event))
        if self._slp_watcher is None:
            self._slp_watcher = _tasklet(self._slp_watch)()

    def _slp_remove(self, waiter):
        waiters = self._slp_waiters
        if waiters:
            waiters[:] = [w for w in waiters if w[0] is not waiter]
        if not waiters and self._slp_watcher is not None:
            w, self._slp_watcher = self._slp_watcher, None
            w.kill()

    def _slp_notify(self, events=-1, skip=None):
        """Wake the waiters for any of `events` (-1: all) but `skip`; they
        leave the list and check again."""
        waiters = self._slp_waiters
        if not waiters:
            return
        keep = []
        wake = []
        for w in waiters:
            if w[0] is not skip and (events == -1 or w[1] & events):
                wake.append(w[0])
            else:
                keep.append(w)
        self._slp_waiters = keep
        for waiter in wake:
            waiter.wake()

    def _slp_events(self, skip=None):
        """EVENTS, waking the other waiters whose events are in it (this
        read consumed the edge that would have woken them)."""
        ev = self.getsockopt(_EVENTS)
        if ev:
            self._slp_notify(ev, skip)
        return ev

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
            if self._slp_watcher is _stackless.getcurrent():
                self._slp_watcher = None

    def _slp_wait(self, event, timeout_ms):
        """Park until EVENTS has `event`; False when timeout_ms passes."""
        deadline = _Deadline(None if timeout_ms < 0 else timeout_ms / 1e3)
        while True:
            waiter = _Waiter()
            self._slp_add(waiter, event)
            try:
                if self._slp_events(waiter) & event:
                    return True
                remaining = deadline.remaining()
                if remaining is None:
                    remaining = -1
                elif remaining <= 0:
                    return False
                waiter.wait(remaining)
            finally:
                self._slp_remove(waiter)

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


def _fd_watch(waiter, reads, writes):
    # a Poller's plain fds (and foreign zmq sockets' FDs) while it waits
    _wait_many(reads, writes)
    waiter.wake()


class Poller(_BasePoller):
    """zmq.Poller whose poll() parks the tasklet."""

    def _slp_check(self, waiter):
        """[(socket, revents)] ready now, in registration order; our
        sockets' EVENTS reads pass on what they saw."""
        ready = {}
        others = []
        for sock, mask in self.sockets:
            if isinstance(sock, Socket):
                rev = sock._slp_events(waiter) & mask
                if rev:
                    ready[id(sock)] = rev
            else:
                others.append((sock, mask))
        if others:
            for sock, rev in _zmq.zmq_poll(others, 0):
                ready[id(sock)] = rev
        return [(sock, ready[id(sock)]) for sock, _ in self.sockets
                if id(sock) in ready]

    def poll(self, timeout=None):
        if timeout is None or timeout < 0:
            timeout = -1
        deadline = _Deadline(None if timeout < 0 else timeout / 1e3)
        while True:
            waiter = _Waiter()
            ours, reads, writes = [], [], []
            for sock, mask in self.sockets:
                if isinstance(sock, Socket):
                    ours.append(sock)
                elif isinstance(sock, _BaseSocket):
                    reads.append(sock.getsockopt(_zmq.FD))
                else:
                    fd = sock if isinstance(sock, int) else sock.fileno()
                    if mask & _POLLIN:
                        reads.append(fd)
                    if mask & _POLLOUT:
                        writes.append(fd)
            helper = None
            try:
                # register first: a change after the check wakes us
                for sock, mask in self.sockets:
                    if isinstance(sock, Socket):
                        sock._slp_add(waiter, mask & (_POLLIN | _POLLOUT))
                result = self._slp_check(waiter)
                if result or timeout == 0:
                    return result
                remaining = deadline.remaining()
                if remaining is None:
                    remaining = -1
                elif remaining <= 0:
                    return []
                if reads or writes:
                    helper = _tasklet(_fd_watch)(
                        waiter, sorted(set(reads)), sorted(set(writes)))
                waiter.wait(remaining)
            finally:
                if helper is not None and helper.alive:
                    helper.kill()
                for sock in ours:
                    sock._slp_remove(waiter)


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
