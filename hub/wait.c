/* Waits that park the caller: one fd in one direction and/or a timer
 * (hub_wait_fd), many fds at once (wait_many, for select/poll), the fd
 * close protocol (hub_cancel_fd), a wait for "some child exited" (the
 * child watcher, for os.wait()), and their Python API. */
#include "hub.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#define MAX_FREE_WAITS 256

static hub_wait *
wait_alloc(hub_state *h)
{
    hub_wait *w = h->free_waits;
    if (w != NULL) {
        h->free_waits = w->next_free;
    }
    else {
        w = PyMem_RawMalloc(sizeof(*w));
        if (w == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
    }
    memset(w, 0, sizeof(*w));
    w->h = h;
    return w;
}

static void
wait_free(hub_state *h, hub_wait *w)
{
    w->next_free = h->free_waits;
    h->free_waits = w;
}

static void child_thread_end(hub_state *h);

void
hub_wait_release(hub_state *h)
{
    while (h->free_waits != NULL) {
        hub_wait *w = h->free_waits;
        h->free_waits = w->next_free;
        PyMem_RawFree(w);
    }
    child_thread_end(h);
}

static int
fds_ensure(hub_state *h, int fd)
{
    if (fd >= h->nfds) {
        int n = h->nfds ? h->nfds : 64;
        hub_fdslot *p;
        while (n <= fd)
            n *= 2;
        p = PyMem_RawRealloc(h->fds, (size_t)n * sizeof(*p));
        if (p == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memset(p + h->nfds, 0, (size_t)(n - h->nfds) * sizeof(*p));
        h->fds = p;
        h->nfds = n;
    }
    return 0;
}

static hub_wait **
slot_of(hub_state *h, int fd, int events)
{
    return events == EV_READ ? &h->fds[fd].reader : &h->fds[fd].writer;
}

/* Stop everything the wait started; no Python code. */
static void
wait_stop(hub_wait *w)
{
    hub_state *h = w->h;
    if (ev_is_active(&w->io) || ev_is_pending(&w->io)) {
        hub_wait **slot = slot_of(h, w->io.fd, w->io.events & (EV_READ | EV_WRITE));
        if (*slot == w)
            *slot = NULL;
        ev_io_stop(h->loop, &w->io);
    }
    if (ev_is_active(&w->timer) || ev_is_pending(&w->timer))
        ev_timer_stop(h->loop, &w->timer);
    if (w->counted) {
        w->counted = 0;
        h->nactive--;
    }
}

static void
io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    hub_wait *w = (hub_wait *)io;   /* io is the first member */
    (void)loop; (void)revents;
    wait_stop(w);
    sched_unpark(w->t, Py_NewRef(Py_True));
}

static void
timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    hub_wait *w = (hub_wait *)((char *)tw - offsetof(hub_wait, timer));
    (void)loop; (void)revents;
    wait_stop(w);
    if (sched_unpark(w->t, Py_NewRef(Py_False)) == 0)
        hub_run_soon(w->h, w->t);
}

static void
wait_abort(TaskletObject *t, void *arg)
{
    (void)t;
    wait_stop((hub_wait *)arg);
}

int
hub_wait_fd(sched_thread *ts, int fd, int events, double timeout)
{
    hub_state *h = hub_get(ts);
    hub_wait *w;
    PyObject *r;
    int ready;
    if (h == NULL)
        return -1;
    /* Others are runnable: let due timers and ready fds join them first
     * (without this, the hub polled only once the queue ran dry). */
    if (ts->current->next != ts->current && hub_poll_fair(ts) < 0)
        return -1;
    if (fd >= 0) {
        hub_wait **slot;
        if (fds_ensure(h, fd) < 0)
            return -1;
        slot = slot_of(h, fd, events);
        if (*slot != NULL) {
            PyErr_Format(PyExc_RuntimeError,
                         "another tasklet is already waiting to %s fd %d",
                         events == EV_READ ? "read from" : "write to", fd);
            return -1;
        }
    }
    w = wait_alloc(h);
    if (w == NULL)
        return -1;
    w->t = ts->current;
    w->counted = 1;
    h->nactive++;
    if (fd >= 0) {
        ev_io_init(&w->io, io_cb, fd, events);
        ev_io_start(h->loop, &w->io);
        *slot_of(h, fd, events) = w;
    }
    if (timeout >= 0) {
        ev_now_update(h->loop);
        ev_timer_init(&w->timer, timer_cb, timeout, 0.);
        ev_set_priority(&w->timer, EV_MINPRI);
        ev_timer_start(h->loop, &w->timer);
    }
    r = sched_park(ts, wait_abort, w);
    /* Every path has stopped the watchers (callback, abort, close). */
    wait_free(h, w);
    if (r == NULL)
        return -1;
    ready = (r != Py_False);
    Py_DECREF(r);
    return ready;
}

int
hub_cancel_fd(sched_thread *ts, int fd)
{
    hub_state *h = hub_of(ts);
    int n = 0, i;
    if (h == NULL || fd < 0 || fd >= h->nfds)
        return 0;
    for (i = 0; i < 2; i++) {
        hub_wait *w = i ? h->fds[fd].writer : h->fds[fd].reader;
        PyObject *exc, *bomb;
        if (w == NULL)
            continue;
        wait_stop(w);
        exc = PyObject_CallFunction(PyExc_OSError, "is", EBADF,
                                    "File descriptor was closed in another tasklet");
        bomb = exc ? bomb_new((PyObject *)Py_TYPE(exc), exc, NULL) : NULL;
        Py_XDECREF(exc);
        if (bomb == NULL) {
            PyErr_Clear();
            bomb = Py_NewRef(Py_None);
        }
        sched_unpark(w->t, bomb);
        n++;
    }
    return n;
}

/* ------------------------------------------------------------------------
 * Many fds at once (select/poll): wakes when any is ready.
 */
typedef struct {
    ev_io io;
    int revents;
    struct many_wait *mw;
} many_io;

typedef struct many_wait {
    hub_state *h;
    TaskletObject *t;
    many_io *ios;
    Py_ssize_t n;
    ev_timer timer;
    int woken;
    int counted;
} many_wait;

static void
many_stop(many_wait *mw)
{
    Py_ssize_t i;
    for (i = 0; i < mw->n; i++)
        ev_io_stop(mw->h->loop, &mw->ios[i].io);
    ev_timer_stop(mw->h->loop, &mw->timer);
    if (mw->counted) {
        mw->counted = 0;
        mw->h->nactive--;
    }
}

static void
many_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    many_io *mi = (many_io *)io;
    many_wait *mw = mi->mw;
    (void)loop;
    mi->revents |= revents;
    if (!mw->woken) {
        mw->woken = 1;
        sched_unpark(mw->t, Py_NewRef(Py_True));
    }
}

static void
many_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    many_wait *mw = (many_wait *)((char *)tw - offsetof(many_wait, timer));
    (void)loop; (void)revents;
    if (!mw->woken) {
        mw->woken = 1;
        sched_unpark(mw->t, Py_NewRef(Py_False));
    }
}

static void
many_abort(TaskletObject *t, void *arg)
{
    (void)t;
    many_stop((many_wait *)arg);
}

/* A Python timeout argument: None is -1 (never), negatives are 0.
 * Returns 0, or -1 with an exception. */
static int
timeout_arg(PyObject *tmo, double *out)
{
    *out = -1;
    if (tmo == Py_None)
        return 0;
    *out = PyFloat_AsDouble(tmo);
    if (*out == -1 && PyErr_Occurred())
        return -1;
    if (*out < 0)
        *out = 0;
    return 0;
}

/* _wait_many(reads, writes, timeout) -> list of (fd, events) ready;
 * events: 1 readable, 2 writable.  Empty on timeout. */
static PyObject *
py_wait_many(PyObject *m, PyObject *args)
{
    PyObject *reads, *writes, *tmo = Py_None, *r, *result = NULL;
    Py_ssize_t nr, nw, i;
    sched_thread *ts;
    hub_state *h;
    many_wait *mw;
    double timeout = -1;
    (void)m;
    if (!PyArg_ParseTuple(args, "O!O!|O:_wait_many", &PyList_Type, &reads,
                          &PyList_Type, &writes, &tmo))
        return NULL;
    if (timeout_arg(tmo, &timeout) < 0)
        return NULL;
    ts = sched_get();
    if (ts == NULL || (h = hub_get(ts)) == NULL)
        return NULL;
    nr = PyList_GET_SIZE(reads);
    nw = PyList_GET_SIZE(writes);
    mw = PyMem_RawCalloc(1, sizeof(*mw));
    if (mw == NULL)
        return PyErr_NoMemory();
    mw->ios = PyMem_RawCalloc((size_t)(nr + nw + 1), sizeof(many_io));
    if (mw->ios == NULL) {
        PyMem_RawFree(mw);
        return PyErr_NoMemory();
    }
    mw->h = h;
    mw->t = ts->current;
    ev_timer_init(&mw->timer, many_timer_cb, timeout < 0 ? 0 : timeout, 0.);
    for (i = 0; i < nr + nw; i++) {
        PyObject *o = i < nr ? PyList_GET_ITEM(reads, i)
                             : PyList_GET_ITEM(writes, i - nr);
        int fd = slp_long_as_int(o);
        if (fd == -1 && PyErr_Occurred())
            goto done;
        if (fd < 0) {
            PyErr_SetString(PyExc_ValueError, "negative file descriptor");
            goto done;
        }
        ev_io_init(&mw->ios[i].io, many_io_cb, fd, i < nr ? EV_READ : EV_WRITE);
        ev_set_priority(&mw->ios[i].io, EV_MAXPRI);
        mw->ios[i].mw = mw;
        mw->n = i + 1;
    }
    for (i = 0; i < mw->n; i++)
        ev_io_start(h->loop, &mw->ios[i].io);
    mw->counted = 1;
    h->nactive++;
    if (timeout >= 0) {
        ev_now_update(h->loop);
        ev_timer_start(h->loop, &mw->timer);
    }
    r = sched_park(ts, many_abort, mw);
    many_stop(mw);
    if (r == NULL)
        goto done;
    Py_DECREF(r);
    result = PyList_New(0);
    if (result == NULL)
        goto done;
    for (i = 0; i < mw->n; i++) {
        int ev = mw->ios[i].revents;
        if (ev & (EV_READ | EV_WRITE)) {
            PyObject *item = Py_BuildValue("(ii)", mw->ios[i].io.fd,
                                           (ev & EV_READ ? 1 : 0) | (ev & EV_WRITE ? 2 : 0));
            if (item == NULL || PyList_Append(result, item) < 0) {
                Py_XDECREF(item);
                Py_CLEAR(result);
                goto done;
            }
            Py_DECREF(item);
        }
    }
done:
    PyMem_RawFree(mw->ios);
    PyMem_RawFree(mw);
    return result;
}

/* ------------------------------------------------------------------------
 * The child watcher: _wait_child() parks until some child of the process
 * may have exited (patches/os.py then looks with waitid(WNOWAIT) and reaps
 * what is its to reap).  One helper thread of our own (no Python thread
 * state, every signal blocked) waits in waitid(P_ALL, WEXITED | WNOWAIT)
 * when armed: it reaps nothing, so subprocess, os.system() and C libraries
 * keep their children, and no SIGCHLD handler is needed.  When waitid
 * returns (a zombie exists, or no child is left) it wakes every waiting
 * tasklet, in whatever thread, through an ev_async of the waiter's own
 * loop, and waits to be armed again -- or ends once nobody waits; a
 * waiter that found nothing to reap arms it before parking, so a child
 * exiting in between is still seen (waitid returns at once for an
 * existing zombie).  A helper left in waitid by a killed waiter ends
 * after the next child exits.
 *
 * cw_mutex guards the list, the arm flag and the helper's existence; a
 * waiter leaves the list under it before its ev_async is stopped and
 * freed, so the helper never sends to a freed watcher.
 */
typedef struct child_wait {
    ev_async async;               /* first member */
    hub_state *h;
    TaskletObject *t;             /* borrowed: parked */
    struct child_wait *next;      /* in cw_list */
    int linked;
    int counted;
} child_wait;

static pthread_mutex_t cw_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cw_cond = PTHREAD_COND_INITIALIZER;
static child_wait *cw_list;
static int cw_armed;
static int cw_started;            /* the helper thread exists */
static unsigned long cw_scans;    /* waitid calls returned (tests) */

/* Caller holds cw_mutex. */
static void
cw_send_all(void)
{
    child_wait *w;
    for (w = cw_list; w != NULL; w = w->next)
        ev_async_send(w->h->loop, &w->async);
}

static void *
child_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&cw_mutex);
    for (;;) {
        siginfo_t info;
        int r;
        while (!cw_armed && cw_list != NULL)
            pthread_cond_wait(&cw_cond, &cw_mutex);
        if (!cw_armed) {
            /* nobody waits: end (3.12+ warn at fork() while other threads
             * exist); the next arm starts a new helper */
            cw_started = 0;
            break;
        }
        cw_armed = 0;
        pthread_mutex_unlock(&cw_mutex);
        do {
            memset(&info, 0, sizeof(info));
            r = waitid(P_ALL, 0, &info, WEXITED | WNOWAIT);
        } while (r < 0 && errno == EINTR);
        pthread_mutex_lock(&cw_mutex);
        cw_scans++;
        cw_send_all();
    }
    pthread_mutex_unlock(&cw_mutex);
    return NULL;
}

/* Caller holds cw_mutex.  Returns 0, or an errno value. */
static int
cw_arm(void)
{
    cw_armed = 1;
    if (!cw_started) {
        pthread_t th;
        pthread_attr_t attr;
        sigset_t all, old;
        int err;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        err = pthread_create(&th, &attr, child_thread, NULL);
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (err != 0) {
            cw_armed = 0;
            return err;
        }
        cw_started = 1;
    }
    pthread_cond_signal(&cw_cond);
    return 0;
}

/* In the child after fork(): the helper thread is gone and the mutex may
 * have been held by it.  Waiters of the forking thread stay listed (the
 * next scan wakes them); the next arm starts a new helper. */
static void
cw_atfork_child(void)
{
    pthread_mutex_init(&cw_mutex, NULL);
    pthread_cond_init(&cw_cond, NULL);
    cw_started = 0;
    cw_armed = 0;
}

/* The thread ends (its loop goes) with child waits still listed (a
 * tasklet that survived the thread's kill): the helper must not send to
 * them any more. */
static void
child_thread_end(hub_state *h)
{
    child_wait **p;
    pthread_mutex_lock(&cw_mutex);
    p = &cw_list;
    while (*p != NULL) {
        child_wait *w = *p;
        if (w->h == h) {
            *p = w->next;
            w->next = NULL;
            w->linked = 0;
        }
        else {
            p = &w->next;
        }
    }
    if (cw_list == NULL)
        pthread_cond_signal(&cw_cond);
    pthread_mutex_unlock(&cw_mutex);
}

/* Stop the wait; its own thread, no Python code. */
static void
child_stop(child_wait *w)
{
    if (w->linked) {
        child_wait **p;
        pthread_mutex_lock(&cw_mutex);
        for (p = &cw_list; *p != NULL; p = &(*p)->next) {
            if (*p == w) {
                *p = w->next;
                break;
            }
        }
        if (cw_list == NULL)
            pthread_cond_signal(&cw_cond);      /* the helper may end */
        pthread_mutex_unlock(&cw_mutex);
        w->linked = 0;
        w->next = NULL;
    }
    if (ev_is_active(&w->async) || ev_is_pending(&w->async))
        ev_async_stop(w->h->loop, &w->async);
    if (w->counted) {
        w->counted = 0;
        w->h->nactive--;
    }
}

static void
child_async_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    child_wait *w = (child_wait *)a;    /* async is the first member */
    (void)loop; (void)revents;
    child_stop(w);
    sched_unpark(w->t, Py_NewRef(Py_True));
}

static void
child_abort(TaskletObject *t, void *arg)
{
    (void)t;
    child_stop((child_wait *)arg);
}

/* _wait_child(arm) -> None */
static PyObject *
py_wait_child(PyObject *m, PyObject *arg)
{
    sched_thread *ts;
    hub_state *h;
    child_wait *w;
    PyObject *r;
    int arm, err = 0;
    (void)m;
    arm = PyObject_IsTrue(arg);
    if (arm < 0)
        return NULL;
    ts = sched_get();
    if (ts == NULL || (h = hub_get(ts)) == NULL)
        return NULL;
    w = PyMem_RawCalloc(1, sizeof(*w));
    if (w == NULL)
        return PyErr_NoMemory();
    w->h = h;
    w->t = ts->current;
    ev_async_init(&w->async, child_async_cb);
    ev_set_priority(&w->async, EV_MAXPRI);
    ev_async_start(h->loop, &w->async);
    w->counted = 1;
    h->nactive++;
    pthread_mutex_lock(&cw_mutex);
    w->next = cw_list;
    cw_list = w;
    w->linked = 1;
    if (arm)
        err = cw_arm();
    pthread_mutex_unlock(&cw_mutex);
    if (err != 0) {
        child_stop(w);
        PyMem_RawFree(w);
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    r = sched_park(ts, child_abort, w);
    /* Every path has stopped the wait (callback or abort). */
    PyMem_RawFree(w);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

/* _child_notify(): wake every _wait_child() waiter (a child was reaped,
 * or a reservation ended: they look again). */
static PyObject *
py_child_notify(PyObject *m, PyObject *unused)
{
    (void)m; (void)unused;
    pthread_mutex_lock(&cw_mutex);
    cw_send_all();
    pthread_mutex_unlock(&cw_mutex);
    Py_RETURN_NONE;
}

/* _child_info() -> (waiters, helper started, scans) (tests) */
static PyObject *
py_child_info(PyObject *m, PyObject *unused)
{
    Py_ssize_t n = 0;
    int started;
    unsigned long scans;
    child_wait *w;
    (void)m; (void)unused;
    pthread_mutex_lock(&cw_mutex);
    for (w = cw_list; w != NULL; w = w->next)
        n++;
    started = cw_started;
    scans = cw_scans;
    pthread_mutex_unlock(&cw_mutex);
    return Py_BuildValue("(nik)", n, started, scans);
}

/* ------------------------------------------------------------------------
 * Python API: wait_read / wait_write / _cancel_fd
 */
int
hub_fd_from_object(PyObject *o)
{
    int fd = PyObject_AsFileDescriptor(o);
    return fd;
}

static PyObject *
raise_timeout(void)
{
    PyErr_SetString(PyExc_TimeoutError, "timed out");
    return NULL;
}

static PyObject *
py_wait(PyObject *args, PyObject *kwds, int events, const char *fmt)
{
    static char *kwlist[] = {"fd", "timeout", NULL};
    PyObject *fdo, *tmo = Py_None;
    double timeout = -1;
    sched_thread *ts;
    int fd, r;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, fmt, kwlist, &fdo, &tmo))
        return NULL;
    fd = hub_fd_from_object(fdo);
    if (fd < 0)
        return NULL;
    if (timeout_arg(tmo, &timeout) < 0)
        return NULL;
    ts = sched_get();
    if (ts == NULL)
        return NULL;
    r = hub_wait_fd(ts, fd, events, timeout);
    if (r < 0)
        return NULL;
    if (r == 0)
        return raise_timeout();
    Py_RETURN_NONE;
}

static PyObject *
py_wait_read(PyObject *m, PyObject *args, PyObject *kwds)
{
    (void)m;
    return py_wait(args, kwds, EV_READ, "O|O:wait_read");
}

static PyObject *
py_wait_write(PyObject *m, PyObject *args, PyObject *kwds)
{
    (void)m;
    return py_wait(args, kwds, EV_WRITE, "O|O:wait_write");
}

static PyObject *
py_cancel_fd(PyObject *m, PyObject *arg)
{
    sched_thread *ts = sched_get();
    int fd;
    (void)m;
    if (ts == NULL)
        return NULL;
    fd = slp_long_as_int(arg);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    return PyLong_FromLong(hub_cancel_fd(ts, fd));
}

static PyMethodDef wait_methods[] = {
    {"wait_read", (PyCFunction)(void (*)(void))py_wait_read,
     METH_VARARGS | METH_KEYWORDS,
     "wait_read($module, /, fd, timeout=None)\n"
     "--\n"
     "\n"
     "Park the current tasklet until fd (an int or an object with fileno())\n"
     "is readable; TimeoutError(\"timed out\") after timeout seconds."},
    {"wait_write", (PyCFunction)(void (*)(void))py_wait_write,
     METH_VARARGS | METH_KEYWORDS,
     "wait_write($module, /, fd, timeout=None)\n"
     "--\n"
     "\n"
     "Park the current tasklet until fd (an int or an object with fileno())\n"
     "is writable; TimeoutError(\"timed out\") after timeout seconds."},
    {"_wait_many", py_wait_many, METH_VARARGS,
     "_wait_many($module, reads, writes, timeout=None, /)\n"
     "--\n"
     "\n"
     "Park until one of the fds is ready; returns [(fd, events)], events 1\n"
     "readable, 2 writable; [] on timeout."},
    {"_cancel_fd", py_cancel_fd, METH_O,
     "_cancel_fd($module, fd, /)\n"
     "--\n"
     "\n"
     "Wake the tasklets waiting on fd with OSError(EBADF); returns how many."},
    {"_wait_child", py_wait_child, METH_O,
     "_wait_child($module, arm, /)\n"
     "--\n"
     "\n"
     "Park until some child may have exited (the child watcher's next scan\n"
     "if arm is true, else until _child_notify()); reaps nothing."},
    {"_child_notify", py_child_notify, METH_NOARGS,
     "_child_notify($module, /)\n"
     "--\n"
     "\n"
     "Wake every _wait_child() waiter, in whatever thread."},
    {"_child_info", py_child_info, METH_NOARGS,
     "_child_info($module, /)\n"
     "--\n"
     "\n"
     "(waiters, helper thread started, scans) of the child watcher (tests)."},
    {NULL, NULL, 0, NULL}
};

int
hub_wait_module_init(PyObject *module)
{
    static int atfork_done;
    if (!atfork_done) {
        int err = pthread_atfork(NULL, NULL, cw_atfork_child);
        if (err != 0) {
            errno = err;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        atfork_done = 1;
    }
    return PyModule_AddFunctions(module, wait_methods);
}
