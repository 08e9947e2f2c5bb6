"""The fast paths: exactly sized stack copies and data stack chunks of
blocked tasklets, recv() through the shared buffer, a reader that waits for
readiness before its first attempt, and the C echo loop of the benchmarks
(socket._echo).  Real sockets on loopback and socketpairs."""
import functools
import socket as stdsocket

import stackless_compat as sl
from stackless_compat import _stackless
from stackless_compat.patches import socket as cosocket

socket = cosocket.socket


def pair():
    a, b = stdsocket.socketpair()
    return socket(fileno=a.detach()), socket(fileno=b.detach())


def test_blocked_stack_copy_is_exactly_its_slice():
    ch = sl.channel()

    def blocked(ch):
        ch.receive()

    ts = [sl.tasklet(blocked)(ch) for _ in range(50)]
    ts += [sl.tasklet(ch.receive)() for _ in range(50)]
    sl.run()
    assert ch.balance == -100
    # after the first switches from a call site the reservation is learned
    for t in ts[10:50] + ts[60:]:
        size, capacity = _stackless._stack_info(t)
        assert 0 < size == capacity, (size, capacity)
    for i in range(100):
        ch.send(i)
    assert all(not t.alive for t in ts)


class Arg:
    pass


def test_blocked_python_tasklet_drops_its_argument_tuple():
    import gc
    import sys
    import weakref

    ch = sl.channel()
    seen = []

    def blocked(ch, obj):
        seen.append(ch.receive())
        seen.append(obj)

    obj = Arg()
    before = sys.getrefcount(obj)
    t = sl.tasklet(blocked)(ch, obj)
    assert _stackless._tasklet_bound(t)[1] == (ch, obj)   # set up: kept
    sl.run()
    assert t.blocked
    # the frame holds the arguments; the tuple is gone
    assert _stackless._tasklet_bound(t)[1] is None
    assert sys.getrefcount(obj) == before + 1
    ch.send("x")
    assert seen == ["x", obj]
    assert not t.alive

    # the only reference to an argument stays in the frame: it is kept
    def lone(ch, obj):
        r = weakref.ref(obj)
        ch.receive()
        seen.append(r() is obj)

    t = sl.tasklet(lone)(ch, Arg())
    sl.run()
    gc.collect()
    ch.send(None)
    assert seen[-1] is True

    # an argument the function dropped before blocking keeps the tuple
    # (freeing it there could run a finalizer inside the switch)
    def rebinds(ch, obj):
        del obj
        ch.receive()

    t = sl.tasklet(rebinds)(ch, Arg())
    sl.run()
    assert _stackless._tasklet_bound(t)[1] is not None
    ch.send(None)

    # keyword arguments and builtins keep theirs
    def kw(ch, obj=None):
        ch.receive()

    t = sl.tasklet(kw)(ch, obj=Arg())
    t2 = sl.tasklet(ch.receive)()
    sl.run()
    assert _stackless._tasklet_bound(t)[2] is not None
    assert _stackless._tasklet_bound(t2)[1] == ()
    ch.send(None)
    ch.send(None)
    assert not t.alive and not t2.alive


def test_deeper_switch_than_learned_still_saves_everything():
    ch = sl.channel()
    got = []

    def deep(n):
        if n == 0:
            got.append(ch.receive())
            return
        deep(n - 1)
        got.append(n)

    def shallow():
        got.append(ch.receive())

    for _ in range(5):
        sl.tasklet(shallow)()
    sl.run()
    t = sl.tasklet(functools.partial(deep, 30))()
    sl.run()
    size, capacity = _stackless._stack_info(t)
    assert capacity >= size > 0
    for i in range(6):
        ch.send(i)
    assert got == [0, 1, 2, 3, 4, 5] + list(range(1, 31))


def test_builtin_tasklet_that_calls_python_gets_a_chunk():
    # a builtin callable starts without a data stack chunk; Python code
    # called from it gets one from CPython
    ch = sl.channel()
    out = []

    def key(x):
        return -ch.receive() * x

    t = sl.tasklet(sorted)([1, 2, 3], key=key)
    t2 = sl.tasklet(lambda: out.append(sorted([3, 1, 2], key=lambda x: -x)))()
    sl.run()
    assert t.blocked and out == [[3, 2, 1]]
    for v in (1, 1, 1):
        ch.send(v)
    assert not t.alive and not t2.alive


def test_recv_sizes_around_the_shared_buffer():
    a, b = pair()
    with a, b:
        for size, payload in ((512, b"x" * 300), (513, b"y" * 513),
                              (65536, b"z" * 1000), (65537, b"w" * 70000)):
            b.sendall(payload)
            got = b""
            while len(got) < len(payload):
                got += a.recv(size)
            assert got == payload, size


def test_reader_that_waits_first_still_gets_data_already_there():
    a, b = pair()
    got = []

    def reader():
        while True:
            chunk = a.recv(4096)
            if not chunk:
                break
            got.append(chunk)

    def writer():
        for i in range(20):
            sl.schedule()       # the reader finds nothing: waits first next
            b.sendall(b"%03d" % i)
            if i % 5 == 0:
                b.sendall(b"+")     # more data before the reader runs
        b.shutdown(stdsocket.SHUT_WR)

    with a, b:
        tr = sl.tasklet(reader)()
        sl.tasklet(writer)()
        sl.run()
        assert not tr.alive
    data = b"".join(got)
    assert data == b"".join(b"%03d" % i + (b"+" if i % 5 == 0 else b"")
                            for i in range(20))


def test_nonblocking_recv_does_not_wait_first():
    a, b = pair()
    got = []

    def reader():
        got.append(a.recv(10))      # nothing there: parks, waits first next
        a.setblocking(False)        # but a non-blocking recv never waits
        try:
            a.recv(10)
        except BlockingIOError:
            got.append("nb")
        a.setblocking(True)
        got.append(a.recv(10))      # waits first; the data is already there

    def writer():
        sl.schedule()
        b.sendall(b"2")
        while len(got) < 2:
            sl.schedule()
        b.sendall(b"3")

    with a, b:
        tr = sl.tasklet(reader)()
        sl.tasklet(writer)()
        sl.run()
        assert not tr.alive
    assert got == [b"2", "nb", b"3"]


def test_c_echo_loop():
    a, b = pair()
    echo = _stackless._sock_methods()["_echo"]
    result = []

    def server():
        result.append(echo(a))
        a.shutdown(stdsocket.SHUT_WR)

    with a, b:
        t = sl.tasklet(server)()
        sent = b"".join(b"%05d" % i for i in range(4000))

        def client():
            b.sendall(sent)
            b.shutdown(stdsocket.SHUT_WR)
            got = b""
            while True:
                chunk = b.recv(65536)
                if not chunk:
                    break
                got += chunk
            result.append(got)

        sl.tasklet(client)()
        sl.run()
        assert not t.alive
        # the server returned None at EOF; b's shutdown ended it, and its
        # own end closes when a does (after the with block)
        assert result[0] is None


def test_c_echo_loop_round_trips_and_eof():
    a, b = pair()
    echo = _stackless._sock_methods()["_echo"]
    got = []

    def client():
        for i in range(50):
            b.sendall(b"ping%d" % i)
            got.append(b.recv(100))
        b.close()

    with a:
        ts = sl.tasklet(echo)(a)
        sl.tasklet(client)()
        sl.run()
        assert not ts.alive
    assert got == [b"ping%d" % i for i in range(50)]
