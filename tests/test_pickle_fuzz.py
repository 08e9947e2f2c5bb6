"""Damaged and hostile pickles of suspended tasklets never crash the
interpreter: SLP_FUZZ_N mutated pickles (2,000 here; `make soak` runs
100,000 under ASan+UBSan) are loaded, and every tasklet that loads is run
(under the watchdog, then killed).  A load either fails with an exception
or gives frames the code could have produced.

Mutations: bytes of the pickle (flips, insertions, deletions, truncation,
copies of a slice elsewhere), and fields of the frame records (position,
value stack, variables, version tag, code reference, push flag) replaced
with neighbouring or arbitrary values.  The unpickler only finds the names
the original pickles use, so that a mutated name can never reach code
outside the project (a pickle can call any callable it names: the fuzz
tests our checks, not pickle's)."""

import io
import os
import pickle
import pickletools
import random
import sys
import types

import pytest

import stackless_compat as stackless
from stackless_compat import _pickle

import pickle_subjects as subj

N = int(os.environ.get("SLP_FUZZ_N", "2000"))
SEED = int(os.environ.get("SLP_FUZZ_SEED", "12"))


def _names(data):
    out = set()
    strings = []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE",
                       "BINUNICODE8"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            out.add((strings[-2], strings[-1]))
        elif op.name == "GLOBAL":
            out.add(tuple(arg.split(" ", 1)))
    return out


class Restricted(pickle.Unpickler):
    allowed = set()

    def find_class(self, module, name):
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError("fuzz: %s.%s is not allowed"
                                         % (module, name))
        return super().find_class(module, name)


def corpus():
    """(pickled bytes, tasklets to kill) of several suspended tasklets."""
    made = []
    ts = []

    def keep(obj):
        made.append(pickle.dumps(obj, random.choice((2, 4, 5))))

    t = stackless.tasklet(subj.chain)(3)
    t.run()
    keep(t)
    ts.append(t)
    t = stackless.tasklet(subj.run_deep)(4)
    t.run()
    keep(t)
    ts.append(t)
    ch = stackless.channel()
    for name in "xy":
        t = stackless.tasklet(subj.receiver)(ch, name)
        t.run()
        ts.append(t)
    keep(ch)
    ch2 = stackless.channel()
    t = stackless.tasklet(subj.stack_user)(ch2)
    t.run()
    keep(t)
    ts.append(t)
    for f in (subj.in_handler, subj.with_cells):
        t = stackless.tasklet(f)(*((1,) if f is subj.with_cells else ()))
        t.run()
        keep(t)
        ts.append(t)
    t = stackless.tasklet(subj.with_block)("fz")
    t.run()
    t.insert()
    stackless.run()                   # in __exit__, holding a traceback
    keep(t)
    ts.append(t)
    t = stackless.tasklet(subj.busy)(10 ** 6)
    assert stackless.run(300) is t
    keep(t)
    ts.append(t)
    # generators and coroutines suspended at a yield / await
    for g, steps in ((subj.counter(0, 5), 2), (subj.delegating(4), 2),
                     (subj.gen_catching(), 1), (subj.coro_adder(3), 2),
                     (subj.gen_with_cells(3), 1), (subj.counter(1, 2), 0)):
        for _ in range(steps):
            g.send(None)
        keep(g)
        g.close()
    return made, ts


POOL = [0, 1, -1, 2 ** 40, None, True, "s", b"b", (), [], {}, set(),
        _pickle.NULL, KeyError("k"), iter([1]), iter(()), range(3),
        stackless.channel, object]


def mutate_bytes(rnd, data):
    b = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        kind = rnd.randrange(5)
        i = rnd.randrange(len(b))
        if kind == 0:
            b[i] ^= 1 << rnd.randrange(8)
        elif kind == 1:
            b[i] = rnd.randrange(256)
        elif kind == 2:
            del b[i:i + rnd.randint(1, 8)]
        elif kind == 3:
            b[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 4)))
        else:
            j = rnd.randrange(len(b))
            b[i:i + 4] = b[j:j + 4]
    if rnd.random() < 0.1:
        b = b[:rnd.randrange(len(b))]
    return bytes(b)


def mutate_value(rnd, v):
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return rnd.choice((v + rnd.randint(-3, 3), v * 2, -v, 0, 2 ** 31,
                           rnd.randint(-100, 1000)))
    if isinstance(v, tuple) and v:
        v = list(v)
        k = rnd.randrange(4)
        i = rnd.randrange(len(v))
        if k == 0:
            v[i] = rnd.choice(POOL)
        elif k == 1:
            del v[i]
        elif k == 2:
            v.insert(i, rnd.choice(POOL))
        else:
            rnd.shuffle(v)
        return tuple(v)
    return rnd.choice(POOL + [(v,), ()])


def mutate_state(rnd, t_state):
    flags, tempval, nl, frames = t_state[:4]
    frames = list(frames)
    recs = [i for i, f in enumerate(frames) if isinstance(f, tuple)]
    for _ in range(rnd.randint(1, 3)):
        if not recs:
            break
        i = rnd.choice(recs)
        rec = list(frames[i])
        field = rnd.randrange(1, len(rec))
        if field == 5 and rnd.random() < 0.5 and rec[5]:
            lp = list(rec[5])
            j = rnd.randrange(len(lp))
            lp[j] = rnd.choice(POOL)
            rec[5] = tuple(lp)
        else:
            rec[field] = mutate_value(rnd, rec[field])
        frames[i] = tuple(rec)
    if rnd.random() < 0.1 and len(frames) > 1:
        rnd.shuffle(frames)
    if rnd.random() < 0.1 and frames:
        del frames[rnd.randrange(len(frames))]
    return (flags, tempval, nl, frames) + tuple(t_state[4:])


def run_loaded(obj, victims):
    tasklets = []
    if isinstance(obj, (types.GeneratorType, types.CoroutineType)):
        try:
            for v in (None, 1, None, None, None):
                obj.send(v)
        except BaseException:
            pass
        try:
            obj.close()
        except BaseException:
            pass
        return
    if isinstance(obj, stackless.tasklet):
        tasklets.append(obj)
    elif isinstance(obj, stackless.channel):
        q = obj.queue
        while q is not None and q not in tasklets:
            tasklets.append(q)
            q = q.next
        for v in (1, None, "x", 2):
            if obj.balance >= 0:
                break
            try:
                obj.send(v)
            except Exception:
                pass
    for t in tasklets:
        victims.append(t)
        for _ in range(3):
            if not t.alive or t.blocked:
                break
            try:
                if not t.scheduled:
                    t.insert()
                stackless.run(500)
            except Exception:
                pass


@pytest.mark.noleakcheck  # mutated channel states may stay in the
#                           restore bookkeeping (_pickle._waiting)
def test_mutated_pickles_never_crash():
    rnd = random.Random(SEED)
    random.seed(SEED)
    data, originals = corpus()
    allowed = set()
    for d in data:
        allowed |= _names(d)
    allowed.discard(("stackless_compat._pickle", "_import"))
    Restricted.allowed = allowed
    states = []
    for d in data:
        obj = pickle.loads(d)
        if isinstance(obj, stackless.tasklet):
            states.append(obj.__reduce__()[2])
        victims = []
        run_loaded(obj, victims)
        for t in victims:
            t.kill()
    loaded = failed = 0
    victims = []
    for n in range(N):
        if rnd.random() < 0.5 or not states:
            blob = mutate_bytes(rnd, rnd.choice(data))
            try:
                # pickle's own framing first: a mutated length can make
                # the C unpickler allocate gigabytes (its business, not ours)
                for op, arg, _ in pickletools.genops(blob):
                    # and a mutated memo index makes it resize its memo
                    # to that many entries
                    if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and \
                            arg > 100000:
                        raise ValueError("memo index out of range")
                obj = Restricted(io.BytesIO(blob)).load()
            except Exception:
                failed += 1
                continue
        else:
            st = mutate_state(rnd, rnd.choice(states))
            obj = stackless.tasklet()
            try:
                obj.__setstate__(st)
            except Exception:
                failed += 1
                if obj.alive:
                    victims.append(obj)
                continue
        loaded += 1
        run_loaded(obj, victims)
        if len(victims) > 50:
            for t in victims:
                try:
                    t.kill()
                except Exception:
                    pass
            del victims[:]
    for t in victims + originals:
        try:
            t.kill()
        except Exception:
            pass
    _pickle._waiting.clear()
    del subj.log[:]
    sys.stderr.write("fuzz: %d mutated pickles, %d loaded, %d refused\n"
                     % (N, loaded, failed))
    assert loaded + failed == N
    assert failed > 0
