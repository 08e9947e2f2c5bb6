/* Name resolution on c-ares, driven by the thread's libev loop
 * (DESIGN.md §4 "DNS").  No resolver threads.
 *
 * - One ares channel per hub (per thread), created on first use and
 *   re-created when the process id changed (fork) or the configuration
 *   changed (dns_configure bumps a generation number).
 * - c-ares tells us which sockets it wants polled through its socket-state
 *   callback: each gets an ev_io watcher.  One ev_timer follows
 *   ares_timeout() for retransmits and query timeouts.
 * - A lookup puts a request on the heap, submits it and parks the caller
 *   with sched_park().  The c-ares callback stores the answer in the
 *   request (C memory only: no Python objects are made in callbacks) and
 *   unparks the tasklet, which turns the answer into Python objects.  If
 *   the tasklet is killed meanwhile, the abort function marks the request
 *   orphaned and the callback frees it when c-ares finally reports.
 * - Under a burst of submissions the replies queue up in the one UDP
 *   socket before anyone polls: its receive buffer is enlarged (forced
 *   when the process may) and the sockets are drained every few
 *   submissions, so that a burst never loses replies to a full buffer
 *   (which costs a whole retransmit timeout).
 *
 * Only the resolver primitives live here; stdlib-identical argument
 * handling is in patches/dns.py. */
#include "hub.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DNS_RCVBUF (4 * 1024 * 1024)
#define DNS_DRAIN_EVERY 16

/* Configuration shared by all threads (GIL held to read or write). */
static struct {
    char *servers;              /* "host[:port],..." or NULL: resolv.conf */
    int timeout_ms;             /* <= 0: system default */
    int tries;                  /* <= 0: system default */
    unsigned long generation;
} dns_conf;

static int ares_ready;

typedef struct dns_io {
    ev_io io;
    struct dns_chan *dc;
    struct dns_io *next;
} dns_io;

typedef struct dns_chan {
    ares_channel channel;
    hub_state *h;
    pid_t pid;
    unsigned long generation;
    dns_io *ios;
    ev_timer timer;
    Py_ssize_t pending;          /* submitted, callback not yet run */
    unsigned int since_drain;
} dns_chan;

enum { REQ_ADDRINFO, REQ_HOSTENT };

typedef struct dns_req {
    dns_chan *dc;
    TaskletObject *t;             /* borrowed while parked; NULL: orphaned */
    int done;                     /* the callback has run */
    int orphan;                   /* the caller left: the callback frees */
    int status;
    int counted;                  /* counts in h->nactive */
    int kind;
    struct ares_addrinfo *ai;     /* REQ_ADDRINFO answer (owned) */
    /* REQ_HOSTENT answer, deep-copied (c-ares frees its hostent) */
    char *h_name;
    char **h_aliases;
    int h_family;
    int h_naddrs;
    unsigned char (*h_addrs)[16];
} dns_req;

/* ------------------------------------------------------------------------
 * Errors: one table from c-ares statuses to what glibc's resolver gives,
 * as a getaddrinfo() code (socket.gaierror) and as an h_errno
 * (socket.herror).  Messages come from gai_strerror()/hstrerror(), as in
 * CPython's socketmodule.c.
 */
static const struct {
    int status, eai, herr;
} dns_errors[] = {
    {ARES_ENODATA,      EAI_NODATA,  NO_DATA},
    {ARES_EFORMERR,     EAI_FAIL,    NO_RECOVERY},
    {ARES_ESERVFAIL,    EAI_AGAIN,   TRY_AGAIN},
    {ARES_ENOTFOUND,    EAI_NONAME,  HOST_NOT_FOUND},
    {ARES_ENOTIMP,      EAI_FAIL,    NO_RECOVERY},
    {ARES_EREFUSED,     EAI_AGAIN,   TRY_AGAIN},
    {ARES_EBADQUERY,    EAI_NONAME,  HOST_NOT_FOUND},
    {ARES_EBADNAME,     EAI_NONAME,  HOST_NOT_FOUND},
    {ARES_EBADFAMILY,   EAI_FAMILY,  NO_RECOVERY},
    {ARES_EBADRESP,     EAI_FAIL,    NO_RECOVERY},
    {ARES_ECONNREFUSED, EAI_AGAIN,   TRY_AGAIN},
    {ARES_ETIMEOUT,     EAI_AGAIN,   TRY_AGAIN},
    {ARES_EOF,          EAI_FAIL,    NO_RECOVERY},
    {ARES_EFILE,        EAI_FAIL,    NO_RECOVERY},
    {ARES_ENOMEM,       EAI_MEMORY,  NO_RECOVERY},
    {ARES_EDESTRUCTION, EAI_AGAIN,   TRY_AGAIN},
    {ARES_EBADSTR,      EAI_NONAME,  HOST_NOT_FOUND},
    {ARES_EBADFLAGS,    EAI_BADFLAGS, NO_RECOVERY},
    {ARES_ENONAME,      EAI_NONAME,  HOST_NOT_FOUND},
    {ARES_EBADHINTS,    EAI_BADFLAGS, NO_RECOVERY},
    {ARES_ECANCELLED,   EAI_AGAIN,   TRY_AGAIN},
    {ARES_ESERVICE,     EAI_SERVICE, NO_RECOVERY},
};

static PyObject *
socket_exc(const char *name)
{
    PyObject *mod = PyImport_ImportModule("_socket"), *exc;
    if (mod == NULL)
        return NULL;
    exc = PyObject_GetAttrString(mod, name);
    Py_DECREF(mod);
    return exc;
}

/* Raise what CPython raises for this status: gaierror (as_herror == 0)
 * or herror. */
static PyObject *
dns_raise(int status, int as_herror)
{
    int eai = EAI_FAIL, herr = NO_RECOVERY;
    size_t i;
    PyObject *exc, *v;
    for (i = 0; i < sizeof(dns_errors) / sizeof(dns_errors[0]); i++) {
        if (dns_errors[i].status == status) {
            eai = dns_errors[i].eai;
            herr = dns_errors[i].herr;
            break;
        }
    }
    if (status == ARES_ENOMEM)
        return PyErr_NoMemory();
    exc = socket_exc(as_herror ? "herror" : "gaierror");
    if (exc == NULL)
        return NULL;
    if (as_herror)
        v = Py_BuildValue("(is)", herr, hstrerror(herr));
    else
        v = Py_BuildValue("(is)", eai, gai_strerror(eai));
    if (v != NULL) {
        PyErr_SetObject(exc, v);
        Py_DECREF(v);
    }
    Py_DECREF(exc);
    return NULL;
}

/* ------------------------------------------------------------------------
 * The channel and its watchers.
 */
static void
timer_update(dns_chan *dc)
{
    struct timeval tv, *tvp;
    struct ev_loop *loop = dc->h->loop;
    ev_timer_stop(loop, &dc->timer);
    tvp = ares_timeout(dc->channel, NULL, &tv);
    if (tvp != NULL) {
        ev_timer_set(&dc->timer, tvp->tv_sec + tvp->tv_usec * 1e-6, 0.);
        ev_timer_start(loop, &dc->timer);
    }
}

static void
io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    dns_io *di = (dns_io *)w;
    dns_chan *dc = di->dc;
    (void)loop;
    ares_process_fd(dc->channel,
                    (revents & EV_READ) ? w->fd : ARES_SOCKET_BAD,
                    (revents & EV_WRITE) ? w->fd : ARES_SOCKET_BAD);
    timer_update(dc);
}

static void
tmo_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    dns_chan *dc = (dns_chan *)((char *)w - offsetof(dns_chan, timer));
    (void)loop; (void)revents;
    ares_process_fd(dc->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    timer_update(dc);
}

static void
sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    dns_chan *dc = data;
    struct ev_loop *loop = dc->h->loop;
    dns_io **p = &dc->ios, *di;
    int events = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
    while (*p != NULL && (*p)->io.fd != fd)
        p = &(*p)->next;
    di = *p;
    if (events == 0) {
        if (di != NULL) {
            ev_io_stop(loop, &di->io);
            *p = di->next;
            PyMem_RawFree(di);
        }
        return;
    }
    if (di == NULL) {
        di = PyMem_RawCalloc(1, sizeof(*di));
        if (di == NULL)
            return;             /* the query will time out */
        di->dc = dc;
        di->next = dc->ios;
        dc->ios = di;
        ev_io_init(&di->io, io_cb, fd, events);
    }
    else {
        ev_io_stop(loop, &di->io);
        ev_io_set(&di->io, fd, events);
    }
    ev_io_start(loop, &di->io);
}

/* A large receive buffer for the UDP socket: forced past rmem_max when
 * the process may (CAP_NET_ADMIN), else as much as the kernel grants. */
static int
sock_config_cb(ares_socket_t fd, int type, void *data)
{
    int size = DNS_RCVBUF;
    (void)data;
    if (type == SOCK_DGRAM &&
        setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    return 0;
}

static void
chan_destroy(dns_chan *dc)
{
    /* Pending requests are answered with ARES_EDESTRUCTION; the socket
     * callbacks stop the watchers. */
    ares_destroy(dc->channel);
    while (dc->ios != NULL) {
        dns_io *di = dc->ios;
        dc->ios = di->next;
        ev_io_stop(dc->h->loop, &di->io);
        PyMem_RawFree(di);
    }
    ev_timer_stop(dc->h->loop, &dc->timer);
    PyMem_RawFree(dc);
}

static dns_chan *
chan_new(hub_state *h)
{
    struct ares_options opts;
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_SOCK_RCVBUF |
               ARES_OPT_LOOKUPS, status;
    dns_chan *dc;
    if (!ares_ready) {
        status = ares_library_init(ARES_LIB_INIT_ALL);
        if (status != ARES_SUCCESS)
            return (dns_chan *)dns_raise(status, 0);
        ares_ready = 1;
    }
    dc = PyMem_RawCalloc(1, sizeof(*dc));
    if (dc == NULL)
        return (dns_chan *)PyErr_NoMemory();
    dc->h = h;
    dc->pid = getpid();
    dc->generation = dns_conf.generation;
    ev_init(&dc->timer, tmo_cb);
    memset(&opts, 0, sizeof(opts));
    opts.sock_state_cb = sock_state_cb;
    opts.sock_state_cb_data = dc;
    opts.socket_receive_buffer_size = DNS_RCVBUF;
    /* DNS only: names and addresses of /etc/hosts never reach c-ares
     * (patches/dns.py gives them to libc), and c-ares would otherwise
     * open and parse /etc/hosts again for every query. */
    opts.lookups = (char *)"b";
    if (dns_conf.timeout_ms > 0) {
        opts.timeout = dns_conf.timeout_ms;
        mask |= ARES_OPT_TIMEOUTMS;
    }
    if (dns_conf.tries > 0) {
        opts.tries = dns_conf.tries;
        mask |= ARES_OPT_TRIES;
    }
    status = ares_init_options(&dc->channel, &opts, mask);
    if (status != ARES_SUCCESS) {
        PyMem_RawFree(dc);
        return (dns_chan *)dns_raise(status, 0);
    }
    ares_set_socket_configure_callback(dc->channel, sock_config_cb, NULL);
    if (dns_conf.servers != NULL) {
        status = ares_set_servers_ports_csv(dc->channel, dns_conf.servers);
        if (status != ARES_SUCCESS) {
            ares_destroy(dc->channel);
            PyMem_RawFree(dc);
            PyErr_Format(PyExc_ValueError, "bad DNS server list '%s': %s",
                         dns_conf.servers, ares_strerror(status));
            return NULL;
        }
    }
    return dc;
}

/* The current thread's channel, (re)created as needed. */
static dns_chan *
chan_get(sched_thread *ts)
{
    hub_state *h = hub_get(ts);
    dns_chan *dc;
    if (h == NULL)
        return NULL;
    dc = h->dns;
    if (dc != NULL && dc->pid != getpid()) {
        /* Forked: the sockets are shared with the parent.  Whatever the
         * child inherited as pending is answered with EDESTRUCTION. */
        h->dns = NULL;
        chan_destroy(dc);
        dc = NULL;
    }
    if (dc != NULL && dc->generation != dns_conf.generation) {
        h->dns = NULL;
        chan_destroy(dc);     /* in-flight lookups retry on the new one */
        dc = NULL;
    }
    if (dc == NULL) {
        dc = chan_new(h);
        h->dns = dc;
    }
    return dc;
}

void
hub_dns_release(hub_state *h)
{
    dns_chan *dc = h->dns;
    if (dc != NULL) {
        h->dns = NULL;
        chan_destroy(dc);
    }
}

/* ------------------------------------------------------------------------
 * Requests.
 */
static void
req_free(dns_req *r)
{
    int i;
    if (r->ai != NULL)
        ares_freeaddrinfo(r->ai);
    free(r->h_name);
    if (r->h_aliases != NULL) {
        for (i = 0; r->h_aliases[i] != NULL; i++)
            free(r->h_aliases[i]);
        free(r->h_aliases);
    }
    free(r->h_addrs);
    PyMem_RawFree(r);
}

static void
req_uncount(dns_req *r)
{
    if (r->counted) {
        r->counted = 0;
        r->dc->h->nactive--;
    }
}

/* Called by c-ares (inside ares_process_fd, ares_destroy or the submit
 * call itself).  Runs no Python code. */
/* Called by c-ares (inside ares_process_fd, ares_destroy or the submit
 * call itself) after the answer was stored.  Runs no Python code. */
static void
req_finish(dns_req *r, int status)
{
    r->done = 1;
    r->status = status;
    req_uncount(r);
    if (r->t != NULL)
        sched_unpark(r->t, Py_NewRef(Py_True));
}

/* ------------------------------------------------------------------------
 * Destination address ordering (RFC 6724 section 6), done here rather than
 * by c-ares: queries go out with ARES_AI_NOSORT, and an answer is sorted
 * only when it has two addresses or more.  c-ares' own sort opens, connects
 * and closes a UDP socket for every address, even for a single one: four
 * system calls per lookup for an order that cannot change.  The rules are
 * the ones glibc's getaddrinfo() applies, with its default policy table
 * and scopes (no /etc/gai.conf): 1 unusable destination (no route, found with a
 * connected UDP socket), 2 matching scope, 5 matching label, 6 precedence,
 * 8 smaller scope, 9 longest matching prefix (IPv6), 10 answer order.
 */
typedef struct {
    struct ares_addrinfo_node *n;
    int usable, order;
    struct sockaddr_storage src;
} sort_elem;

static int
v6_is(const struct in6_addr *a, const unsigned char *pfx, int bits)
{
    int i;
    for (i = 0; i < bits / 8; i++)
        if (a->s6_addr[i] != pfx[i])
            return 0;
    if (bits % 8)
        return ((a->s6_addr[i] ^ pfx[i]) & (0xff << (8 - bits % 8))) == 0;
    return 1;
}

/* glibc's default policy table (gai.conf(5) defaults, the RFC 3484 one):
 * precedence and label.  IPv4 is ::ffff:0:0/96, precedence 10. */
static void
addr_policy(const struct sockaddr *sa, int *prec, int *label)
{
    static const unsigned char v4mapped[12] = {0,0,0,0,0,0,0,0,0,0,0xff,0xff};
    static const unsigned char zero[12] = {0};
    static const unsigned char p6to4[2] = {0x20, 0x02};
    static const unsigned char teredo[4] = {0x20, 0x01, 0, 0};
    static const unsigned char ula[1] = {0xfc};
    static const unsigned char site[2] = {0xfe, 0xc0};
    const struct in6_addr *a;
    if (sa->sa_family != AF_INET6) {
        *prec = 10, *label = 4;
        return;
    }
    a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(a))
        *prec = 50, *label = 0;
    else if (v6_is(a, v4mapped, 96))
        *prec = 10, *label = 4;
    else if (v6_is(a, p6to4, 16))
        *prec = 30, *label = 2;
    else if (v6_is(a, zero, 96))
        *prec = 20, *label = 3;
    else if (v6_is(a, site, 10))
        *prec = 40, *label = 5;
    else if (v6_is(a, ula, 7))
        *prec = 40, *label = 6;
    else if (v6_is(a, teredo, 32))
        *prec = 40, *label = 7;
    else
        *prec = 40, *label = 1;
}

/* Scope as glibc gives it (IPv4: loopback and link-local 2, the private
 * ranges site-local 5, the rest global). */
static int
addr_scope(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_MULTICAST(a))
            return a->s6_addr[1] & 0x0f;
        if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_LINKLOCAL(a))
            return 2;
        if (IN6_IS_ADDR_SITELOCAL(a))
            return 5;
        return 14;
    }
    if (sa->sa_family == AF_INET) {
        uint32_t v = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        if ((v >> 24) == 127 || (v >> 16) == 0xa9fe)
            return 2;
        if ((v >> 24) == 10 || (v >> 20) == 0xac1 || (v >> 16) == 0xc0a8)
            return 5;
        return 14;
    }
    return 1;
}
static int
prefix_bits(const struct in6_addr *a, const struct in6_addr *b)
{
    int i, n = 0;
    for (i = 0; i < 16; i++) {
        unsigned x = a->s6_addr[i] ^ b->s6_addr[i];
        if (x == 0) {
            n += 8;
            continue;
        }
        while (!(x & 0x80)) {
            n++;
            x <<= 1;
        }
        break;
    }
    return n;
}

static int
sort_cmp(const void *p1, const void *p2)
{
    const sort_elem *e1 = p1, *e2 = p2;
    const struct sockaddr *d1 = e1->n->ai_addr, *d2 = e2->n->ai_addr;
    int s1, s2, m1, m2, l1, l2, pr1, pr2, sd1, sd2;
    if (e1->usable != e2->usable)                           /* rule 1 */
        return e2->usable - e1->usable;
    sd1 = addr_scope(d1);
    sd2 = addr_scope(d2);
    s1 = e1->usable ? addr_scope((const struct sockaddr *)&e1->src) : 1;
    s2 = e2->usable ? addr_scope((const struct sockaddr *)&e2->src) : 1;
    m1 = s1 == sd1;
    m2 = s2 == sd2;
    if (m1 != m2)                                           /* rule 2 */
        return m2 - m1;
    addr_policy(d1, &pr1, &l1);
    addr_policy(d2, &pr2, &l2);
    if (e1->usable) {
        int p, l;
        addr_policy((const struct sockaddr *)&e1->src, &p, &l);
        m1 = l == l1;
    }
    else
        m1 = l1 == 1;
    if (e2->usable) {
        int p, l;
        addr_policy((const struct sockaddr *)&e2->src, &p, &l);
        m2 = l == l2;
    }
    else
        m2 = l2 == 1;
    if (m1 != m2)                                           /* rule 5 */
        return m2 - m1;
    if (pr1 != pr2)                                         /* rule 6 */
        return pr2 - pr1;
    if (sd1 != sd2)                                         /* rule 8 */
        return sd1 - sd2;
    if (e1->usable && e2->usable && d1->sa_family == AF_INET6 &&
        d2->sa_family == AF_INET6) {                        /* rule 9 */
        int b1 = prefix_bits(&((const struct sockaddr_in6 *)&e1->src)->sin6_addr,
                             &((const struct sockaddr_in6 *)d1)->sin6_addr);
        int b2 = prefix_bits(&((const struct sockaddr_in6 *)&e2->src)->sin6_addr,
                             &((const struct sockaddr_in6 *)d2)->sin6_addr);
        if (b1 != b2)
            return b2 - b1;
    }
    return e1->order - e2->order;                           /* rule 10 */
}

/* The source address the kernel would pick for `dst`: 1, or 0 if none. */
static int
source_for(const struct sockaddr *dst, struct sockaddr_storage *src)
{
    socklen_t len = dst->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                : sizeof(struct sockaddr_in);
    int fd, ok = 0;
    if (dst->sa_family != AF_INET && dst->sa_family != AF_INET6)
        return 0;
    fd = socket(dst->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fd < 0)
        return 0;
    if (connect(fd, dst, len) == 0) {
        len = sizeof(*src);
        ok = getsockname(fd, (struct sockaddr *)src, &len) == 0;
    }
    close(fd);
    return ok;
}

static void
sort_nodes(struct ares_addrinfo *ai)
{
    struct ares_addrinfo_node *n;
    sort_elem *e;
    int count = 0, i;
    for (n = ai ? ai->nodes : NULL; n != NULL; n = n->ai_next)
        count++;
    if (count < 2)
        return;
    e = malloc((size_t)count * sizeof(*e));
    if (e == NULL)
        return;                 /* answer order */
    for (i = 0, n = ai->nodes; n != NULL; n = n->ai_next, i++) {
        e[i].n = n;
        e[i].order = i;
        e[i].usable = source_for(n->ai_addr, &e[i].src);
    }
    qsort(e, (size_t)count, sizeof(*e), sort_cmp);
    ai->nodes = e[0].n;
    for (i = 0; i < count - 1; i++)
        e[i].n->ai_next = e[i + 1].n;
    e[count - 1].n->ai_next = NULL;
    free(e);
}

static void
addrinfo_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    dns_req *r = arg;
    (void)timeouts;
    r->dc->pending--;
    r->ai = res;
    if (r->orphan) {
        req_free(r);
        return;
    }
    req_finish(r, status);
}

static char *
xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void
hostent_cb(void *arg, int status, int timeouts, struct hostent *he)
{
    dns_req *r = arg;
    (void)timeouts;
    r->dc->pending--;
    if (r->orphan) {
        req_free(r);
        return;
    }
    if (status == ARES_SUCCESS && he != NULL) {
        int n = 0, i, alen = he->h_length > 16 ? 16 : he->h_length;
        r->h_name = xstrdup(he->h_name ? he->h_name : "");
        r->h_family = he->h_addrtype;
        if (he->h_aliases != NULL)
            while (he->h_aliases[n] != NULL)
                n++;
        r->h_aliases = calloc((size_t)n + 1, sizeof(char *));
        if (r->h_aliases != NULL)
            for (i = 0; i < n; i++)
                r->h_aliases[i] = xstrdup(he->h_aliases[i]);
        n = 0;
        if (he->h_addr_list != NULL)
            while (he->h_addr_list[n] != NULL)
                n++;
        r->h_addrs = calloc((size_t)n + 1, 16);
        if (r->h_addrs != NULL) {
            for (i = 0; i < n; i++)
                memcpy(r->h_addrs[i], he->h_addr_list[i], (size_t)alen);
            r->h_naddrs = n;
        }
        if (r->h_name == NULL || r->h_aliases == NULL || r->h_addrs == NULL)
            status = ARES_ENOMEM;
    }
    else if (status == ARES_SUCCESS) {
        status = ARES_ENOTFOUND;
    }
    req_finish(r, status);
}

static void
req_abort(TaskletObject *t, void *arg)
{
    dns_req *r = arg;
    (void)t;
    /* Killed while resolving: c-ares still holds the request and will
     * call back; from now on the callback only frees it. */
    r->t = NULL;
    req_uncount(r);
    if (!r->done)
        r->orphan = 1;
}

/* After submitting: read replies that are already there when many
 * queries go out without the caller ever polling. */
static void
chan_drain(dns_chan *dc)
{
    dns_io *di, *next;
    if (++dc->since_drain < DNS_DRAIN_EVERY)
        return;
    dc->since_drain = 0;
    for (di = dc->ios; di != NULL; di = next) {
        next = di->next;        /* the callbacks may free di */
        if (di->io.events & EV_READ) {
            ares_process_fd(dc->channel, di->io.fd, ARES_SOCKET_BAD);
            break;              /* the list may have changed */
        }
    }
    timer_update(dc);
}

typedef void (*submit_fn)(dns_chan *dc, dns_req *r, void *arg);

/* Submit (via `submit`) and wait.  Returns the finished request (the
 * caller frees it), or NULL with an exception.  A channel destroyed under
 * the request (configuration change) is retried once on the new one. */
static dns_req *
req_run(int kind, submit_fn submit, void *arg)
{
    sched_thread *ts = sched_get();
    int attempt;
    if (ts == NULL)
        return NULL;
    for (attempt = 0; ; attempt++) {
        dns_chan *dc = chan_get(ts);
        dns_req *r;
        PyObject *v;
        if (dc == NULL)
            return NULL;
        r = PyMem_RawCalloc(1, sizeof(*r));
        if (r == NULL)
            return (dns_req *)PyErr_NoMemory();
        r->dc = dc;
        r->kind = kind;
        dc->pending++;
        submit(dc, r, arg);
        if (!r->done) {
            r->t = ts->current;
            r->counted = 1;
            dc->h->nactive++;
            chan_drain(dc);
            timer_update(dc);
        }
        if (!r->done) {
            v = sched_park(ts, req_abort, r);
            if (v == NULL) {
                /* Killed: either still pending (req_abort orphaned it,
                 * the callback frees it) or answered just before. */
                r->t = NULL;
                req_uncount(r);
                if (r->done)
                    req_free(r);
                else
                    r->orphan = 1;
                return NULL;
            }
            Py_DECREF(v);
        }
        r->t = NULL;
        if (r->status == ARES_EDESTRUCTION && attempt == 0 &&
            ts->hub != NULL && ((hub_state *)ts->hub)->dns != dc) {
            req_free(r);
            continue;
        }
        return r;
    }
}

/* ------------------------------------------------------------------------
 * _dns_getaddrinfo(host: bytes, family, flags) ->
 *     (canonname or None, [CNAME aliases], [(family, address, scope id)])
 * Addresses only: socket types, protocols and ports are the Python side's
 * (it takes them from libc so they are exactly the stdlib's).
 */
typedef struct {
    const char *host;
    struct ares_addrinfo_hints hints;
} gai_args;

static void
submit_gai(dns_chan *dc, dns_req *r, void *arg)
{
    gai_args *a = arg;
    ares_getaddrinfo(dc->channel, a->host, NULL, &a->hints, addrinfo_cb, r);
}

static PyObject *
py_dns_getaddrinfo(PyObject *m, PyObject *args)
{
    gai_args a;
    int family, flags;
    dns_req *r;
    PyObject *list = NULL, *canon = NULL, *aliases = NULL, *result = NULL;
    struct ares_addrinfo_node *n;
    (void)m;
    if (!PyArg_ParseTuple(args, "yii:_dns_getaddrinfo", &a.host, &family,
                          &flags))
        return NULL;
    memset(&a.hints, 0, sizeof(a.hints));
    a.hints.ai_family = family;
    a.hints.ai_flags = ARES_AI_NOSORT |
                       ((flags & AI_CANONNAME) ? ARES_AI_CANONNAME : 0);
    r = req_run(REQ_ADDRINFO, submit_gai, &a);
    if (r == NULL)
        return NULL;
    if (r->status != ARES_SUCCESS) {
        dns_raise(r->status, 0);
        goto done;
    }
    sort_nodes(r->ai);
    list = PyList_New(0);
    if (list == NULL)
        goto done;
    for (n = r->ai ? r->ai->nodes : NULL; n != NULL; n = n->ai_next) {
        char buf[INET6_ADDRSTRLEN];
        unsigned long scope = 0;
        const void *src;
        PyObject *item;
        if (n->ai_family == AF_INET) {
            src = &((struct sockaddr_in *)n->ai_addr)->sin_addr;
        }
        else if (n->ai_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)n->ai_addr;
            src = &s6->sin6_addr;
            scope = s6->sin6_scope_id;
        }
        else {
            continue;
        }
        if (inet_ntop(n->ai_family, src, buf, sizeof(buf)) == NULL)
            continue;
        item = Py_BuildValue("(isk)", n->ai_family, buf, scope);
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            goto done;
        }
        Py_DECREF(item);
    }
    aliases = PyList_New(0);
    if (aliases == NULL)
        goto done;
    if ((flags & AI_CANONNAME) && r->ai != NULL && r->ai->name != NULL) {
        /* the end of the CNAME chain, else the name asked for; the
         * aliases are the names of the chain, in order */
        const char *cn = r->ai->name;
        struct ares_addrinfo_cname *c;
        for (c = r->ai->cnames; c != NULL; c = c->next) {
            if (c->name != NULL)
                cn = c->name;
            if (c->alias != NULL) {
                PyObject *a = PyUnicode_DecodeASCII(c->alias, strlen(c->alias),
                                                    "surrogateescape");
                if (a == NULL || PyList_Append(aliases, a) < 0) {
                    Py_XDECREF(a);
                    goto done;
                }
                Py_DECREF(a);
            }
        }
        canon = PyUnicode_DecodeASCII(cn, strlen(cn), "surrogateescape");
    }
    else {
        canon = Py_NewRef(Py_None);
    }
    if (canon != NULL)
        result = PyTuple_Pack(3, canon, aliases, list);
done:
    Py_XDECREF(canon);
    Py_XDECREF(aliases);
    Py_XDECREF(list);
    req_free(r);
    return result;
}

/* ------------------------------------------------------------------------
 * Host entries: _dns_gethostbyname(host: bytes, family) and
 * _dns_gethostbyaddr(packed address: bytes) ->
 *     (name, [aliases], [address strings])  or herror.
 */
typedef struct {
    const char *host;
    const void *addr;
    int len;
    int family;
} he_args;

static void
submit_byname(dns_chan *dc, dns_req *r, void *arg)
{
    he_args *a = arg;
    ares_gethostbyname(dc->channel, a->host, a->family, hostent_cb, r);
}

static void
submit_byaddr(dns_chan *dc, dns_req *r, void *arg)
{
    he_args *a = arg;
    ares_gethostbyaddr(dc->channel, a->addr, a->len, a->family, hostent_cb, r);
}

static PyObject *
hostent_result(dns_req *r, int as_herror)
{
    PyObject *name = NULL, *aliases = NULL, *addrs = NULL, *result = NULL;
    int i;
    if (r->status != ARES_SUCCESS) {
        dns_raise(r->status, as_herror);
        goto done;
    }
    name = PyUnicode_DecodeASCII(r->h_name, strlen(r->h_name),
                                 "surrogateescape");
    aliases = PyList_New(0);
    addrs = PyList_New(0);
    if (name == NULL || aliases == NULL || addrs == NULL)
        goto done;
    for (i = 0; r->h_aliases[i] != NULL; i++) {
        PyObject *s = PyUnicode_DecodeASCII(r->h_aliases[i],
                                            strlen(r->h_aliases[i]),
                                            "surrogateescape");
        if (s == NULL || PyList_Append(aliases, s) < 0) {
            Py_XDECREF(s);
            goto done;
        }
        Py_DECREF(s);
    }
    for (i = 0; i < r->h_naddrs; i++) {
        char buf[INET6_ADDRSTRLEN];
        PyObject *s;
        if (inet_ntop(r->h_family, r->h_addrs[i], buf, sizeof(buf)) == NULL)
            continue;
        s = PyUnicode_FromString(buf);
        if (s == NULL || PyList_Append(addrs, s) < 0) {
            Py_XDECREF(s);
            goto done;
        }
        Py_DECREF(s);
    }
    result = PyTuple_Pack(3, name, aliases, addrs);
done:
    Py_XDECREF(name);
    Py_XDECREF(aliases);
    Py_XDECREF(addrs);
    req_free(r);
    return result;
}

static PyObject *
py_dns_gethostbyname(PyObject *m, PyObject *args)
{
    he_args a;
    int as_herror = 1;
    dns_req *r;
    (void)m;
    memset(&a, 0, sizeof(a));
    if (!PyArg_ParseTuple(args, "yi|p:_dns_gethostbyname", &a.host,
                          &a.family, &as_herror))
        return NULL;
    r = req_run(REQ_HOSTENT, submit_byname, &a);
    return r ? hostent_result(r, as_herror) : NULL;
}

static PyObject *
py_dns_gethostbyaddr(PyObject *m, PyObject *args)
{
    he_args a;
    Py_buffer buf;
    dns_req *r;
    (void)m;
    memset(&a, 0, sizeof(a));
    if (!PyArg_ParseTuple(args, "y*:_dns_gethostbyaddr", &buf))
        return NULL;
    if (buf.len != 4 && buf.len != 16) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "packed IPv4 or IPv6 address expected");
        return NULL;
    }
    a.addr = buf.buf;
    a.len = (int)buf.len;
    a.family = buf.len == 4 ? AF_INET : AF_INET6;
    r = req_run(REQ_HOSTENT, submit_byaddr, &a);
    PyBuffer_Release(&buf);
    return r ? hostent_result(r, 1) : NULL;
}

/* ------------------------------------------------------------------------
 * _dns_configure(servers, timeout, tries): None keeps the system's value
 * for that setting.  Every thread's channel is re-created on its next
 * lookup.  _dns_info() -> dict for tests.
 */
static PyObject *
py_dns_configure(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"servers", "timeout", "tries", NULL};
    PyObject *servers = Py_None, *timeout = Py_None, *tries = Py_None;
    char *s = NULL;
    int tmo_ms = 0, ntries = 0;
    (void)m;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOO:_dns_configure", kwlist,
                                     &servers, &timeout, &tries))
        return NULL;
    if (servers != Py_None) {
        const char *c = PyUnicode_AsUTF8(servers);
        if (c == NULL)
            return NULL;
        if (*c) {
            s = strdup(c);
            if (s == NULL)
                return PyErr_NoMemory();
        }
    }
    if (timeout != Py_None) {
        double d = PyFloat_AsDouble(timeout);
        if (d == -1 && PyErr_Occurred())
            goto fail;
        if (!(d > 0) || d > 86400) {
            PyErr_SetString(PyExc_ValueError, "DNS timeout must be in (0, 86400] seconds");
            goto fail;
        }
        tmo_ms = (int)(d * 1000 + 0.5);
        if (tmo_ms < 1)
            tmo_ms = 1;
    }
    if (tries != Py_None) {
        long l = PyLong_AsLong(tries);
        if (l == -1 && PyErr_Occurred())
            goto fail;
        if (l < 1 || l > 100) {
            PyErr_SetString(PyExc_ValueError, "DNS tries must be in [1, 100]");
            goto fail;
        }
        ntries = (int)l;
    }
    free(dns_conf.servers);
    dns_conf.servers = s;
    dns_conf.timeout_ms = tmo_ms;
    dns_conf.tries = ntries;
    dns_conf.generation++;
    Py_RETURN_NONE;
fail:
    free(s);
    return NULL;
}

static PyObject *
py_dns_info(PyObject *m, PyObject *unused)
{
    sched_thread *ts = sched_get();
    hub_state *h;
    dns_chan *dc;
    Py_ssize_t nios = 0;
    dns_io *di;
    (void)m; (void)unused;
    if (ts == NULL || (h = hub_get(ts)) == NULL)
        return NULL;
    dc = h->dns;
    if (dc != NULL)
        for (di = dc->ios; di != NULL; di = di->next)
            nios++;
    return Py_BuildValue("{s:O,s:n,s:n,s:s,s:i,s:i,s:k}",
                         "channel", dc ? Py_True : Py_False,
                         "pending", dc ? dc->pending : 0,
                         "sockets", nios,
                         "servers", dns_conf.servers ? dns_conf.servers : "",
                         "timeout_ms", dns_conf.timeout_ms,
                         "tries", dns_conf.tries,
                         "generation", dns_conf.generation);
}

static PyMethodDef dns_methods[] = {
    {"_dns_getaddrinfo", py_dns_getaddrinfo, METH_VARARGS, NULL},
    {"_dns_gethostbyname", py_dns_gethostbyname, METH_VARARGS, NULL},
    {"_dns_gethostbyaddr", py_dns_gethostbyaddr, METH_VARARGS, NULL},
    {"_dns_configure", (PyCFunction)(void (*)(void))py_dns_configure,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"_dns_info", py_dns_info, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL}
};

int
hub_dns_module_init(PyObject *module)
{
    return PyModule_AddFunctions(module, dns_methods);
}
