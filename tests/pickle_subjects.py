"""Functions that tasklets run while being pickled by tests/test_pickle_running.py
(and by the child interpreters it starts, which import this module by name:
a pickled frame refers to its code by module and name)."""

import sys

import stackless_compat as stackless

log = []


def leaf(x):
    y = x * 2
    got = stackless.schedule_remove()
    log.append(("leaf", x, y, got is stackless.getcurrent()))
    return y + 1


def chain(n):
    acc = [n]
    for i in range(3):
        acc.append(leaf(i) + 100)
    log.append(("chain", acc))
    return acc


def deep(level, stop):
    if level == stop:
        return [stackless.schedule_remove() is stackless.getcurrent()]
    here = level * 10
    below = deep(level + 1, stop)
    return below + [here]


def run_deep(stop):
    # (log.append(...deep()...) would pickle a copy of log from the stack)
    result = deep(0, stop)
    log.append(("deep", result))


def receiver(ch, name):
    total = 0
    try:
        while True:
            v = ch.receive()
            if v is None:
                break
            total += v
            log.append((name, v, total))
    except ValueError as e:
        log.append((name, "error", str(e)))
    finally:
        log.append((name, "finally"))
    return total


def sender(ch, values):
    for v in values:
        ch.send(v)
    log.append(("sent", list(values)))


def iterate(ch):
    got = []
    for v in ch:
        if v is None:
            break
        got.append(v)
    log.append(("iterated", got))


def in_handler():
    try:
        raise KeyError("handled")
    except KeyError:
        before = sys.exc_info()[1]
        stackless.schedule_remove()
        log.append(("exc", repr(before), repr(sys.exc_info()[1])))
    log.append(("after", sys.exc_info()))


def catcher():
    try:
        stackless.schedule_remove()
        log.append("not thrown")
    except ZeroDivisionError as e:
        log.append(("caught", str(e)))


def pause_with(value):
    stackless.schedule_remove()
    return value


def with_cells(n):
    total = n
    stackless.schedule_remove()

    def add(k):
        nonlocal total
        total += k
        return total
    add(5)
    log.append(("cells", total, add(1)))


def in_closure(n):
    total = n
    # the lambda's frame (free variable total) is suspended; the caller's
    # stack does not hold the lambda once it is called
    got = (lambda k: pause_with(total + k))(5)
    total += 1
    log.append(("closure", got, total))


def nested_calls(ch):
    # the call's arguments and an unfinished list display on the stack
    return [1, 2, len([ch.receive(), 3])]


def stack_user(ch):
    entry = ("stack", nested_calls(ch), {"k": [x for x in (7, 8)]})
    log.append(entry)


def busy(n):
    # a long computation, interrupted by the watchdog
    total = 0
    for i in range(n):
        total += i * i % 7
    log.append(("busy", total))
    return total


def busy_expected(n):
    return sum(i * i % 7 for i in range(n))


def callback_user():
    return sorted([3, 1, 2], key=lambda v: (stackless.schedule_remove(), v)[1])


class Holder:
    def __init__(self, lock):
        self.lock = lock

    def wait(self):
        stackless.schedule_remove()


def with_unpicklable():
    import threading
    lock = threading.Lock()
    stackless.schedule_remove()
    return lock


def spinner(n):
    for i in range(n):
        stackless.schedule()
    log.append(("spun", n))


def through_star_args(func, *args):
    # f(*args) is a C-level call in CPython 3.11: the callee's frame is
    # entered from C, but only through the call machinery
    got = func(*args)
    log.append(("star", got))


class Caller:
    def method(self, x):
        return pause_with(x) + 1


class Managed:
    def __enter__(self):
        pause_with(None)
        return "entered"

    def __exit__(self, *exc):
        log.append(("exit", exc[0].__name__ if exc[0] else None))
        pause_with(None)
        return True


def with_block(fail):
    with Managed() as m:
        log.append(("body", m))
        if fail:
            raise KeyError(fail)
    log.append("after")


def long_function(ch):
    # long enough for jumps with EXTENDED_ARG (offsets over 255 units)
    total = 0
    for v in (1, 2):
        if v:
            total += 0 * v
            total += 1 * v
            total += 2 * v
            total += 3 * v
            total += 4 * v
            total += 5 * v
            total += 6 * v
            total += 7 * v
            total += 8 * v
            total += 9 * v
            total += 10 * v
            total += 11 * v
            total += 12 * v
            total += 13 * v
            total += 14 * v
            total += 15 * v
            total += 16 * v
            total += 17 * v
            total += 18 * v
            total += 19 * v
            total += 20 * v
            total += 21 * v
            total += 22 * v
            total += 23 * v
            total += 24 * v
            total += 25 * v
            total += 26 * v
            total += 27 * v
            total += 28 * v
            total += 29 * v
            total += 30 * v
            total += 31 * v
            total += 32 * v
            total += 33 * v
            total += 34 * v
            total += 35 * v
            total += 36 * v
            total += 37 * v
            total += 38 * v
            total += 39 * v
            total += 40 * v
            total += 41 * v
            total += 42 * v
            total += 43 * v
            total += 44 * v
            total += 45 * v
            total += 46 * v
            total += 47 * v
            total += 48 * v
            total += 49 * v
            total += 50 * v
            total += 51 * v
            total += 52 * v
            total += 53 * v
            total += 54 * v
            total += 55 * v
            total += 56 * v
            total += 57 * v
            total += 58 * v
            total += 59 * v
            total += 60 * v
            total += 61 * v
            total += 62 * v
            total += 63 * v
            total += 64 * v
            total += 65 * v
            total += 66 * v
            total += 67 * v
            total += 68 * v
            total += 69 * v
            total += 70 * v
            total += 71 * v
            total += 72 * v
            total += 73 * v
            total += 74 * v
            total += 75 * v
            total += 76 * v
            total += 77 * v
            total += 78 * v
            total += 79 * v
            total += 80 * v
            total += 81 * v
            total += 82 * v
            total += 83 * v
            total += 84 * v
            total += 85 * v
            total += 86 * v
            total += 87 * v
            total += 88 * v
            total += 89 * v
            total += 90 * v
            total += 91 * v
            total += 92 * v
            total += 93 * v
            total += 94 * v
            total += 95 * v
            total += 96 * v
            total += 97 * v
            total += 98 * v
            total += 99 * v
            total += 100 * v
            total += 101 * v
            total += 102 * v
            total += 103 * v
            total += 104 * v
            total += 105 * v
            total += 106 * v
            total += 107 * v
            total += 108 * v
            total += 109 * v
            total += 110 * v
            total += 111 * v
            total += 112 * v
            total += 113 * v
            total += 114 * v
            total += 115 * v
            total += 116 * v
            total += 117 * v
            total += 118 * v
            total += 119 * v
        total += ch.receive()
    log.append(("long", total))


# -- generators and coroutines (tests/test_pickle_generators.py) ----------

def counter(start, stop):
    """Yields start..stop-1; a sent value moves the count; returns the
    number of values sent."""
    sent = 0
    i = start
    while i < stop:
        got = yield i
        if got is not None:
            sent += 1
            i = got
        else:
            i += 1
    return sent


def gen_with_cells(n):
    total = 0
    for k in range(n):
        def add():
            nonlocal total
            total += k
        add()
        del add
        yield total
    return total


def gen_catching():
    try:
        yield "before"
    except KeyError as e:
        yield "caught %s" % e.args[0]
    try:
        raise ValueError("handled")
    except ValueError:
        yield "in handler"
    finally:
        yield "finally"


def delegating(n):
    got = yield from counter(0, n)
    yield "delegated returned %r" % (got,)
    return "done"


class Step:
    """An awaitable that yields its value once and returns value * 2."""

    def __init__(self, value):
        self.value = value

    def __await__(self):
        return (yield self.value) or self.value * 2


async def coro_adder(n):
    total = 0
    for k in range(n):
        total += await Step(k)
    return total


def drive(coro, values=None):
    """Run a coroutine to completion, sending None at each await; (yielded
    values, result)."""
    out = []
    try:
        v = coro.send(None)
        while True:
            out.append(v)
            v = coro.send(None)
    except StopIteration as e:
        return out, e.value


def holding_generator(n):
    """A tasklet whose frame holds a suspended generator."""
    g = counter(0, n)
    first = next(g)
    stackless.schedule_remove()
    log.append(("holding", first, list(g)))


def gen_receiving(ch):
    while True:
        v = ch.receive()
        if v is None:
            return
        yield v * 10


def for_over_receiving(ch):
    got = []
    for v in gen_receiving(ch):
        got.append(v)
    log.append(("for over receiving", got))


def squares(n):
    return (x * x for x in range(n))


def appender(box):
    while True:
        box.append((yield len(box)))
