"""The frames of a suspended tasklet are safe to walk on every supported
CPython (docs/versions.md).

From 3.12, each entry into the eval loop from C links a shim frame that
lives on the C stack into the frame chain; once the tasklet is suspended
that stack memory belongs to whichever tasklet runs, so anything that
followed the chain into a shim would read garbage.  Here the tasklets are
suspended inside C-level calls back into Python (sorted's key, map, a
class body, exec, a generator driven by list()), so their chains do cross
shims, and everything that walks them is exercised from another tasklet:
t.frame, f_back, frame objects taken while the tasklet ran, tracebacks,
the collector, nesting_level, dump_tasklets, and a switch back in.
"""
import gc
import io
import sys
import traceback

import stackless_compat as stackless


def _nested_blockers(ch):
    """Functions that block on ch inside C -> Python re-entries; each
    returns the list of its own Python frames' names, innermost first, as
    seen while it was running."""
    names = []

    def block():
        names.append([f.name for f in traceback.extract_stack()][::-1])
        f = sys._getframe()
        got = ch.receive()
        return f, got

    def via_sorted():
        return sorted([1], key=lambda x: block())

    def via_map():
        return list(map(lambda x: block(), [1]))

    def via_class():
        class C:
            r = block()
        return C.r

    def via_exec():
        ns = {"block": block}
        exec("r = block()", ns)
        return ns["r"]

    def via_generator():
        def gen():
            yield block()
        return list(gen())

    def deep():
        return via_sorted()

    return names, [via_sorted, via_map, via_class, via_exec, via_generator,
                   deep]


def _walk(frame):
    out = []
    while frame is not None:
        out.append(frame.f_code.co_name)
        frame.f_lineno      # reads the frame's instruction pointer
        frame.f_locals      # and its locals
        frame = frame.f_back
    return out


def test_suspended_chains_across_c_reentry_are_walkable():
    ch = stackless.channel()
    names, funcs = _nested_blockers(ch)
    tasklets = [stackless.tasklet(f)() for f in funcs]
    hard = {funcs[0], funcs[1], funcs[5]}      # via_sorted, via_map, deep
    stackless.run()         # all blocked in ch.receive()
    assert all(t.blocked for t in tasklets)
    hard_ids = {id(t) for f, t in zip(funcs, tasklets) if f in hard}
    for t in tasklets:
        # Several times: the first walk materialises frame objects, the
        # next ones follow the links the first left behind.
        for _ in range(3):
            chain = _walk(t.frame)
            assert chain[0] == "block" and len(chain) >= 3, chain
        traceback.extract_stack(t.frame)
        traceback.format_stack(t.frame)
        # Stackless's count: a callback from C code (sorted's key, map) is
        # C state; a class body, exec'd module code and a generator are
        # entries it made without C recursion
        if id(t) in hard_ids:
            assert t.nesting_level >= 1
        gc.collect()
    # The same walks, after every tasklet has run once more in between.
    for t in tasklets:
        stackless.schedule()
        assert _walk(t.frame)[0] == "block"
    # Each one's walk matches what it saw of itself while it ran, minus the
    # frames below its own bottom (none: a tasklet's chain is its own).
    for t, seen in zip(tasklets, names):
        walked = _walk(t.frame)
        assert walked[:len(seen)] == seen[:len(walked)], (walked, seen)
    for i, t in enumerate(tasklets):
        ch.send(i)
    stackless.run()


def test_frame_taken_while_running_is_walkable_while_suspended():
    ch = stackless.channel()
    box = {}

    def inner():
        box["frame"] = sys._getframe()
        ch.receive()

    def outer():
        sorted([1], key=lambda x: inner())

    t = stackless.tasklet(outer)()
    stackless.run()
    f = box.pop("frame")
    # f_back was never asked for while the tasklet ran: it is computed now,
    # from the suspended chain.
    assert _walk(f)[:2] == ["inner", "<lambda>"]
    assert "outer" in _walk(f)
    ch.send(None)
    stackless.run()
    assert not t.alive


def test_traceback_of_a_suspended_tasklet_walks_its_frames():
    ch = stackless.channel()
    box = {}

    def inner():
        try:
            raise KeyError("x")
        except KeyError as e:
            box["tb"] = e.__traceback__
        ch.receive()

    def outer():
        list(map(lambda x: inner(), [1]))

    t = stackless.tasklet(outer)()
    stackless.run()
    tb = box.pop("tb")
    assert traceback.extract_tb(tb)[-1].name == "inner"
    # the stack above the frame that caught it
    stack = traceback.extract_stack(tb.tb_frame)
    assert [s.name for s in stack][-2:] == ["<lambda>", "inner"]
    ch.send(None)
    stackless.run()
    assert not t.alive


def test_dump_tasklets_shows_nested_suspended_stacks():
    ch = stackless.channel()
    names, funcs = _nested_blockers(ch)
    tasklets = [stackless.tasklet(f)() for f in funcs]
    stackless.run()
    out = io.StringIO()
    stackless.dump_tasklets(file=out)
    text = out.getvalue()
    assert text.count("in block") >= len(tasklets), text
    for i, t in enumerate(tasklets):
        ch.send(i)
    stackless.run()


def test_collector_with_many_nested_suspended_tasklets():
    ch = stackless.channel()
    _, funcs = _nested_blockers(ch)
    tasklets = [stackless.tasklet(funcs[i % len(funcs)])()
                for i in range(60)]
    stackless.run()
    for _ in range(3):
        gc.collect()
        for t in tasklets[::7]:
            _walk(t.frame)
    # and the tasklets still resume where they were
    for i in range(len(tasklets)):
        ch.send(i)
    stackless.run()
    assert not any(t.alive for t in tasklets)


def test_unreachable_nested_suspended_tasklet_is_traversed_safely():
    # A blocked tasklet in a cycle with its channel, suspended inside a C
    # re-entry: the collector traverses its chain (sorted's own references
    # are invisible to it, so the cycle stays, as in test_gc.py), then the
    # tasklet is killed and unwinds through the shim.
    import weakref
    log = []

    def f(ch):
        try:
            sorted([1], key=lambda x: ch.receive())
        finally:
            log.append("finally")

    def start():
        ch = stackless.channel()
        t = stackless.tasklet(f)(ch)
        stackless.run()
        assert t.blocked
        return weakref.ref(t)

    ref = start()
    for _ in range(3):
        gc.collect()
    t = ref()
    assert t is not None and t.blocked and log == []
    assert _walk(t.frame)[:2] == ["<lambda>", "f"]
    t.kill()
    assert log == ["finally"]
