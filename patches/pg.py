"""PostgreSQL drivers that wait inside C, made cooperative.

``patch_psycopg2()``
    installs a wait callback (``psycopg2.extensions.set_wait_callback``):
    psycopg2 then runs every connection in its asynchronous mode and calls
    the callback whenever libpq would block; the callback polls the
    connection and parks the tasklet on the hub until its socket is
    ready (the design psycogreen uses for gevent).  If the waiting
    tasklet is killed or thrown into, the query is cancelled on the
    server and the exception goes on.
``patch_psycopg()``
    psycopg 3: its C build's wait function (``wait_c``) blocks the thread
    and psycopg only recognizes gevent's patching; this replaces
    ``psycopg.waiting.wait`` and ``wait_conn`` (what connections call)
    with hub waits following psycopg's own generator protocol.

Both are applied by ``patch_all()`` when the driver is installed, and are
idempotent.
"""

from stackless_compat import _stackless
from stackless_compat.patches._deadline import Deadline as _Deadline

_wait_many = _stackless._wait_many
_wait_read = _stackless.wait_read
_wait_write = _stackless.wait_write


# -- psycopg2 ----------------------------------------------------------------
def psycopg2_wait_callback(conn, timeout=None):
    """psycopg2 wait callback: park the tasklet until the query is done."""
    import psycopg2
    from psycopg2 import extensions
    while True:
        state = conn.poll()
        if state == extensions.POLL_OK:
            return
        try:
            if state == extensions.POLL_READ:
                _wait_read(conn.fileno(), timeout)
            elif state == extensions.POLL_WRITE:
                _wait_write(conn.fileno(), timeout)
            else:
                raise psycopg2.OperationalError(
                    "Bad result from poll: %r" % (state,))
        except BaseException:
            _cancel_psycopg2(conn)
            raise


def _cancel_psycopg2(conn):
    """The tasklet is leaving mid-query: cancel it on the server and let
    the connection finish that query, so it can be used again."""
    from psycopg2 import extensions
    try:
        conn.cancel()
    except Exception:
        return
    try:
        while True:
            state = conn.poll()
            if state == extensions.POLL_OK:
                return
            if state == extensions.POLL_READ:
                _wait_read(conn.fileno(), 5.0)
            else:
                _wait_write(conn.fileno(), 5.0)
    except BaseException:
        pass


def patch_psycopg2():
    from psycopg2 import extensions
    if extensions.get_wait_callback() is not psycopg2_wait_callback:
        extensions.set_wait_callback(psycopg2_wait_callback)


# -- psycopg 3 ---------------------------------------------------------------
def _hub_ready(fileno, s, timeout):
    """Park until fileno is ready for Wait `s` (1 R, 2 W, 3 RW) or timeout
    seconds pass; the Ready mask (0 on timeout)."""
    ready = 0
    for _, ev in _wait_many([fileno] if s & 1 else [],
                            [fileno] if s & 2 else [], timeout):
        ready |= ev
    return ready


def psycopg_wait(gen, fileno, interval=0.0, timeout=None):
    """psycopg.waiting.wait on the hub (same protocol and errors)."""
    return _psycopg_wait(gen, fileno, interval, timeout)


def psycopg_wait_conn(gen, interval=0.0, timeout=None):
    """psycopg.waiting.wait_conn on the hub (the fd may change)."""
    return _psycopg_wait(gen, None, interval, timeout)


def _psycopg_wait(gen, fileno, interval, timeout):
    """The loop of both: ``gen`` yields the Wait (or, for wait_conn, with
    ``fileno`` None, (fileno, Wait) pairs); it is sent the Ready mask after
    at most ``interval`` seconds, until it returns or ``timeout`` passes."""
    from psycopg import errors as e
    from psycopg.waiting import READY_NONE
    if interval is None:
        raise ValueError("indefinite wait not supported anymore")
    deadline = _Deadline(timeout)
    fixed = fileno
    try:
        step = next(gen)
        while True:
            fileno, s = step if fixed is None else (fixed, step)
            ready = _hub_ready(fileno, s, deadline.slice(interval))
            if ready:
                step = gen.send(ready)
            else:
                gen.send(READY_NONE)
            if deadline.passed():
                raise e._WaitTimeout("wait timeout expired")
    except StopIteration as ex:
        return ex.value


def patch_psycopg():
    from psycopg import waiting
    waiting.wait = psycopg_wait
    waiting.wait_conn = psycopg_wait_conn
