/* The cooperative lock (Python type "lock"): what threading.Lock becomes
 * under patch_thread() (patches/thread.py builds RLock, Condition, Event,
 * Semaphore, Barrier and the queues on top of it).
 *
 * acquire() parks only the calling tasklet (sched_park); release() hands
 * the lock straight to the first waiter (FIFO), so a timed-out or killed
 * waiter never loses a wake-up and a waiter is never overtaken.  A waiter
 * may belong to another thread: the release then queues it on that
 * thread's hub (hub_state.lock_done) and wakes its loop with ev_async; the
 * waiter's thread finishes the wait itself (its timer belongs to its own
 * loop).  All lock and waiter fields are touched only with the GIL held.
 *
 * Like a channel wait, a wait without a timeout is no hub activity: when
 * nothing else can run, run() returns (or, with other threads alive, the
 * scheduler waits for them; their sched_wake() ends that wait and the idle
 * hook finishes the granted waits); with no other thread it is Stackless's
 * deadlock error rather than a hang.  A timed wait counts as hub activity,
 * as a sleep does.
 *
 * Where the current tasklet cannot be switched out (schedule callback,
 * switch_trap, block_trap, interpreter finalization), acquire() waits the
 * way a plain thread lock would, blocking the thread (releasing the GIL in
 * short naps) -- never an error that the stdlib would not raise. */
#include "hub.h"
#include "structmember.h"

#include <math.h>
#include <time.h>

typedef struct LockObject LockObject;
typedef struct lock_waiter lock_waiter;

struct lock_waiter {
    ev_timer timer;
    TaskletObject *t;           /* borrowed: parked, the scheduler owns it */
    sched_thread *ts;
    hub_state *h;
    LockObject *lock;           /* borrowed, while queued */
    lock_waiter *next, *prev;   /* in lock's FIFO */
    lock_waiter *dnext;         /* in h->lock_done */
    lock_waiter *wnext, *wprev; /* in h->lock_waits while not finished */
    LockObject *target;         /* borrowed: the lock waited for */
    int queued;                 /* in the lock's FIFO */
    int in_done;                /* in h->lock_done */
    int granted;                /* the lock was handed to it */
    int finished;               /* watchers stopped, unparked or aborted */
    int counted;                /* a timed wait: counts in h->nactive */
};

struct LockObject {
    PyObject_HEAD
    int locked;
    lock_waiter *head, *tail;
    PyObject *weakreflist;
};

static PyTypeObject *Lock_Type;

static void
queue_unlink(lock_waiter *w)
{
    LockObject *l = w->lock;
    if (!w->queued)
        return;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        l->head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        l->tail = w->prev;
    w->next = w->prev = NULL;
    w->queued = 0;
    w->lock = NULL;
}

static void
done_unlink(lock_waiter *w)
{
    lock_waiter **p;
    if (!w->in_done)
        return;
    for (p = &w->h->lock_done; *p != NULL; p = &(*p)->dnext) {
        if (*p == w) {
            *p = w->dnext;
            break;
        }
    }
    w->dnext = NULL;
    w->in_done = 0;
}

/* Stop everything the wait holds; its own thread, no Python code. */
static void
waiter_stop(lock_waiter *w)
{
    queue_unlink(w);
    done_unlink(w);
    if (ev_is_active(&w->timer) || ev_is_pending(&w->timer))
        ev_timer_stop(w->h->loop, &w->timer);
    if (w->counted) {
        w->counted = 0;
        w->h->nactive--;
    }
    if (!w->finished) {
        if (w->wprev != NULL)
            w->wprev->wnext = w->wnext;
        else
            w->h->lock_waits = w->wnext;
        if (w->wnext != NULL)
            w->wnext->wprev = w->wprev;
        w->wnext = w->wprev = NULL;
    }
    w->finished = 1;
}

/* End the wait with `value` (True: the lock is its); its own thread. */
static void
waiter_finish(lock_waiter *w, PyObject *value)
{
    if (w->finished)
        return;
    waiter_stop(w);
    sched_unpark(w->t, Py_NewRef(value));
}

/* Hand the lock to w (first in its FIFO), in whatever thread releases. */
static void
waiter_grant(lock_waiter *w)
{
    queue_unlink(w);
    w->granted = 1;
    if (w->ts == sched_peek()) {
        waiter_finish(w, Py_True);
    }
    else {
        w->dnext = w->h->lock_done;
        w->h->lock_done = w;
        w->in_done = 1;
        sched_wake(w->ts);
    }
}

/* Waits granted from other threads: called by the hub of the waiters'
 * thread after a poll (its ev_async callback). */
void
hub_lock_drain(hub_state *h)
{
    while (h->lock_done != NULL) {
        lock_waiter *w = h->lock_done;
        h->lock_done = w->dnext;
        w->dnext = NULL;
        w->in_done = 0;
        waiter_finish(w, Py_True);
    }
}

static void lock_release_impl(LockObject *self);

/* The thread ends with waits still registered (a tasklet that survived
 * the thread's kill, or interpreter exit): no release may reach them any
 * more; a lock already handed to one of them is passed on. */
void
hub_lock_thread_end(hub_state *h)
{
    while (h->lock_waits != NULL) {
        lock_waiter *w = h->lock_waits;
        int granted = w->granted;
        waiter_stop(w);
        if (granted)
            lock_release_impl(w->target);
    }
    h->lock_done = NULL;
}

static void
lock_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    lock_waiter *w = (lock_waiter *)tw;     /* timer is the first member */
    (void)loop; (void)revents;
    /* Granted meanwhile by another thread (not yet drained): it owns the
     * lock, the timeout came too late. */
    waiter_finish(w, w->granted ? Py_True : Py_False);
    if (!w->granted)
        hub_run_soon(w->h, w->t);
}

static void
lock_abort(TaskletObject *t, void *arg)
{
    (void)t;
    waiter_stop((lock_waiter *)arg);
}

static void
lock_release_impl(LockObject *self)
{
    if (self->head != NULL)
        waiter_grant(self->head);   /* stays locked: now the waiter's */
    else
        self->locked = 0;
}

/* Can the current tasklet be switched out?  No exception either way. */
static int
can_park(sched_thread *ts)
{
    if (sched_switch_refused(ts) ||
        (ts->current->flags & TF_BLOCK_TRAP) || slp_is_finalizing())
        return 0;
    return 1;
}

/* The thread cannot switch: wait as a thread lock would, releasing the
 * GIL in naps growing from 50 us to 5 ms.  Returns 1, 0 or -1 (a signal
 * handler raised). */
static int
acquire_blocking_thread(LockObject *self, double timeout)
{
    double deadline = 0;
    long nap = 50000;
    while (self->locked) {
        struct timespec ts;
        if (hub_deadline_left(&deadline, timeout) == 0)
            return 0;
        ts.tv_sec = 0;
        ts.tv_nsec = nap;
        Py_BEGIN_ALLOW_THREADS
        nanosleep(&ts, NULL);
        Py_END_ALLOW_THREADS
        if (nap < 5000000)
            nap *= 2;
        if (PyThread_get_thread_ident() == slp_main_thread_ident &&
            PyErr_CheckSignals() < 0)
            return -1;
    }
    self->locked = 1;
    return 1;
}

/* Returns 1 acquired, 0 not (timeout / non-blocking), -1 with an
 * exception (kill, throw, a signal handler's). */
static int
lock_acquire_impl(LockObject *self, int blocking, double timeout)
{
    sched_thread *ts;
    hub_state *h;
    lock_waiter *w;
    PyObject *r;
    int granted;
    if (!self->locked) {
        self->locked = 1;
        return 1;
    }
    if (!blocking || timeout == 0)
        return 0;
    ts = sched_get();
    if (ts == NULL)
        return -1;
    if (!can_park(ts))
        return acquire_blocking_thread(self, timeout);
    h = hub_get(ts);
    if (h == NULL)
        return -1;
    w = PyMem_RawCalloc(1, sizeof(*w));
    if (w == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    w->t = ts->current;
    w->ts = ts;
    w->h = h;
    w->lock = self;
    w->target = self;
    w->queued = 1;
    w->wnext = h->lock_waits;
    if (h->lock_waits != NULL)
        h->lock_waits->wprev = w;
    h->lock_waits = w;
    w->prev = self->tail;
    if (self->tail != NULL)
        self->tail->next = w;
    else
        self->head = w;
    self->tail = w;
    ev_timer_init(&w->timer, lock_timer_cb, timeout > 0 ? timeout : 0., 0.);
    if (timeout > 0) {
        ev_now_update(h->loop);
        ev_timer_start(h->loop, &w->timer);
        w->counted = 1;
        h->nactive++;
    }
    r = sched_park(ts, lock_abort, w);
    /* Every path has stopped the wait (finish or abort). */
    granted = w->granted;
    assert(w->finished);
    PyMem_RawFree(w);
    if (r == NULL) {
        /* killed after the lock was handed over: pass it on */
        if (granted)
            lock_release_impl(self);
        return -1;
    }
    Py_DECREF(r);
    if (!granted)
        return 0;
    return 1;
}

/* CPython's own rules for acquire(blocking=True, timeout=-1). */
static int
acquire_args(PyObject *args, PyObject *kwds, int *blocking, double *timeout)
{
    static char *kwlist[] = {"blocking", "timeout", NULL};
    PyObject *tmo = NULL;
    *blocking = 1;
    *timeout = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|pO:acquire", kwlist,
                                     blocking, &tmo))
        return -1;
    if (tmo != NULL) {
        *timeout = PyFloat_AsDouble(tmo);
        if (*timeout == -1 && PyErr_Occurred())
            return -1;
    }
    if (!*blocking && *timeout != -1) {
        PyErr_SetString(PyExc_ValueError,
                        "can't specify a timeout for a non-blocking call");
        return -1;
    }
    if (*timeout < 0 && *timeout != -1) {
        PyErr_SetString(PyExc_ValueError,
                        "timeout value must be a non-negative number");
        return -1;
    }
    if (*timeout != *timeout) {
        PyErr_SetString(PyExc_ValueError, "Invalid value NaN (not a number)");
        return -1;
    }
    if (*timeout > (double)PY_TIMEOUT_MAX / 1e6) {
        PyErr_SetString(PyExc_OverflowError, "timeout value is too large");
        return -1;
    }
    if (!*blocking)
        *timeout = 0;
    return 0;
}

static PyObject *
lock_acquire(LockObject *self, PyObject *args, PyObject *kwds)
{
    int blocking, r;
    double timeout;
    if (acquire_args(args, kwds, &blocking, &timeout) < 0)
        return NULL;
    r = lock_acquire_impl(self, blocking, timeout);
    if (r < 0)
        return NULL;
    return PyBool_FromLong(r);
}

static PyObject *
lock_release(LockObject *self, PyObject *unused)
{
    (void)unused;
    if (!self->locked) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return NULL;
    }
    lock_release_impl(self);
    Py_RETURN_NONE;
}

static PyObject *
lock_exit(LockObject *self, PyObject *args)
{
    (void)args;
    return lock_release(self, NULL);
}

static PyObject *
lock_locked(LockObject *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(self->locked);
}

/* After fork() in the child: unlocked, no waiters (the waiting tasklets of
 * other threads do not exist there; the forking thread's own waiters are
 * left parked, as a thread lock's would be, but never touched again). */
static PyObject *
lock_at_fork_reinit(LockObject *self, PyObject *unused)
{
    (void)unused;
    while (self->head != NULL)
        queue_unlink(self->head);
    self->locked = 0;
    Py_RETURN_NONE;
}

/* Waiting tasklets (tests and introspection). */
static PyObject *
lock_nwaiters(LockObject *self, void *unused)
{
    Py_ssize_t n = 0;
    lock_waiter *w;
    (void)unused;
    for (w = self->head; w != NULL; w = w->next)
        n++;
    return PyLong_FromSsize_t(n);
}

static PyObject *
lock_repr(LockObject *self)
{
    return PyUnicode_FromFormat("<%s %s object at %p>",
                                self->locked ? "locked" : "unlocked",
                                Py_TYPE(self)->tp_name, self);
}

/* allocate_lock(): a new lock on every version. */
static PyObject *
py_allocate_lock(PyObject *m, PyObject *unused)
{
    (void)m; (void)unused;
    return Lock_Type->tp_alloc(Lock_Type, 0);
}

#if SLP_LOCK_TYPE_NEW
/* lock(): the type is instantiable where the stdlib's lock type is
 * (csrc/compat.h), with its argument errors. */
static PyObject *
lock_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError, "lock() takes no keyword arguments");
        return NULL;
    }
    if (PyTuple_GET_SIZE(args) != 0) {
        PyErr_Format(PyExc_TypeError, "lock expected 0 arguments, got %zd",
                     PyTuple_GET_SIZE(args));
        return NULL;
    }
    return type->tp_alloc(type, 0);
}
#  define LOCK_DOC_SIGNATURE "lock()\n--\n\n"
#  define LOCK_TYPE_FLAGS Py_TPFLAGS_DEFAULT
#else
#  define LOCK_DOC_SIGNATURE ""
#  define LOCK_TYPE_FLAGS (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION)
#endif

static void
lock_dealloc(LockObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    while (self->head != NULL)
        queue_unlink(self->head);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef lock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))lock_acquire,
     METH_VARARGS | METH_KEYWORDS,
     "acquire($self, /, blocking=True, timeout=-1)\n"
     "--\n"
     "\n"
     "Take the lock, parking the calling tasklet (not its thread) until it is\n"
     "free, at most timeout seconds (-1: no limit).  Returns True if the lock\n"
     "was taken, False if not (non-blocking, or the timeout passed)."},
    {"acquire_lock", (PyCFunction)(void (*)(void))lock_acquire,
     METH_VARARGS | METH_KEYWORDS,
     "acquire_lock($self, /, blocking=True, timeout=-1)\n"
     "--\n"
     "\n"
     "An alias of acquire()."},
    {"__enter__", (PyCFunction)(void (*)(void))lock_acquire,
     METH_VARARGS | METH_KEYWORDS,
     "__enter__($self, /, blocking=True, timeout=-1)\n"
     "--\n"
     "\n"
     "Take the lock (acquire())."},
    {"release", (PyCFunction)lock_release, METH_NOARGS,
     "release($self, /)\n"
     "--\n"
     "\n"
     "Unlock; the first waiter (FIFO), in whatever thread it runs, gets the\n"
     "lock.  RuntimeError if the lock is not locked."},
    {"release_lock", (PyCFunction)lock_release, METH_NOARGS,
     "release_lock($self, /)\n"
     "--\n"
     "\n"
     "An alias of release()."},
    {"__exit__", (PyCFunction)lock_exit, METH_VARARGS,
     "__exit__($self, /, *exc_info)\n"
     "--\n"
     "\n"
     "Release the lock (release())."},
    {"locked", (PyCFunction)lock_locked, METH_NOARGS,
     "locked($self, /)\n"
     "--\n"
     "\n"
     "Return True if the lock is taken."},
    {"locked_lock", (PyCFunction)lock_locked, METH_NOARGS,
     "locked_lock($self, /)\n"
     "--\n"
     "\n"
     "An alias of locked()."},
    {"_at_fork_reinit", (PyCFunction)lock_at_fork_reinit, METH_NOARGS,
     "_at_fork_reinit($self, /)\n"
     "--\n"
     "\n"
     "After fork() in the child: unlocked, without waiters."},
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef lock_getset[] = {
    {"_nwaiters", (getter)lock_nwaiters, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL}
};

static PyMemberDef lock_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(LockObject, weakreflist),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL}
};

static PyType_Slot lock_slots[] = {
    {Py_tp_dealloc, lock_dealloc},
    {Py_tp_repr, lock_repr},
    {Py_tp_methods, lock_methods},
    {Py_tp_getset, lock_getset},
    {Py_tp_members, lock_members},
#if SLP_LOCK_TYPE_NEW
    {Py_tp_new, lock_new},
#endif
    {Py_tp_doc, (void *)(LOCK_DOC_SIGNATURE
                         "A lock that parks the waiting tasklet, not its "
                         "thread (threading.Lock under patch_thread()).")},
    {0, NULL}
};

static PyType_Spec lock_spec = {
    "stackless_compat.lock", sizeof(LockObject), 0, LOCK_TYPE_FLAGS,
    lock_slots
};

static PyMethodDef lock_module_methods[] = {
    {"allocate_lock", py_allocate_lock, METH_NOARGS,
     "allocate_lock($module, /)\n"
     "--\n"
     "\n"
     "Return a new cooperative lock (threading.Lock under patch_thread())."},
    {NULL, NULL, 0, NULL}
};

int
hub_lock_module_init(PyObject *module)
{
    Lock_Type = (PyTypeObject *)PyType_FromSpec(&lock_spec);
    if (Lock_Type == NULL)
        return -1;
    if (PyModule_AddFunctions(module, lock_module_methods) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "lock", (PyObject *)Lock_Type);
}
