/* Waits that park the caller: one fd in one direction and/or a timer
 * (hub_wait_fd), many fds at once (wait_many, for select/poll), the fd
 * close protocol (hub_cancel_fd), and their Python API. */
#include "hub.h"

#include <errno.h>

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

void
hub_wait_release(hub_state *h)
{
    while (h->free_waits != NULL) {
        hub_wait *w = h->free_waits;
        h->free_waits = w->next_free;
        PyMem_RawFree(w);
    }
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
    {NULL, NULL, 0, NULL}
};

int
hub_wait_module_init(PyObject *module)
{
    return PyModule_AddFunctions(module, wait_methods);
}
