/* Cooperative socket hot paths (docs/design.md, "The scheduler and the
 * hub"): recv, recv_into, send, sendall in C on the OS-non-blocking fd of a _socket.socket.  Try the
 * syscall (GIL held: it cannot block); on EAGAIN park on the fd until the
 * deadline; retry.  One syscall per recv/send in the steady state.
 *
 * The Python-visible timeout is the socket object's own sock_timeout
 * (None = -1, 0.0 = non-blocking, > 0 seconds), so gettimeout(), .timeout
 * and getblocking() are the stdlib's; the fd itself is always O_NONBLOCK
 * (patches/socket.py sets it, _sock_settimeout keeps it). */
#include "hub.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

/* The socket object's layout is mirrored in compat.h (it changes between
 * CPython versions; checked against __basicsize__ at init). */
typedef slp_sockobj hub_sockobj;

static PyTypeObject *SockType;    /* _socket.socket */
static PyObject *StdConnectEx;    /* _socket.socket.connect_ex */
static PyObject *StdAccept;       /* _socket.socket._accept */
static PyObject *Resolver;        /* patches/socket.py _resolve_addr */

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

/* One wait of a socket call that found its fd not ready: park until the
 * fd is ready for `events` or the call's deadline passes (the socket's
 * timeout in ns, < 0 for None, counted from the call's first wait; see
 * hub_deadline_left()).  *ts is looked up on the first wait.  Returns 0 to
 * try again, -1 with an exception (TimeoutError "timed out" at the
 * deadline, a kill or throw). */
static int
sock_wait(hub_sockobj *s, sched_thread **ts, int events, int64_t timeout_ns,
          double *deadline)
{
    double left = hub_deadline_left(deadline, timeout_ns > 0
                                    ? (double)timeout_ns * 1e-9 : -1);
    int r;
    if (left == 0) {
        sock_timeout_error();
        return -1;
    }
    if (*ts == NULL && (*ts = sched_get()) == NULL)
        return -1;
    r = hub_wait_fd(*ts, s->sock_fd, events, left);
    if (r < 0)
        return -1;
    if (r == 0) {
        sock_timeout_error();
        return -1;
    }
    return 0;
}

typedef ssize_t (*io_fn)(int fd, void *ctx);

/* A reader that found no data at its last recv() (a request/response
 * peer: after sending its answer it reads before the next request can have
 * arrived) waits for readiness first instead of trying a recv() that would
 * fail: the wait is level-triggered, so data already there wakes it at the
 * next poll.  A read that fills the buffer (a stream ahead of its reader)
 * goes back to trying first.  Returns the fd's slot or NULL. */
static hub_fdslot *
recv_slot(int fd)
{
    sched_thread *ts = sched_peek();
    hub_state *h = ts != NULL ? hub_of(ts) : NULL;
    if (h == NULL || fd < 0 || fd >= h->nfds)
        return NULL;
    return &h->fds[fd];
}

/* The stdlib's sock_call_ex() on the hub.  Returns the syscall's result,
 * or -1 with an exception.  wait_first: a blocking socket waits for
 * readiness before the first attempt (see recv_slot). */
static ssize_t
sock_io_ex(hub_sockobj *s, int writing, io_fn fn, void *ctx,
           double *deadline, int flags, int wait_first)
{
    sched_thread *ts = NULL;
    if (hub_fair_point() < 0)       /* due timers first (hub.c) */
        return -1;
    if (s->sock_timeout == 0 || (flags & MSG_DONTWAIT))
        wait_first = 0;
    for (;;) {
        ssize_t n;
        int err;
        if (wait_first) {
            wait_first = 0;
            err = EAGAIN;
            goto wait;
        }
        n = fn(s->sock_fd, ctx);
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
    wait:
        if (sock_wait(s, &ts, writing ? EV_WRITE : EV_READ, s->sock_timeout,
                      deadline) < 0)
            return -1;
    }
}

static ssize_t
sock_io(hub_sockobj *s, int writing, io_fn fn, void *ctx, double *deadline,
        int flags)
{
    return sock_io_ex(s, writing, fn, ctx, deadline, flags, 0);
}

typedef struct {
    char *buf;
    size_t len;
    int flags;
    int tries;          /* recv() attempts (do_recv) */
} io_ctx;

static ssize_t
do_recv(int fd, void *p)
{
    io_ctx *c = p;
    c->tries++;
    return recv(fd, c->buf, c->len, c->flags);
}

/* A recv() on the hub that learns whether its socket's reader should wait
 * first next time (recv_slot). */
static ssize_t
sock_recv_io(hub_sockobj *s, io_ctx *c, double *deadline)
{
    hub_fdslot *slot = recv_slot(s->sock_fd);
    ssize_t n;
    c->tries = 0;
    n = sock_io_ex(s, 0, do_recv, c, deadline, c->flags,
                   slot != NULL && slot->recv_waits && c->len > 0);
    if (n >= 0 && (slot = recv_slot(s->sock_fd)) != NULL)
        slot->recv_waits = c->tries > 1 || (slot->recv_waits &&
                                            (size_t)n < c->len);
    return n;
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
    *out = slp_long_as_int(args[i]);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* recv() of more than a small size reads into this buffer and copies out
 * what arrived: allocating the requested size (recv(65536) for a 64-byte
 * message) and shrinking it cost more than the syscall (glibc consolidates
 * its heap on every free of 64 KiB).  The GIL is held from the syscall to
 * the copy (the syscall never blocks), and a module that does not support
 * per-interpreter GILs has one GIL in the process, so one buffer serves
 * every thread. */
#define RECV_SCRATCH (64 * 1024)
#define RECV_SMALL 512
static char recv_scratch[RECV_SCRATCH];

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
    if (size > RECV_SMALL && size <= RECV_SCRATCH) {
        c.buf = recv_scratch;
        c.len = (size_t)size;
        n = sock_recv_io(s, &c, &deadline);
        if (n < 0)
            return NULL;
        return PyBytes_FromStringAndSize(recv_scratch, n);
    }
    buf = PyBytes_FromStringAndSize(NULL, size);
    if (buf == NULL)
        return NULL;
    c.buf = PyBytes_AS_STRING(buf);
    c.len = (size_t)size;
    n = sock_recv_io(s, &c, &deadline);
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
        int pos = slp_unicode_eq_ascii(k, "nbytes") ? 1 :
                  slp_unicode_eq_ascii(k, "flags") ? 2 :
                  slp_unicode_eq_ascii(k, "buffer") ? 0 : -1;
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
        c.flags = slp_long_as_int(a[2]);
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
    n = sock_recv_io(s, &c, &deadline);
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

/* ------------------------------------------------------------------------
 * accept and connect (the stdlib's sock_accept / internal_connect on the
 * hub).  AF_INET/AF_INET6 with numeric addresses never leave C; other
 * families and address forms make their non-blocking attempt through the
 * stdlib's own C code (its address parsing and errors), then wait here.
 */

static ssize_t
do_accept(int fd, void *p)
{
    struct sockaddr_storage *ss = p;
    socklen_t len = sizeof(*ss);
    int r;
    memset(ss, 0, sizeof(ss->ss_family));
    r = accept4(fd, (struct sockaddr *)ss, &len, SOCK_CLOEXEC);
    if (r >= 0 && len == 0)
        ss->ss_family = AF_UNSPEC;
    return r;
}

/* The stdlib's makesockaddr() for AF_INET/AF_INET6. */
static PyObject *
make_inet_addr(struct sockaddr_storage *ss)
{
    char buf[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        if (inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf)) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(si)", buf, ntohs(a->sin_port));
    }
    else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        if (inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf)) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(siII)", buf, ntohs(a->sin6_port),
                             ntohl(a->sin6_flowinfo), a->sin6_scope_id);
    }
}

/* _accept() -> (fd, address), as _socket.socket._accept, cooperative. */
static PyObject *
sock_accept(PyObject *self, PyObject *unused)
{
    hub_sockobj *s = (hub_sockobj *)self;
    struct sockaddr_storage ss;
    double deadline = 0;
    ssize_t fd;
    PyObject *addr, *r;
    sched_thread *ts = NULL;
    (void)unused;
    if (s->sock_family != AF_INET && s->sock_family != AF_INET6) {
        /* the stdlib's _accept (its makesockaddr) with timeout 0 */
        for (;;) {
            int64_t saved = s->sock_timeout;
            if (saved == 0)
                return PyObject_CallOneArg(StdAccept, self);
            s->sock_timeout = 0;
            r = PyObject_CallOneArg(StdAccept, self);
            s->sock_timeout = saved;
            if (r != NULL || !PyErr_ExceptionMatches(PyExc_BlockingIOError))
                return r;
            PyErr_Clear();
            if (sock_wait(s, &ts, EV_READ, saved, &deadline) < 0)
                return NULL;
        }
    }
    fd = sock_io(s, 0, do_accept, &ss, &deadline, 0);
    if (fd < 0)
        return NULL;
    if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
        addr = make_inet_addr(&ss);
    else
        addr = Py_NewRef(Py_None);
    if (addr == NULL) {
        close((int)fd);
        return NULL;
    }
    r = Py_BuildValue("(nN)", (Py_ssize_t)fd, addr);
    if (r == NULL)
        close((int)fd);
    return r;
}

/* A numeric (host, port[, flowinfo[, scope_id]]) for an AF_INET/AF_INET6
 * socket as a sockaddr, the way the stdlib's getsockaddrarg() reads it.
 * Returns 1 done, 0 not this fast path (no exception), -1 exception. */
static int
inet_sockaddr(hub_sockobj *s, PyObject *addr, struct sockaddr_storage *ss,
              socklen_t *len)
{
    PyObject *host;
    const char *h;
    Py_ssize_t n, hl;
    long port;
    if (!PyTuple_CheckExact(addr))
        return 0;
    n = PyTuple_GET_SIZE(addr);
    if (n < 2 || n > (s->sock_family == AF_INET ? 2 : 4))
        return 0;
    host = PyTuple_GET_ITEM(addr, 0);
    if (!PyUnicode_CheckExact(host) || !PyUnicode_IS_ASCII(host))
        return 0;
    h = PyUnicode_AsUTF8AndSize(host, &hl);
    if (h == NULL)
        return -1;
    if (hl == 0 || (Py_ssize_t)strlen(h) != hl || strchr(h, '%') != NULL)
        return 0;
    if (!PyLong_CheckExact(PyTuple_GET_ITEM(addr, 1)))
        return 0;
    port = PyLong_AsLong(PyTuple_GET_ITEM(addr, 1));
    if (port == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (port < 0 || port > 0xffff)
        return 0;
    memset(ss, 0, sizeof(*ss));
    if (s->sock_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        if (inet_pton(AF_INET, h, &a->sin_addr) != 1)
            return 0;
        a->sin_family = AF_INET;
        a->sin_port = htons((unsigned short)port);
        *len = sizeof(*a);
    }
    else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        unsigned long flowinfo = 0, scope_id = 0;
        if (n > 2) {
            if (!PyLong_CheckExact(PyTuple_GET_ITEM(addr, 2)))
                return 0;
            flowinfo = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(addr, 2));
            if (flowinfo == (unsigned long)-1 && PyErr_Occurred()) {
                PyErr_Clear();
                return 0;
            }
            if (flowinfo > 0xfffff)
                return 0;
        }
        if (n > 3) {
            if (!PyLong_CheckExact(PyTuple_GET_ITEM(addr, 3)))
                return 0;
            scope_id = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(addr, 3));
            if (scope_id == (unsigned long)-1 && PyErr_Occurred()) {
                PyErr_Clear();
                return 0;
            }
            if (scope_id > 0xffffffffUL)
                return 0;
        }
        if (inet_pton(AF_INET6, h, &a->sin6_addr) != 1)
            return 0;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((unsigned short)port);
        a->sin6_flowinfo = htonl((uint32_t)flowinfo);
        a->sin6_scope_id = (uint32_t)scope_id;
        *len = sizeof(*a);
    }
    return 1;
}

/* One non-blocking connect attempt.  Returns 0 or an errno value, or -1
 * with an exception. */
static int
connect_once(hub_sockobj *s, PyObject *addr)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fast = 0, err;
    PyObject *resolved = NULL;
    if (s->sock_family == AF_INET || s->sock_family == AF_INET6) {
        fast = inet_sockaddr(s, addr, &ss, &len);
        if (fast < 0)
            return -1;
        if (!fast && Resolver != NULL) {
            /* a host name: the cooperative resolver (numeric forms the
             * fast path does not take come back unchanged) */
            resolved = PyObject_CallFunctionObjArgs(Resolver, (PyObject *)s,
                                                    addr, NULL);
            if (resolved == NULL)
                return -1;
            addr = resolved;
            fast = inet_sockaddr(s, addr, &ss, &len);
            if (fast < 0) {
                Py_DECREF(resolved);
                return -1;
            }
        }
    }
    if (fast) {
        if (PySys_Audit("socket.connect", "OO", (PyObject *)s, addr) < 0) {
            Py_XDECREF(resolved);
            return -1;
        }
        Py_XDECREF(resolved);
        err = connect(s->sock_fd, (struct sockaddr *)&ss, len) < 0 ? errno : 0;
    }
    else {
        /* the stdlib's connect_ex (its address parsing) with timeout 0 */
        int64_t saved = s->sock_timeout;
        PyObject *r;
        s->sock_timeout = 0;
        r = PyObject_CallFunctionObjArgs(StdConnectEx, (PyObject *)s, addr,
                                         NULL);
        s->sock_timeout = saved;
        Py_XDECREF(resolved);
        if (r == NULL)
            return -1;
        err = slp_long_as_int(r);
        Py_DECREF(r);
        if (err == -1 && PyErr_Occurred())
            return -1;
    }
    if (err == EINTR && PyErr_CheckSignals() < 0)
        return -1;
    return err;
}

/* The stdlib's internal_connect(): 0 or an errno value; -1 with an
 * exception (TimeoutError "timed out" at the deadline). */
static int
connect_impl(hub_sockobj *s, PyObject *addr)
{
    sched_thread *ts = NULL;
    double deadline = 0;
    int err = connect_once(s, addr);
    if (err <= 0 || s->sock_timeout == 0)
        return err;
    for (;;) {
        socklen_t len = sizeof(err);
        if (err == EAGAIN || err == EWOULDBLOCK) {
            /* (AF_UNIX backlog full) a blocking socket waits and retries */
        }
        else if (err != EINPROGRESS && err != EALREADY && err != EINTR)
            return err;
        if (sock_wait(s, &ts, EV_WRITE, s->sock_timeout, &deadline) < 0)
            return -1;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            err = connect_once(s, addr);
            if (err <= 0)
                return err;
            continue;
        }
        if (getsockopt(s->sock_fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        if (err == EISCONN)
            return 0;
        if (err == EINTR) {
            if (PyErr_CheckSignals() < 0)
                return -1;
            continue;
        }
        if (err == EAGAIN || err == EWOULDBLOCK)
            err = EINPROGRESS;      /* keep waiting */
        else
            return err;
    }
}

/* _connect(address) -> 0 or errno; TimeoutError at the deadline (ssl.py's
 * connect uses it). */
static PyObject *
sock__connect(PyObject *self, PyObject *addr)
{
    int err = connect_impl((hub_sockobj *)self, addr);
    if (err < 0)
        return NULL;
    return PyLong_FromLong(err);
}

/* connect_ex(address) -> 0 or errno (EAGAIN on timeout, as the stdlib) */
static PyObject *
sock_connect_ex(PyObject *self, PyObject *addr)
{
    int err = connect_impl((hub_sockobj *)self, addr);
    if (err < 0) {
        if (!PyErr_ExceptionMatches(PyExc_TimeoutError))
            return NULL;
        PyErr_Clear();
        err = EWOULDBLOCK;
    }
    return PyLong_FromLong(err);
}

/* connect(address) */
static PyObject *
sock_connect(PyObject *self, PyObject *addr)
{
    int err = connect_impl((hub_sockobj *)self, addr);
    if (err < 0)
        return NULL;
    if (err > 0) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

/* _echo(): echo everything received until EOF, all in C on the hub (one
 * recv and one send per message, parking on EAGAIN exactly as recv() and
 * sendall() do).  The benchmarks' floor: a tasklet per connection with
 * no Python code in its loop (benchmarks/bench_echo.py, impl
 * stackless_compat-c).  Returns None at EOF. */
#define ECHO_BUF (16 * 1024)
static PyObject *
sock_echo(PyObject *self, PyObject *unused)
{
    hub_sockobj *s = (hub_sockobj *)self;
    char *buf = PyMem_Malloc(ECHO_BUF);
    ssize_t n;
    (void)unused;
    if (buf == NULL)
        return PyErr_NoMemory();
    for (;;) {
        io_ctx c;
        double deadline = 0;
        ssize_t off = 0;
        c.buf = buf;
        c.len = ECHO_BUF;
        c.flags = 0;
        n = sock_recv_io(s, &c, &deadline);
        if (n <= 0)
            break;
        while (off < n) {
            ssize_t k;
            c.buf = buf + off;
            c.len = (size_t)(n - off);
            deadline = 0;
            k = sock_io(s, 1, do_send, &c, &deadline, 0);
            if (k < 0)
                break;
            off += k;
        }
        if (off < n) {
            n = -1;
            break;
        }
    }
    PyMem_Free(buf);
    if (n < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef sock_methods[] = {
    {"_echo", sock_echo, METH_NOARGS,
     "_echo(): echo until EOF in C (the benchmarks' floor)"},
    {"_accept", sock_accept, METH_NOARGS,
     "_accept($self, /)\n"
     "--\n"
     "\n"
     "Accept a connection, parking the tasklet: (fd, address)."},
    {"_connect", sock__connect, METH_O,
     "_connect($self, address, /)\n"
     "--\n"
     "\n"
     "Connect, parking the tasklet: 0 or an errno; TimeoutError at the\n"
     "deadline."},
    {"connect", sock_connect, METH_O,
     "connect($self, address, /)\n"
     "--\n"
     "\n"
     "Connect, parking the tasklet until the connection is made."},
    {"connect_ex", sock_connect_ex, METH_O,
     "connect_ex($self, address, /)\n"
     "--\n"
     "\n"
     "Connect, parking the tasklet: 0 or an errno."},
    {"recv", (PyCFunction)(void (*)(void))sock_recv, METH_FASTCALL,
     "recv($self, bufsize, flags=0, /)\n"
     "--\n"
     "\n"
     "Receive up to bufsize bytes, parking the tasklet until data comes."},
    {"recv_into", (PyCFunction)(void (*)(void))sock_recv_into,
     METH_FASTCALL | METH_KEYWORDS,
     "recv_into($self, buffer, nbytes=0, flags=0)\n"
     "--\n"
     "\n"
     "Receive into buffer, parking the tasklet until data comes; returns\n"
     "the number of bytes received."},
    {"send", (PyCFunction)(void (*)(void))sock_send, METH_FASTCALL,
     "send($self, data, flags=0, /)\n"
     "--\n"
     "\n"
     "Send data, parking the tasklet until some can be sent; returns the\n"
     "number of bytes sent."},
    {"sendall", (PyCFunction)(void (*)(void))sock_sendall, METH_FASTCALL,
     "sendall($self, data, flags=0, /)\n"
     "--\n"
     "\n"
     "Send all of data, parking the tasklet whenever the socket is full."},
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

/* _sock_set_resolver(func): func(sock, address) -> address, for host names */
static PyObject *
py_sock_set_resolver(PyObject *m, PyObject *func)
{
    (void)m;
    Py_XSETREF(Resolver, func == Py_None ? NULL : Py_NewRef(func));
    Py_RETURN_NONE;
}

static PyMethodDef sock_module_methods[] = {
    {"_sock_set_resolver", py_sock_set_resolver, METH_O,
     "_sock_set_resolver($module, func, /)\n"
     "--\n"
     "\n"
     "Install func(sock, address) -> address, used for host names (None:\n"
     "none)."},
    {"_sock_nb", (PyCFunction)(void (*)(void))py_sock_nb, METH_FASTCALL,
     "_sock_nb($module, sock, func, /, *args)\n"
     "--\n"
     "\n"
     "func(sock, *args) with the socket's timeout at 0.0 (one non-blocking\n"
     "attempt)."},
    {"_sock_settimeout", (PyCFunction)(void (*)(void))py_sock_settimeout,
     METH_FASTCALL,
     "_sock_settimeout($module, sock, value, /)\n"
     "--\n"
     "\n"
     "The stdlib's settimeout(), the fd staying non-blocking."},
    {"_sock_setnonblock", py_sock_setnonblock, METH_O,
     "_sock_setnonblock($module, fd, /)\n"
     "--\n"
     "\n"
     "Put fd in non-blocking mode."},
    {"_sock_methods", py_sock_methods, METH_NOARGS,
     "_sock_methods($module, /)\n"
     "--\n"
     "\n"
     "Return {name: method descriptor} of the cooperative socket methods."},
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
    StdConnectEx = PyObject_GetAttrString((PyObject *)SockType, "connect_ex");
    if (StdConnectEx == NULL)
        return -1;
    StdAccept = PyObject_GetAttrString((PyObject *)SockType, "_accept");
    if (StdAccept == NULL)
        return -1;
    if (!PyType_Check(SockType) ||
        SockType->tp_basicsize != (Py_ssize_t)sizeof(hub_sockobj)) {
        PyErr_SetString(PyExc_ImportError,
                        "stackless_compat: unexpected _socket.socket layout");
        return -1;
    }
    return PyModule_AddFunctions(module, sock_module_methods);
}
