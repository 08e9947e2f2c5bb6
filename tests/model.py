"""A pure-Python reference model of the Stackless scheduler and channels.

It follows Stackless's rules (docs/api/stackless.rst: the run-queue
operations of tasklets, the channel transfers and their preference, run(),
watchdogs, blocking and deadlock, kill and throw) for one thread,
and is used by tests/test_model.py to check the C implementation against it.

Nothing here switches C stacks.  A model tasklet's body is a *generator
function* ``body(model, tasklet)``; every operation that may switch is a
generator too and is called with ``yield from``::

    def body(m, me):
        value = yield from m.receive(ch)
        yield from m.schedule()

When an operation switches, it sets ``model.current`` to the tasklet that
runs next and yields; ``Model.main_loop()`` (a trampoline) then resumes that
tasklet's generator.  When the operation is resumed it takes its tasklet's
``tempval`` exactly as the C core does (a bomb there is raised), so
exceptions travel the same way: as ``Bomb`` objects in ``tempval``.

The run queue is a Python list used as a ring: ``ring`` holds every runnable
tasklet including the current one, "the end of the queue" is just before the
current tasklet, and ``next``/``prev`` wrap around.

Deviations of the C core that are known and reported are switched on by
name through ``Model(quirks=...)`` so that a random search keeps looking for
*new* disagreements; each one has a strict xfail in tests/test_regressions.py.
The known names are listed in ``QUIRKS``.
"""

DEADLOCK = "Deadlock: the last runnable tasklet cannot be blocked."
MAIN_RECEIVING = "the main tasklet is receiving without a sender available."
MAIN_SENDING = "the main tasklet is sending without a receiver available."

QUIRKS = {
    # Stackless's rule: "If the blocking tasklet carried a bomb, the bomb moves to
    # the watchdog."  The C core revives the watchdog but leaves the bomb
    # with the blocked sender.
    "no_bomb_to_watchdog",
}


class TaskletExit(SystemExit):
    """The model's own TaskletExit (the real one is a builtin)."""


class Bomb:
    """An exception in transit through a tempval."""

    __slots__ = ("exc",)

    def __init__(self, exc):
        self.exc = exc

    def __repr__(self):
        return "Bomb(%r)" % (self.exc,)


class MTasklet:
    """A model tasklet.  Its state is a handful of plain fields."""

    def __init__(self, model, name, body=None, is_main=False):
        self.model = model
        self.name = name
        self.body = body
        self.is_main = is_main
        self.setup = is_main        # set up (alive) but not started
        self.started = is_main
        self.dead = False
        self.gen = None
        self.tempval = None
        self.channel = None         # the MChannel it is blocked on
        self.direction = 0          # 1 blocked sending, -1 receiving
        self.watchdog = False       # paused in run(), in the watchdog list
        self.atomic = False

    def __repr__(self):
        return "<MTasklet %s>" % self.name

    # -- the tasklet flags ---------------------------------------------------
    @property
    def alive(self):
        return not self.dead and (self.setup or self.started)

    @property
    def blocked(self):
        return self.direction != 0

    @property
    def in_ring(self):
        return any(t is self for t in self.model.ring)

    @property
    def scheduled(self):
        return self.in_ring or self.blocked

    @property
    def paused(self):
        return self.alive and not self.in_ring and not self.blocked

    def set_atomic(self, flag):
        old = self.atomic
        self.atomic = bool(flag)
        return old


class MChannel:
    def __init__(self, name):
        self.name = name
        self.queue = []             # blocked tasklets, FIFO
        self.preference = -1
        self.schedule_all = 0
        self.closing = False

    @property
    def balance(self):
        return sum(t.direction for t in self.queue)

    def set_preference(self, value):
        self.preference = (value > 0) - (value < 0)

    def __repr__(self):
        return "<MChannel %s balance=%d>" % (self.name, self.balance)


class Model:
    """One thread's scheduler."""

    def __init__(self, quirks=()):
        unknown = set(quirks) - QUIRKS
        if unknown:
            raise ValueError("unknown quirks: %s" % sorted(unknown))
        self.quirks = frozenset(quirks)
        self.main = MTasklet(self, "main", is_main=True)
        self.ring = [self.main]
        self.current = self.main
        self.watchdogs = []

    # -- the ring ------------------------------------------------------------
    def _index(self, t):
        for i, x in enumerate(self.ring):
            if x is t:
                return i
        raise AssertionError("%r is not in the ring" % (t,))

    def next_of(self, t):
        i = self._index(t)
        return self.ring[(i + 1) % len(self.ring)]

    def prev_of(self, t):
        i = self._index(t)
        return self.ring[i - 1]

    def _insert_after(self, pos, t):
        assert not t.in_ring and not t.blocked
        self.ring.insert(self._index(pos) + 1, t)

    def _append(self, t):
        """The end of the queue: just before the current tasklet."""
        self._insert_after(self.prev_of(self.current), t)

    def _ring_remove(self, t):
        del self.ring[self._index(t)]

    def getruncount(self):
        return len(self.ring)

    def ring_order(self):
        """Names from the current tasklet round the ring (current first)."""
        i = self._index(self.current)
        return [t.name for t in self.ring[i:] + self.ring[:i]]

    def _wakeup_target(self):
        return self.watchdogs[-1] if self.watchdogs else self.main

    def _watchdog_remove(self, t):
        t.watchdog = False
        for i in range(len(self.watchdogs) - 1, -1, -1):
            if self.watchdogs[i] is t:
                del self.watchdogs[i]
                return

    def _revive_watchdog(self, t):
        # a run() caller made runnable (or woken by hand): the run() callers
        # nested inside it go back to the run queue, before the current
        # tasklet (Stackless's run_watchdog), then it leaves the list.
        # Stackless does this when the run() caller resumes (it pops itself
        # and every deeper run() caller still on its watchdog stack, and
        # inserts those not scheduled meanwhile); here too, for one woken by
        # hand (insert, t.run(), switch, throw/kill: still in the list when
        # its run() resumes).  When the queue runs dry the revived run()
        # caller is the innermost one, so doing it at once is the same.
        while self.watchdogs and self.watchdogs[-1] is not t:
            u = self.watchdogs[-1]
            if not any(x is u for x in self.ring) and not u.blocked:
                cur = self.current
                pos = self.ring[self._index(cur) - 1]
                self._make_runnable_after(pos, u)
            else:
                self._watchdog_remove(u)
        self._watchdog_remove(t)

    def _unblock(self, t):
        ch = t.channel
        ch.queue.remove(t)
        t.channel = None
        t.direction = 0

    def _make_runnable_after(self, pos, t):
        if t.blocked:
            self._unblock(t)
        self._insert_after(pos, t)
        if t.watchdog:
            self._revive_watchdog(t)

    # -- creating tasklets and channels -----------------------------------------
    def tasklet(self, name, body):
        """``tasklet(body)()``: bind, set up and append to the run queue."""
        t = MTasklet(self, name, body)
        t.setup = True
        self._append(t)
        return t

    def channel(self, name):
        return MChannel(name)

    # -- switching -------------------------------------------------------------
    def _take_tempval(self, t):
        v, t.tempval = t.tempval, None
        if isinstance(v, Bomb):
            raise v.exc
        return v

    def _switch(self, nxt):
        """Generator: run ``nxt`` (already linked); on resume return the
        current tasklet's tempval (a bomb is raised)."""
        me = self.current
        if nxt is not me:
            self.current = nxt
            yield ("switch", me.name, nxt.name)
            assert self.current is me, "resumed a tasklet that is not current"
        return self._take_tempval(me)

    def _pick_after_leave(self):
        """The tasklet to run when the current one leaves the ring."""
        cur = self.current
        if len(self.ring) > 1:
            return self.next_of(cur)
        w = self._wakeup_target()
        if w is not cur and not w.in_ring and not w.blocked:
            if "no_bomb_to_watchdog" not in self.quirks and isinstance(cur.tempval, Bomb):
                # Stackless's rule: the bomb the blocking tasklet carried moves to
                # the watchdog.
                w.tempval, cur.tempval = cur.tempval, None
            self._make_runnable_after(cur, w)
            return w
        return None

    # -- module-level operations ----------------------------------------------
    def schedule(self, retval=None):
        cur = self.current
        if retval is None:
            retval = cur
        if len(self.ring) == 1:
            return retval
            yield  # pragma: no cover  (makes this a generator)
        cur.tempval = retval
        return (yield from self._switch(self.next_of(cur)))

    def schedule_remove(self, retval=None):
        cur = self.current
        if retval is None:
            retval = cur
        cur.tempval = retval
        nxt = self._pick_after_leave()
        if nxt is None:
            cur.tempval = None
            raise RuntimeError(DEADLOCK)
        self._ring_remove(cur)
        return (yield from self._switch(nxt))

    def run(self):
        cur = self.current
        if len(self.ring) == 1:
            return None
            yield  # pragma: no cover
        self.watchdogs.append(cur)
        cur.watchdog = True
        nxt = self.next_of(cur)
        cur.tempval = None
        self._ring_remove(cur)
        try:
            yield from self._switch(nxt)
        finally:
            if cur.watchdog:
                self._revive_watchdog(cur)
        return None

    # -- channels (transfers and preference) --------------------------------------------------------
    def send(self, ch, value):
        return (yield from self._action(ch, 1, value))

    def send_exception(self, ch, exc_class, *args):
        return (yield from self._action(ch, 1, Bomb(exc_class(*args))))

    def receive(self, ch):
        return (yield from self._action(ch, -1, None))

    def _action(self, ch, d, value):
        cur = self.current
        waiting = ch.balance < 0 if d > 0 else ch.balance > 0
        if waiting:
            w = ch.queue[0]
            if ch.schedule_all:
                mode = "yield"
            elif ch.preference == -d:
                mode = "waiter"
            else:
                mode = "initiator"
            self._unblock(w)
            if d > 0:
                w.tempval = value
                result = None
            else:
                result, w.tempval = w.tempval, None
            if mode == "waiter":
                self._insert_after(cur, w)
                yield from self._switch(w)
            else:
                self._append(w)
                if mode == "yield":
                    yield from self._switch(self.next_of(cur))
            if d > 0:
                return None
            if isinstance(result, Bomb):
                raise result.exc
            return result
        if ch.closing:
            raise ValueError("Send/receive operation on a closed channel")
        old = cur.tempval
        cur.tempval = value if d > 0 else None
        nxt = self._pick_after_leave()
        if nxt is None:
            cur.tempval = old
            raise RuntimeError(DEADLOCK)
        self._ring_remove(cur)
        ch.queue.append(cur)
        cur.channel = ch
        cur.direction = d
        r = yield from self._switch(nxt)
        return None if d > 0 else r

    # -- tasklet methods (run queue, kill, throw) ---------------------------------------------
    def insert(self, t):
        if t.blocked:
            raise RuntimeError("You cannot run a blocked tasklet")
        if not t.alive:
            raise RuntimeError("You cannot run an unbound(dead) tasklet")
        if not t.in_ring:
            self._append(t)
        return t

    def remove(self, t):
        if t.blocked:
            raise RuntimeError("You cannot remove a blocked tasklet.")
        if t is self.current:
            raise RuntimeError("The current tasklet cannot be removed.")
        if t.in_ring:
            self._ring_remove(t)
        return t

    def run_tasklet(self, t, remove=False):
        """``t.run()`` (remove=False) or ``t.switch()`` (remove=True)."""
        if t.blocked:
            raise RuntimeError("You cannot run a blocked tasklet")
        if not t.alive:
            raise RuntimeError("You cannot run an unbound(dead) tasklet")
        cur = self.current
        if t is cur:
            return None
        if not t.in_ring:
            self._append(t)         # Stackless: the end of the queue
        if remove:
            self._ring_remove(cur)
        return (yield from self._switch(t))

    def throw(self, t, exc, pending=False):
        """``t.throw(exc, pending=...)``; ``exc`` is an exception instance."""
        return (yield from self._throw(t, exc, pending, is_kill=False))

    def kill(self, t, pending=False):
        if not t.alive:
            return None
        return (yield from self._throw(t, TaskletExit(), pending, is_kill=True))

    def _throw(self, t, exc, pending, is_kill):
        cur = self.current
        if t is cur:
            raise exc                               # the current one: here
        if not t.alive:                             # a dead tasklet
            if is_kill:
                return None
            raise RuntimeError("You cannot throw to a dead tasklet")
        t.tempval = Bomb(exc)
        if not t.in_ring:
            # pending: the end of the queue; immediate: right after
            # the caller, which then switches to it (and stays runnable).
            pos = self.prev_of(cur) if pending else cur
            if t.watchdog:
                # A run() caller thrown into stays in the watchdog list:
                # Stackless pops it (and the run() callers nested in it,
                # which go to the end of the queue) only when its run()
                # resumes with the bomb (run()'s finally below).
                self._insert_after(pos, t)
            else:
                self._make_runnable_after(pos, t)
        if pending:
            return None
        return (yield from self._switch(t))

    # -- the trampoline ----------------------------------------------------------
    def main_loop(self, main_body):
        """Run ``main_body`` as the main tasklet until it returns; its return
        value is returned (an exception escaping main propagates)."""
        self.main.body = main_body
        self.main.gen = main_body(self, self.main)
        while True:
            t = self.current
            if t.gen is None:
                t.started = True
                t.setup = False
                v, t.tempval = t.tempval, None
                if isinstance(v, Bomb):
                    # killed or thrown into before it ran: the bomb
                    # explodes before any of its code runs.
                    self._end(t, v.exc)
                    continue
                t.gen = t.body(self, t)
            try:
                t.gen.send(None)
            except StopIteration as stop:
                if t.is_main:
                    return stop.value
                self._end(t, None)
            except BaseException as exc:
                if t.is_main:
                    raise
                self._end(t, exc)

    def _end(self, t, exc):
        """A non-main tasklet ends, normally or with ``exc``."""
        bomb = None
        if exc is not None and not isinstance(exc, TaskletExit):
            if isinstance(exc, SystemExit):
                raise AssertionError("SystemExit out of a model tasklet")
            bomb = Bomb(exc)
        if bomb is not None:
            w = self._wakeup_target()
            w.tempval = bomb
            if not w.in_ring:
                self._make_runnable_after(t, w)
            nxt = w
        elif len(self.ring) > 1:
            nxt = self.next_of(t)
        else:
            w = self._wakeup_target()
            if w.blocked:
                w.tempval = Bomb(RuntimeError(
                    MAIN_RECEIVING if w.direction < 0 else MAIN_SENDING))
            elif w.in_ring:
                raise AssertionError("run queue corrupted")
            self._make_runnable_after(t, w)
            nxt = w
        t.dead = True
        t.setup = False
        t.started = False
        t.gen = None
        t.tempval = None
        self._ring_remove(t)
        self.current = nxt
