/* The hub: one libev loop per thread and the scheduler's idle hook
 * (docs/design.md, "The scheduler and the hub").  No hub tasklet: when
 * nothing is runnable the scheduler calls hub_idle(), which polls the loop once with
 * the GIL released only around the blocking poll; watcher callbacks only
 * unpark tasklets.  Also: sleep(), the Timeout timer object, cross-thread
 * wake-ups. */
#include "hub.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void
loop_release(struct ev_loop *loop)
{
    hub_state *h = ev_userdata(loop);
    if (!h->keep_gil)
        h->released = PyEval_SaveThread();
}

static void
loop_acquire(struct ev_loop *loop)
{
    hub_state *h = ev_userdata(loop);
    PyThreadState *t = h->released;
    if (t != NULL) {
        h->released = NULL;
        PyEval_RestoreThread(t);
    }
}

static void
async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    /* Breaks the poll; whoever sent it queued the work.  Lock waits
     * granted by other threads end here, in their own thread. */
    hub_state *h = ev_userdata(loop);
    (void)w; (void)revents;
    if (h->lock_done != NULL)
        hub_lock_drain(h);
}

/* libev aborts the whole process when it cannot create the descriptor
 * its signal and ev_async wake-ups need (evpipe_init: "error creating
 * signal/async pipe").  Before asking it to, make sure `n` descriptors can
 * be opened, and fail like the stdlib (OSError EMFILE/ENFILE) otherwise.
 * Another thread opening descriptors without the GIL between this check
 * and libev's own calls can still win the last one: this narrows the
 * window, it cannot close it. */
static int
fds_available(int n)
{
    int fds[3], i, err = 0;
    assert(n <= 3);
    for (i = 0; i < n; i++) {
        fds[i] = eventfd(0, EFD_CLOEXEC);
        if (fds[i] < 0) {
            err = errno;
            break;
        }
    }
    while (i-- > 0)
        close(fds[i]);
    if (err != 0) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

hub_state *
hub_get(sched_thread *ts)
{
    hub_state *h = hub_of(ts);
    if (h != NULL)
        return h;
    h = PyMem_RawCalloc(1, sizeof(*h));
    if (h == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    h->ts = ts;
    h->is_main = (ts->thread_id == slp_main_thread_ident);
    if (h->is_main) {
        /* libev's default loop installs a SIGCHLD handler that reaps every
         * child (it would break subprocess): keep the disposition that was
         * there (gevent does the same).  Its SIGCHLD watcher needs a
         * descriptor (after the epoll one, which is optional). */
        struct sigaction old;
        if (fds_available(2) < 0) {
            PyMem_RawFree(h);
            return NULL;
        }
        sigaction(SIGCHLD, NULL, &old);
        h->loop = ev_default_loop(EVFLAG_NOENV | EVFLAG_FORKCHECK);
        sigaction(SIGCHLD, &old, NULL);
    }
    else {
        h->loop = ev_loop_new(EVFLAG_NOENV | EVFLAG_FORKCHECK);
    }
    if (h->loop == NULL) {
        PyMem_RawFree(h);
        PyErr_SetString(PyExc_OSError, "could not create the libev loop");
        return NULL;
    }
    /* ev_async_start() below may need one more descriptor */
    if (fds_available(1) < 0) {
        ev_loop_destroy(h->loop);
        PyMem_RawFree(h);
        return NULL;
    }
    ev_set_userdata(h->loop, h);
    ev_set_loop_release_cb(h->loop, loop_release, loop_acquire);
    ev_async_init(&h->async, async_cb);
    ev_async_start(h->loop, &h->async);
    ev_unref(h->loop);          /* the async watcher keeps nothing alive */
    h->last_poll = slp_monotonic();
    sched_set_hub_state(ts, h);
    return h;
}

void
hub_wakeup(sched_thread *ts)
{
    hub_state *h = hub_of(ts);
    if (h != NULL)
        ev_async_send(h->loop, &h->async);
}

/* ------------------------------------------------------------------------
 * Timeout timers (Python type "_hub_timer").
 */
static PyTypeObject *HubTimer_Type;

static void
timer_stop_active(hub_timer *tm)
{
    if (tm->active) {
        ev_timer_stop(tm->h->loop, &tm->timer);
        tm->active = 0;
        tm->h->nactive--;
        sched_hub_keepalive(tm->h->ts, -1);  /* polled while armed */
    }
}

static void
hubtimer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    hub_timer *tm = (hub_timer *)((char *)w - offsetof(hub_timer, timer));
    (void)loop; (void)revents;
    /* non-repeating: libev has stopped it */
    tm->active = 0;
    tm->h->nactive--;
    sched_hub_keepalive(tm->h->ts, -1);
    tm->queued = 1;             /* the active reference becomes the queue's */
    tm->next_expired = tm->h->expired;
    tm->h->expired = tm;
}

static PyObject *
hubtimer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"seconds", "tasklet", "exception", NULL};
    double seconds;
    PyObject *target, *exc;
    sched_thread *ts;
    hub_state *h;
    hub_timer *tm;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "dOO:_hub_timer", kwlist,
                                     &seconds, &target, &exc))
        return NULL;
    if (!Tasklet_Check(target)) {
        PyErr_SetString(PyExc_TypeError, "tasklet expected");
        return NULL;
    }
    if (!PyExceptionInstance_Check(exc)) {
        PyErr_SetString(PyExc_TypeError, "exception instance expected");
        return NULL;
    }
    ts = sched_get();
    if (ts == NULL || (h = hub_get(ts)) == NULL)
        return NULL;
    if (((TaskletObject *)target)->ts != ts) {
        PyErr_SetString(PyExc_RuntimeError,
                        "a Timeout must target a tasklet of its own thread");
        return NULL;
    }
    tm = (hub_timer *)type->tp_alloc(type, 0);
    if (tm == NULL)
        return NULL;
    tm->h = h;
    tm->target = (TaskletObject *)Py_NewRef(target);
    tm->exc = Py_NewRef(exc);
    if (seconds < 0)
        seconds = 0;
    ev_now_update(h->loop);
    ev_timer_init(&tm->timer, hubtimer_cb, seconds, 0.);
    ev_set_priority(&tm->timer, EV_MINPRI);  /* I/O wins a tie */
    ev_timer_start(h->loop, &tm->timer);
    tm->active = 1;
    h->nactive++;
    sched_hub_keepalive(ts, 1);
    Py_INCREF(tm);              /* the active (then queued) reference */
    return (PyObject *)tm;
}

static void
expired_remove(hub_state *h, hub_timer *tm)
{
    hub_timer **p = &h->expired;
    while (*p != NULL) {
        if (*p == tm) {
            *p = tm->next_expired;
            tm->next_expired = NULL;
            return;
        }
        p = &(*p)->next_expired;
    }
}

/* Stop it; True if it was still pending (not yet delivered). */
static PyObject *
hubtimer_cancel(hub_timer *tm, PyObject *unused)
{
    int pending = tm->active || tm->queued;
    (void)unused;
    if (tm->active) {
        timer_stop_active(tm);
        Py_DECREF(tm);
    }
    else if (tm->queued) {
        expired_remove(tm->h, tm);
        tm->queued = 0;
        Py_DECREF(tm);
    }
    /* break the Timeout <-> timer cycle */
    Py_CLEAR(tm->exc);
    Py_CLEAR(tm->target);
    return PyBool_FromLong(pending);
}

static PyObject *
hubtimer_pending(hub_timer *tm, void *unused)
{
    (void)unused;
    return PyBool_FromLong(tm->active || tm->queued);
}

static void
hubtimer_dealloc(hub_timer *tm)
{
    /* only reached when neither active nor queued */
    PyTypeObject *tp = Py_TYPE(tm);
    Py_CLEAR(tm->exc);
    Py_CLEAR(tm->target);
    tp->tp_free((PyObject *)tm);
    Py_DECREF(tp);              /* a heap type: each instance holds one */
}

static PyMethodDef hubtimer_methods[] = {
    {"cancel", (PyCFunction)hubtimer_cancel, METH_NOARGS,
     "cancel($self, /)\n"
     "--\n"
     "\n"
     "Stop the timer; a no-op once it fired."},
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef hubtimer_getset[] = {
    {"pending", (getter)hubtimer_pending, NULL,
     "the timer is armed and has not fired", NULL},
    {NULL, NULL, NULL, NULL, NULL}
};

static PyType_Slot hubtimer_slots[] = {
    {Py_tp_new, hubtimer_new},
    {Py_tp_dealloc, hubtimer_dealloc},
    {Py_tp_methods, hubtimer_methods},
    {Py_tp_getset, hubtimer_getset},
    {0, NULL}
};

static PyType_Spec hubtimer_spec = {
    "stackless_compat._stackless._hub_timer", sizeof(hub_timer), 0,
    Py_TPFLAGS_DEFAULT, hubtimer_slots
};

/* Deliver expired Timeouts.  Returns -1 with the exception set when one
 * targets the current tasklet (it raises where that tasklet waits). */
static int
deliver_expired(sched_thread *ts, hub_state *h)
{
    int failed = 0;
    while (h->expired != NULL) {
        hub_timer *tm = h->expired;
        TaskletObject *t = tm->target;
        PyObject *exc = tm->exc;
        h->expired = tm->next_expired;
        tm->next_expired = NULL;
        tm->queued = 0;
        if (t == NULL || exc == NULL || tasklet_ts(t) != ts ||
            !tasklet_alive(t)) {
            Py_DECREF(tm);
            continue;
        }
        if (sched_throw_pending(t)) {
            /* A kill or throw is already on its way to t (pending, or
             * from another thread): it wins, the Timeout is dropped as if
             * the block it guards had been left.  (A channel waiter's
             * tempval is the value it sends.) */
            Py_DECREF(tm);
            continue;
        }
        if (t == ts->current) {
            if (!failed) {
                PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
                failed = 1;
            }
        }
        else {
            PyObject *bomb = bomb_new((PyObject *)Py_TYPE(exc), exc, NULL);
            if (bomb == NULL) {
                PyErr_WriteUnraisable((PyObject *)tm);
            }
            else {
                /* parked or not, the scheduler makes t runnable with the
                 * bomb (aborting its wait) */
                PyObject *r = sched_throw(t, bomb, 1, 0);
                if (r == NULL)
                    PyErr_WriteUnraisable((PyObject *)tm);
                Py_XDECREF(r);
            }
        }
        Py_DECREF(tm);
    }
    return failed ? -1 : 0;
}

/* After a poll: signals (main thread), then expired Timeouts. */
static int
after_poll(sched_thread *ts, hub_state *h)
{
    if (h->is_main && PyErr_CheckSignals() < 0) {
        TaskletObject *main = ts->main;
        if (ts->current != main && main != NULL) {
            /* KeyboardInterrupt & co. surface in the main tasklet. */
            PyObject *bomb = bomb_from_error(), *r;
            if (bomb == NULL)
                return -1;
            r = sched_throw(main, bomb, 1, 0);
            if (r == NULL)
                return -1;
            Py_DECREF(r);
        }
        else {
            return -1;
        }
    }
    if (h->expired != NULL)
        return deliver_expired(ts, h);
    return 0;
}

static int
hub_idle(sched_thread *ts)
{
    hub_state *h = hub_of(ts);
    if (h == NULL)
        return 0;
    if (h->lock_done != NULL) {
        /* lock waits granted by another thread (its sched_wake() ended
         * the scheduler's wait for other threads) */
        hub_lock_drain(h);
        return 1;
    }
    if (h->expired == NULL && h->nactive <= 0)
        return 0;               /* nothing could ever fire */
    h->polling = 1;
    h->soon_pos = NULL;
    if (h->expired == NULL)
        ev_run(h->loop, EVRUN_ONCE);
    h->soon_pos = NULL;
    h->last_poll = slp_monotonic();
    if (after_poll(ts, h) < 0) {
        h->polling = 0;
        return -1;
    }
    h->polling = 0;
    return 1;
}

void
hub_maybe_poll(sched_thread *ts)
{
    hub_state *h = hub_of(ts);
    if (h != NULL && h->lock_done != NULL)
        hub_lock_drain(h);
    if (h == NULL || h->nactive <= 0)
        return;
    /* A tasklet that keeps yielding must not starve I/O: poll without
     * blocking at most once a millisecond.  The GIL stays held: letting
     * go of it for a poll that does not wait bought nothing, and taking
     * it straight back each time counted as a GIL switch, so other
     * threads never asked for it and starved. */
    if (slp_monotonic() - h->last_poll < 1e-3)
        return;
    h->keep_gil = 1;
    h->soon_pos = NULL;
    ev_run(h->loop, EVRUN_NOWAIT);
    h->soon_pos = NULL;
    h->keep_gil = 0;
    h->last_poll = slp_monotonic();
}

int
hub_poll_fair(sched_thread *ts)
{
    hub_state *h = hub_of(ts);
    if (h == NULL)
        return 0;
    hub_maybe_poll(ts);
    if (h->expired != NULL)
        return deliver_expired(ts, h);
    return 0;
}

void
hub_run_soon(hub_state *h, TaskletObject *t)
{
    sched_thread *ts = h->ts;
    TaskletObject *pos = h->soon_pos != NULL ? h->soon_pos : ts->current;
    TaskletObject *ref;
    if (!(t->flags & TF_IN_RING) || !(pos->flags & TF_IN_RING) ||
        t == ts->current || t == pos)
        return;
    if (pos->next != t) {
        ref = ring_remove(ts, t);
        ring_insert_after(ts, pos, t);
        Py_DECREF(ref);     /* ring_insert_after took its own */
    }
    h->soon_pos = t;
    h->soon_count++;
}

int
hub_fair_point(void)
{
    sched_thread *ts = sched_peek();
    hub_state *h;
    unsigned long before;
    PyObject *r;
    if (ts == NULL || (h = hub_of(ts)) == NULL || h->nactive <= 0)
        return 0;
    if (slp_monotonic() - h->last_poll < 1e-3)
        return 0;
    before = h->soon_count;
    if (hub_poll_fair(ts) < 0)
        return -1;
    /* never from inside the scheduler (a finalizer doing I/O while it
     * picks the next tasklet), atomic, a switch_trap or the callback */
    if (h->soon_count == before || ts->current->next == ts->current ||
        (ts->current->flags & TF_ATOMIC) || sched_switch_refused(ts) ||
        sched_choosing(ts) || h->polling)
        return 0;
    r = sched_schedule(ts, Py_None, 0);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static void
hub_thread_end(sched_thread *ts)
{
    hub_state *h = hub_of(ts);
    if (h == NULL)
        return;
    sched_set_hub_state(ts, NULL);
    while (h->expired != NULL) {
        hub_timer *tm = h->expired;
        h->expired = tm->next_expired;
        tm->queued = 0;
        if (!slp_is_finalizing())
            Py_DECREF(tm);
    }
    hub_lock_thread_end(h);
    hub_wait_release(h);
    hub_dns_release(h);
    ev_async_stop(h->loop, &h->async);
    if (!h->is_main)
        ev_loop_destroy(h->loop);
    PyMem_RawFree(h->fds);
    PyMem_RawFree(h);
}

/* ------------------------------------------------------------------------
 * sleep()
 */
static PyObject *
hub_sleep(PyObject *m, PyObject *arg)
{
    sched_thread *ts = sched_get();
    double secs;
    (void)m;
    if (ts == NULL)
        return NULL;
    secs = PyFloat_AsDouble(arg);
    if (secs == -1.0 && PyErr_Occurred())
        return NULL;
    if (secs != secs) {
        PyErr_SetString(PyExc_ValueError, "Invalid value NaN (not a number)");
        return NULL;
    }
    if (secs < 0) {
        PyErr_SetString(PyExc_ValueError, "sleep length must be non-negative");
        return NULL;
    }
    if (secs == 0) {
        PyObject *r;
        hub_maybe_poll(ts);
        if (hub_of(ts) != NULL && hub_of(ts)->expired != NULL &&
            after_poll(ts, hub_of(ts)) < 0)
            return NULL;
        r = sched_schedule(ts, Py_None, 0);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
        Py_RETURN_NONE;
    }
    if (hub_wait_fd(ts, -1, 0, secs) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
hub_info(PyObject *m, PyObject *unused)
{
    sched_thread *ts = sched_get();
    hub_state *h;
    (void)m; (void)unused;
    if (ts == NULL || (h = hub_get(ts)) == NULL)
        return NULL;
    return Py_BuildValue("{s:i,s:i,s:n,s:n,s:i}",
                         "backend", (int)ev_backend(h->loop),
                         "active", (int)h->nactive,
                         "nparked", sched_nparked(ts),
                         "keepalive", sched_hub_keepalive_count(ts),
                         "iterations", (int)ev_iteration(h->loop));
}

/* os.register_at_fork(after_in_child=...): the forking thread's loop
 * gets fresh kernel state (epoll set, wake-up fd) before its next poll.
 * (c-ares channels re-create themselves when the pid changed.) */
static PyObject *
hub_after_fork(PyObject *m, PyObject *unused)
{
    sched_thread *ts = sched_peek();
    (void)m; (void)unused;
    if (ts != NULL && hub_of(ts) != NULL)
        ev_loop_fork(hub_of(ts)->loop);
    Py_RETURN_NONE;
}

/* True while this thread's scheduler is choosing what to run next (the
 * idle poll, where a signal handler runs from): Python code there must
 * not switch (patches/signal.py starts a tasklet instead). */
static PyObject *
hub_in_scheduler(PyObject *m, PyObject *unused)
{
    sched_thread *ts = sched_peek();
    hub_state *h;
    (void)m; (void)unused;
    if (ts == NULL)
        Py_RETURN_FALSE;
    h = hub_of(ts);
    return PyBool_FromLong(sched_choosing(ts) || (h != NULL && h->polling));
}

static PyMethodDef hub_methods[] = {
    {"_hub_after_fork", hub_after_fork, METH_NOARGS, NULL},
    {"_hub_in_scheduler", hub_in_scheduler, METH_NOARGS, NULL},
    {"sleep", hub_sleep, METH_O,
     "sleep($module, seconds, /)\n"
     "--\n"
     "\n"
     "Park the current tasklet for that many seconds (other tasklets run);\n"
     "sleep(0) is schedule()."},
    {"_hub_info", hub_info, METH_NOARGS,
     "_hub_info($module, /)\n"
     "--\n"
     "\n"
     "Return a dict describing this thread's hub (tests)."},
    {NULL, NULL, 0, NULL}
};

static const sched_hub_ops hub_ops = {
    .idle = hub_idle,
    .poll = hub_maybe_poll,
    .wake = hub_wakeup,
    .thread_end = hub_thread_end,
};

int
hub_module_init(PyObject *module)
{
    sched_thread *ts;
    if (PyModule_AddFunctions(module, hub_methods) < 0)
        return -1;
    HubTimer_Type = (PyTypeObject *)PyType_FromSpec(&hubtimer_spec);
    if (HubTimer_Type == NULL)
        return -1;
    if (PyModule_AddObjectRef(module, "_hub_timer",
                              (PyObject *)HubTimer_Type) < 0)
        return -1;
    if (hub_wait_module_init(module) < 0 || hub_sock_module_init(module) < 0)
        return -1;
    if (hub_dns_module_init(module) < 0 || hub_lock_module_init(module) < 0)
        return -1;
    sched_register_hub(&hub_ops);
    /* The importing thread's loop now, so its fds exist from the start. */
    ts = sched_get();
    if (ts == NULL || hub_get(ts) == NULL)
        return -1;
    return 0;
}
