"""A gunicorn worker class that serves every connection in a tasklet.

    gunicorn -k stackless_compat.gunicorn.TaskletWorker -w 4 app:app

gunicorn stays the process manager and the HTTP parser: the master forks
the workers, watches their heartbeat and restarts them; each worker process
calls ``patch_all()`` before the application is imported, accepts on the
listening sockets it inherited and serves each connection in its own
tasklet with gunicorn's own request parsing and response writing (the
``AsyncWorker`` connection loop).

Settings honoured:

``--worker-connections``
    at most that many connections are served at once; the accepting
    tasklet waits for a free slot before it accepts the next one.
``--keep-alive``
    a connection waits that long for its next request, then it is closed.
``--timeout``
    the worker's main tasklet notifies the master every
    ``min(1, timeout / 2)`` seconds; it runs whenever the other tasklets
    wait for I/O, so only a tasklet that hogs the CPU stops the heartbeat.
``--graceful-timeout``
    on TERM (and so on HUP, which replaces the workers) the worker stops
    accepting, ends connections that are idle between two requests, lets
    the requests in flight finish and exits; what is still running after
    the graceful timeout is killed.
``--max-requests``
    after that many requests the worker shuts down gracefully as above.
``--certfile`` / ``--keyfile``
    TLS, with the handshake done in the connection's tasklet.
"""
import errno
import os
import ssl
import time

from gunicorn import sock as _gsock
from gunicorn.workers.base_async import AsyncWorker

import stackless_compat as _slp
from stackless_compat import hub as _hub

__all__ = ["TaskletWorker"]

# accept() errors after which the accepting tasklet simply tries again
_ACCEPT_RETRY = frozenset((errno.EAGAIN, errno.ECONNABORTED, errno.EPROTO,
                           errno.EINTR))
# accept() errors that mean "out of fds / memory for now": back off a bit
_ACCEPT_BACKOFF = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS,
                             errno.ENOMEM))


class _Conn:
    """What the worker knows about one connection being served."""

    __slots__ = ("tasklet", "served", "idle")

    def __init__(self, tasklet):
        self.tasklet = tasklet
        self.served = 0      # requests answered on this connection
        self.idle = None     # the Timeout of the wait for the next request


class _IdleWait:
    """Context of the wait for a connection's next request.

    It is a ``Timeout(keepalive, False)``: the block ends silently after
    the keep-alive time and the connection is closed.  While inside, the
    connection is registered as idle, so that a shutdown can end the wait
    at once (by throwing that same Timeout) instead of waiting for it.
    """

    __slots__ = ("conn", "timeout")

    def __init__(self, conn, seconds):
        self.conn = conn
        self.timeout = _hub.Timeout(seconds, False)

    def __enter__(self):
        self.timeout.start()
        if self.conn is not None:
            self.conn.idle = self.timeout
        return self.timeout

    def __exit__(self, typ, value, tb):
        if self.conn is not None:
            self.conn.idle = None
        return self.timeout.__exit__(typ, value, tb)


class TaskletWorker(AsyncWorker):
    """gunicorn worker: one tasklet per connection, on patched sockets."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._conns = {}          # tasklet -> _Conn
        self._acceptors = []
        self._slot = None         # channel: acceptors waiting for a slot
        self._ssl_context = None
        self._quit = False

    # -- process set-up -------------------------------------------------

    def init_process(self):
        # Before anything else of the worker runs, and before the app is
        # imported (load_wsgi() in the base class's init_process).
        from stackless_compat.patches import patch_all
        patch_all()
        import socket
        sockets = []
        for s in self.sockets:
            # The listening sockets were made by the master, unpatched:
            # take over their fds as patched (cooperative) sockets.
            sockets.append(socket.socket(s.FAMILY, socket.SOCK_STREAM,
                                         fileno=s.sock.detach()))
        self.sockets = sockets
        super().init_process()

    # -- signals (the handlers run in whatever tasklet is current) --------

    def handle_quit(self, sig, frame):
        # QUIT / INT: a fast exit, done by the main tasklet (the base
        # class would call sys.exit() inside whichever tasklet the signal
        # interrupted).
        self.alive = False
        self._quit = True
        self._wake()

    def handle_exit(self, sig, frame):
        self.alive = False
        self._wake()

    def handle_usr1(self, sig, frame):
        _slp.tasklet(AsyncWorker.handle_usr1)(self, sig, frame)

    def _wake(self):
        """Wake the main tasklet (waiting on the worker's pipe)."""
        try:
            os.write(self.PIPE[1], b".")
        except (OSError, IndexError, TypeError):
            pass  # pipe full (a wake-up is pending anyway) or not made yet

    def _wait_wakeup(self, seconds):
        try:
            _hub.wait_read(self.PIPE[0], timeout=seconds)
        except TimeoutError:
            return
        try:
            while os.read(self.PIPE[0], 4096):
                pass
        except OSError:
            pass  # drained (EAGAIN)

    # -- AsyncWorker hooks ----------------------------------------------

    def timeout_ctx(self):
        conn = self._conns.get(_slp.getcurrent())
        if conn is not None and not conn.served:
            conn = None  # the first request is never cut by a shutdown
        return _IdleWait(conn, self.cfg.keepalive)

    def handle_request(self, listener_name, req, sock, addr):
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            conn = self._conns.get(_slp.getcurrent())
            if conn is not None:
                conn.served += 1
            if not self.alive:
                self._wake()  # --max-requests reached

    # -- main loop --------------------------------------------------------

    def _interval(self):
        timeout = self.timeout if self.timeout and self.timeout > 0 else 2.0
        return max(0.05, min(1.0, timeout / 2.0))

    def run(self):
        if self.cfg.is_ssl:
            self._ssl_context = _gsock.ssl_context(self.cfg)
        self._slot = _slp.channel()
        self._slot.preference = 0
        self._acceptors = [_slp.tasklet(self._accept_loop)(s)
                           for s in self.sockets]
        interval = self._interval()
        while self.alive:
            self.notify()
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                self.alive = False
                break
            self._wait_wakeup(interval)
        self._shutdown()

    def _shutdown(self):
        for t in self._acceptors:
            if t.alive:
                t.kill()
        self._acceptors = []
        try:
            self._drain()
        finally:
            # Closed only now: connections being served still ask their
            # listener for its name.  The master keeps its copy open, and
            # connections not accepted yet wait there for the new workers.
            for s in self.sockets:
                try:
                    s.close()
                except OSError:
                    pass

    def _drain(self):
        if self._quit:
            self._kill_all()
            self.cfg.worker_int(self)
            return
        deadline = time.monotonic() + self.cfg.graceful_timeout
        interval = self._interval()
        while self._conns:
            self._end_idle()
            left = deadline - time.monotonic()
            if left <= 0 or self._quit:
                break
            self.notify()
            self._wait_wakeup(min(interval, left))
        if self._conns:
            self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
            self._kill_all()

    def _end_idle(self):
        """End the keep-alive waits of connections between two requests."""
        for conn in list(self._conns.values()):
            t = conn.idle
            if t is not None and conn.tasklet.alive:
                t.cancel()
                conn.tasklet.throw(t)

    def _kill_all(self):
        for conn in list(self._conns.values()):
            if conn.tasklet.alive:
                conn.tasklet.kill()

    # -- connections ------------------------------------------------------

    def _accept_loop(self, listener):
        # The listener is non-blocking and this loop waits for it: after
        # each wake-up it takes at most a batch of connections, then lets
        # the tasklets serving connections have their turn.  Every worker
        # on the listening socket is woken by the same readiness, so a
        # burst spreads over them.  (Measured at 1,000 connections and 2
        # workers: a batch of 32 doubled p99 against 256, from the slower
        # ramp-up.)
        listener.settimeout(0.0)
        batch = 256
        while self.alive:
            _hub.wait_read(listener)
            for _ in range(batch):
                if len(self._conns) >= self.worker_connections:
                    self._slot.receive()
                    break
                try:
                    client, addr = listener.accept()
                except BlockingIOError:
                    break
                except OSError as e:
                    if not self.alive:
                        return
                    if e.errno in _ACCEPT_RETRY:
                        continue
                    if e.errno in _ACCEPT_BACKOFF:
                        self.log.warning("accept() failed: %s", e)
                        _hub.sleep(0.1)
                        break
                    raise
                t = _slp.tasklet(self._serve)
                self._conns[t] = _Conn(t)
                t(listener, client, addr)

    def _serve(self, listener, client, addr):
        me = _slp.getcurrent()
        try:
            if self._ssl_context is not None:
                try:
                    client = self._ssl_context.wrap_socket(
                        client, server_side=True,
                        suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
                        do_handshake_on_connect=(
                            self.cfg.do_handshake_on_connect))
                except (ssl.SSLError, OSError) as e:
                    self.log.debug("TLS handshake failed: %s", e)
                    client.close()
                    return
            self.handle(listener, client, addr)
        finally:
            self._conns.pop(me, None)
            if self._slot.balance < 0:
                self._slot.send(None)
            if not self.alive and not self._conns:
                self._wake()
