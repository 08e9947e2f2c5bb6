/* Cooperative socket hot paths (DESIGN.md §4): recv, recv_into, send,
 * sendall in C on the OS-non-blocking fd of a _socket.socket.  Try the
 * syscall (GIL held: it cannot block); on EAGAIN park on the fd until the
 * deadline; retry.  One syscall per recv/send in the steady state.
 *
 * The Python-visible timeout is the socket object's own sock_timeout
 * (None = -1, 0.0 = non-blocking, > 0 seconds), so gettimeout(), .timeout
 * and getblocking() are the stdlib's; the fd itself is always O_NONBLOCK
 * (patches/socket.py sets it, _sock_settimeout keeps it). */
#include "hub.h"

#include <errno.h>
#include <math.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

/* Modules/socketmodule.h of CPython 3.11 (checked against __basicsize__
 * at init). */
typedef struct {
    PyObject_HEAD
    int sock_fd;
    int sock_family;
    int sock_type;
    int sock_proto;
    PyObject *(*errorhandler)(void);
    int64_t sock_timeout;         /* _PyTime_t nanoseconds */
} hub_sockobj;

static PyTypeObject *SockType;    /* _socket.socket */

static double
mono_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static int
check_sock(PyObject *o)
{
    if (!PyObject_TypeCheck(o, SockType)) {
        PyErr_SetString(PyExc_TypeError, "a _socket.socket is required");
        return -1;
    }
    return 0;
}

static PyObject *
sock_timeout_error(void)
{
    PyErr_SetString(PyExc_TimeoutError, "timed out");
    return NULL;
}

typedef ssize_t (*io_fn)(int fd, void *ctx);

/* The stdlib's sock_call_ex() on the hub.  Returns the syscall's result,
 * or -1 with an exception. */
static ssize_t
sock_io(hub_sockobj *s, int writing, io_fn fn, void *ctx, double *deadline,
        int flags)
{
    sched_thread *ts = NULL;
    for (;;) {
        ssize_t n = fn(s->sock_fd, ctx);
        int err, r;
        double remaining = -1;
        if (n >= 0)
            return n;
        err = errno;
        if (err == EINTR) {
            if (PyErr_CheckSignals() < 0)
                return -1;
            continue;
        }
        /* MSG_DONTWAIT: one attempt, as the stdlib does */
        if ((err != EAGAIN && err != EWOULDBLOCK) || s->sock_timeout == 0 ||
            (flags & MSG_DONTWAIT)) {
            errno = err;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        if (s->sock_timeout > 0) {
            if (*deadline == 0)
                *deadline = mono_now() + (double)s->sock_timeout * 1e-9;
            remaining = *deadline - mono_now();
            if (remaining <= 0) {
                sock_timeout_error();
                return -1;
            }
        }
        if (ts == NULL && (ts = sched_get()) == NULL)
            return -1;
        r = hub_wait_fd(ts, s->sock_fd, writing ? EV_WRITE : EV_READ,
                        remaining);
        if (r < 0)
            return -1;
        if (r == 0) {
            sock_timeout_error();
            return -1;
        }
    }
}

typedef struct {
    char *buf;
    size_t len;
    int flags;
} io_ctx;

static ssize_t
do_recv(int fd, void *p)
{
    io_ctx *c = p;
    return recv(fd, c->buf, c->len, c->flags);
}

static ssize_t
do_send(int fd, void *p)
{
    io_ctx *c = p;
    return send(fd, c->buf, c->len, c->flags | MSG_NOSIGNAL);
}

static int
int_arg(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t i, int dflt,
        int *out)
{
    if (nargs <= i) {
        *out = dflt;
        return 0;
    }
    *out = _PyLong_AsInt(args[i]);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* recv(bufsize[, flags]) */
static PyObject *
sock_recv(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    hub_sockobj *s = (hub_sockobj *)self;
    Py_ssize_t size;
    PyObject *buf;
    io_ctx c;
    double deadline = 0;
    ssize_t n;
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "recv() takes 1 or 2 arguments");
        return NULL;
    }
    size = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
    if (size == -1 && PyErr_Occurred())
        return NULL;
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "negative buffersize in recv");
        return NULL;
    }
    if (int_arg(args, nargs, 1, 0, &c.flags) < 0)
        return NULL;
    buf = PyBytes_FromStringAndSize(NULL, size);
    if (buf == NULL)
        return NULL;
    c.buf = PyBytes_AS_STRING(buf);
    c.len = (size_t)size;
    n = sock_io(s, 0, do_recv, &c, &deadline, c.flags);
    if (n < 0) {
        Py_DECREF(buf);
        return NULL;
    }
    if (n != size)
        _PyBytes_Resize(&buf, n);
    return buf;
}

/* recv_into(buffer[, nbytes[, flags]]) */
static PyObject *
sock_recv_into(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    hub_sockobj *s = (hub_sockobj *)self;
    Py_buffer pb;
    Py_ssize_t nbytes = 0;
    PyObject *a[3] = {NULL, NULL, NULL};
    io_ctx c;
    double deadline = 0;
    ssize_t n;
    Py_ssize_t i, nk = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs < 1 || nargs + nk > 3) {
        PyErr_SetString(PyExc_TypeError, "recv_into() takes 1 to 3 arguments");
        return NULL;
    }
    for (i = 0; i < nargs; i++)
        a[i] = args[i];
    for (i = 0; i < nk; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        int pos = _PyUnicode_EqualToASCIIString(k, "nbytes") ? 1 :
                  _PyUnicode_EqualToASCIIString(k, "flags") ? 2 :
                  _PyUnicode_EqualToASCIIString(k, "buffer") ? 0 : -1;
        if (pos < 0 || a[pos] != NULL) {
            PyErr_SetString(PyExc_TypeError, "recv_into(): bad keyword argument");
            return NULL;
        }
        a[pos] = args[nargs + i];
    }
    if (a[1] != NULL) {
        nbytes = PyNumber_AsSsize_t(a[1], PyExc_OverflowError);
        if (nbytes == -1 && PyErr_Occurred())
            return NULL;
    }
    c.flags = 0;
    if (a[2] != NULL) {
        c.flags = _PyLong_AsInt(a[2]);
        if (c.flags == -1 && PyErr_Occurred())
            return NULL;
    }
    if (PyObject_GetBuffer(a[0], &pb, PyBUF_WRITABLE) < 0)
        return NULL;
    if (nbytes < 0) {
        PyBuffer_Release(&pb);
        PyErr_SetString(PyExc_ValueError, "negative buffersize in recv_into");
        return NULL;
    }
    if (nbytes == 0)
        nbytes = pb.len;
    if (pb.len < nbytes) {
        PyBuffer_Release(&pb);
        PyErr_SetString(PyExc_ValueError, "buffer too small for requested bytes");
        return NULL;
    }
    c.buf = pb.buf;
    c.len = (size_t)nbytes;
    n = sock_io(s, 0, do_recv, &c, &deadline, c.flags);
    PyBuffer_Release(&pb);
    if (n < 0)
        return NULL;
    return PyLong_FromSsize_t(n);
}

static int
send_args(PyObject *const *args, Py_ssize_t nargs, Py_buffer *pb, int *flags,
          const char *name)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes 1 or 2 arguments", name);
        return -1;
    }
    if (int_arg(args, nargs, 1, 0, flags) < 0)
        return -1;
    return PyObject_GetBuffer(args[0], pb, PyBUF_SIMPLE);
}

/* send(data[, flags]) */
static PyObject *
sock_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer pb;
    io_ctx c;
    double deadline = 0;
    ssize_t n;
    if (send_args(args, nargs, &pb, &c.flags, "send") < 0)
        return NULL;
    c.buf = pb.buf;
    c.len = (size_t)pb.len;
    n = sock_io((hub_sockobj *)self, 1, do_send, &c, &deadline, c.flags);
    PyBuffer_Release(&pb);
    if (n < 0)
        return NULL;
    return PyLong_FromSsize_t(n);
}

/* sendall(data[, flags]): the deadline covers the whole call. */
static PyObject *
sock_sendall(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer pb;
    io_ctx c;
    double deadline = 0;
    ssize_t n;
    char *p;
    size_t left;
    if (send_args(args, nargs, &pb, &c.flags, "sendall") < 0)
        return NULL;
    p = pb.buf;
    left = (size_t)pb.len;
    do {
        c.buf = p;
        c.len = left;
        n = sock_io((hub_sockobj *)self, 1, do_send, &c, &deadline, c.flags);
        if (n < 0) {
            PyBuffer_Release(&pb);
            return NULL;
        }
        p += n;
        left -= (size_t)n;
        if (left > 0 && PyErr_CheckSignals() < 0) {
            PyBuffer_Release(&pb);
            return NULL;
        }
    } while (left > 0);
    PyBuffer_Release(&pb);
    Py_RETURN_NONE;
}

static PyMethodDef sock_methods[] = {
    {"recv", (PyCFunction)(void (*)(void))sock_recv, METH_FASTCALL,
     "recv(bufsize[, flags]) -> data (cooperative)"},
    {"recv_into", (PyCFunction)(void (*)(void))sock_recv_into,
     METH_FASTCALL | METH_KEYWORDS,
     "recv_into(buffer[, nbytes[, flags]]) -> nbytes_read (cooperative)"},
    {"send", (PyCFunction)(void (*)(void))sock_send, METH_FASTCALL,
     "send(data[, flags]) -> count (cooperative)"},
    {"sendall", (PyCFunction)(void (*)(void))sock_sendall, METH_FASTCALL,
     "sendall(data[, flags]) (cooperative)"},
    {NULL, NULL, 0, NULL}
};

/* ------------------------------------------------------------------------
 * Module helpers for patches/socket.py.
 */
static int
set_nonblock(int fd)
{
    int on = 1;
    if (fd >= 0 && ioctl(fd, FIONBIO, &on) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* _sock_nb(sock, func, *args): func(sock, *args) with the socket's timeout
 * at 0.0, so the stdlib's C code makes one non-blocking attempt. */
static PyObject *
py_sock_nb(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    hub_sockobj *s;
    int64_t saved;
    PyObject *r;
    (void)m;
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "_sock_nb(sock, func, *args)");
        return NULL;
    }
    if (check_sock(args[0]) < 0)
        return NULL;
    s = (hub_sockobj *)args[0];
    saved = s->sock_timeout;
    s->sock_timeout = 0;
    {
        /* func(sock, *args[2:]) */
        PyObject *small[8];
        PyObject **v = small;
        Py_ssize_t i, n = nargs - 1;
        if (n > 8) {
            v = PyMem_Malloc((size_t)n * sizeof(PyObject *));
            if (v == NULL) {
                s->sock_timeout = saved;
                return PyErr_NoMemory();
            }
        }
        v[0] = args[0];
        for (i = 2; i < nargs; i++)
            v[i - 1] = args[i];
        r = PyObject_Vectorcall(args[1], v, (size_t)n, NULL);
        if (v != small)
            PyMem_Free(v);
    }
    s->sock_timeout = saved;
    return r;
}

/* _sock_settimeout(sock, value): the stdlib's settimeout(), but the fd
 * stays non-blocking. */
static PyObject *
py_sock_settimeout(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    hub_sockobj *s;
    int64_t ns = -1;
    (void)m;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_sock_settimeout(sock, value)");
        return NULL;
    }
    if (check_sock(args[0]) < 0)
        return NULL;
    s = (hub_sockobj *)args[0];
    if (args[1] != Py_None) {
        double d;
        if (!PyFloat_Check(args[1]) && !PyLong_Check(args[1]) &&
            !PyIndex_Check(args[1]) && Py_TYPE(args[1])->tp_as_number == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "'%.200s' object cannot be interpreted as an integer or float",
                         Py_TYPE(args[1])->tp_name);
            return NULL;
        }
        d = PyFloat_AsDouble(args[1]);
        if (d == -1.0 && PyErr_Occurred())
            return NULL;
        if (isnan(d)) {
            PyErr_SetString(PyExc_ValueError, "Invalid value NaN (not a number)");
            return NULL;
        }
        if (d < 0) {
            PyErr_SetString(PyExc_ValueError, "Timeout value out of range");
            return NULL;
        }
        if (d > 9.2e9) {
            PyErr_SetString(PyExc_OverflowError, "timeout doesn't fit into C timeval");
            return NULL;
        }
        ns = (int64_t)ceil(d * 1e9);
    }
    s->sock_timeout = ns;
    if (set_nonblock(s->sock_fd) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
py_sock_setnonblock(PyObject *m, PyObject *sock)
{
    (void)m;
    if (check_sock(sock) < 0)
        return NULL;
    if (set_nonblock(((hub_sockobj *)sock)->sock_fd) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* _sock_methods() -> {name: method descriptor of _socket.socket} */
static PyObject *
py_sock_methods(PyObject *m, PyObject *unused)
{
    PyObject *d = PyDict_New();
    PyMethodDef *def;
    (void)m; (void)unused;
    if (d == NULL)
        return NULL;
    for (def = sock_methods; def->ml_name != NULL; def++) {
        PyObject *descr = PyDescr_NewMethod(SockType, def);
        if (descr == NULL || PyDict_SetItemString(d, def->ml_name, descr) < 0) {
            Py_XDECREF(descr);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(descr);
    }
    return d;
}

static PyMethodDef sock_module_methods[] = {
    {"_sock_nb", (PyCFunction)(void (*)(void))py_sock_nb, METH_FASTCALL, NULL},
    {"_sock_settimeout", (PyCFunction)(void (*)(void))py_sock_settimeout,
     METH_FASTCALL, NULL},
    {"_sock_setnonblock", py_sock_setnonblock, METH_O, NULL},
    {"_sock_methods", py_sock_methods, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL}
};

int
hub_sock_module_init(PyObject *module)
{
    PyObject *mod = PyImport_ImportModule("_socket");
    if (mod == NULL)
        return -1;
    SockType = (PyTypeObject *)PyObject_GetAttrString(mod, "socket");
    Py_DECREF(mod);
    if (SockType == NULL)
        return -1;
    if (!PyType_Check(SockType) ||
        SockType->tp_basicsize != (Py_ssize_t)sizeof(hub_sockobj)) {
        PyErr_SetString(PyExc_ImportError,
                        "stackless_compat: unexpected _socket.socket layout");
        return -1;
    }
    return PyModule_AddFunctions(module, sock_module_methods);
}
