/* Name resolution on c-ares, driven by the thread's libev loop
 * (docs/design.md, "The scheduler and the hub").  No resolver threads.
 *
 * - One ares channel per hub (per thread), created on first use and
 *   re-created when the process id changed (fork) or the configuration
 *   changed (dns_configure bumps a generation number).
 * - c-ares tells us which sockets it wants polled through its socket-state
 *   callback: each gets an ev_io watcher.  One ev_timer follows
 *   ares_timeout() for retransmits and query timeouts.
 * - Queries go out with ares_query() (A, AAAA, PTR), and the answers are
 *   parsed here, so that every outcome glibc tells apart (NXDOMAIN,
 *   NODATA, an answer without a usable record, SERVFAIL/REFUSED, ...)
 *   reaches the one error table.  The search list is walked here too, the
 *   way glibc's res_search() does, A and AAAA of one name together.
 * - A round (one name, one or two queries) puts a request on the heap,
 *   submits it and parks the caller with sched_park().  The c-ares
 *   callbacks parse each answer into the request (C memory only: no
 *   Python objects are made in callbacks); the last one unparks the
 *   tasklet, which turns the answers into Python objects.  If the tasklet
 *   is killed meanwhile, the abort function marks the request orphaned
 *   and the last callback frees it when c-ares finally reports.
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
#include <ctype.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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
    double try_timeout;          /* seconds: the shortest a send waits */
    int ndots;                   /* the search rules c-ares read from */
    int ndomains;                /* resolv.conf (and LOCALDOMAIN, */
    char **domains;              /* RES_OPTIONS) */
} dns_chan;

static void chan_free_search(dns_chan *dc);

/* One address of an answer. */
typedef struct {
    int family;                   /* AF_INET or AF_INET6 */
    unsigned char addr[16];
} dns_addr;

/* What one query brought back, parsed in the c-ares callback into C
 * memory (malloc; no Python objects). */
typedef struct {
    int type;                     /* DNS_T_A, DNS_T_AAAA or DNS_T_PTR */
    int status;                   /* ARES_*: ARES_SUCCESS means an answer
                                   * section came back, usable or not */
    int naddrs;
    dns_addr *addrs;              /* records of `type` for `name` */
    char *name;                   /* the end of the CNAME chain (the
                                   * owner of addrs), or the PTR target */
    char **aliases;               /* the chain before `name`, in order */
    int naliases;
} dns_ans;

struct dns_req;
typedef struct {
    struct dns_req *r;
    int idx;
} dns_slot;

/* A round: one name, one or two queries (A and AAAA, or PTR) in flight
 * together; it is done when every query has been answered. */
typedef struct dns_req {
    dns_chan *dc;
    TaskletObject *t;             /* borrowed while parked; NULL: orphaned */
    int done;                     /* every callback has run */
    int orphan;                   /* the caller left: the last callback frees */
    int counted;                  /* counts in h->nactive */
    int outstanding;              /* queries not called back yet */
    int destroyed;                /* a query ended with ARES_EDESTRUCTION */
    int nq;
    dns_slot slot[2];
    dns_ans ans[2];
} dns_req;

#define DNS_T_A 1
#define DNS_T_CNAME 5
#define DNS_T_PTR 12
#define DNS_T_AAAA 28
#define DNS_C_IN 1

/* ------------------------------------------------------------------------
 * Errors.  glibc's resolver reports every DNS outcome as an h_errno
 * value (what socket.herror carries); getaddrinfo() turns that into its
 * own code.  One table gives the h_errno for a c-ares status, as glibc
 * sets it for the same server reply (resolv/res_query.c,
 * resolv/res_send.c, resolv/nss_dns/dns-host.c):
 *
 * - NXDOMAIN: HOST_NOT_FOUND.  NOERROR without answer records: NO_DATA.
 * - SERVFAIL, REFUSED and NOTIMP make glibc try the next server; when
 *   every server answered so (or none answered, or the connection was
 *   refused) the lookup fails with TRY_AGAIN.  c-ares 1.18 skips such
 *   servers too, and when none is left reports ARES_ECONNREFUSED (so a
 *   SERVFAIL cannot be told from a REFUSED: the search list stops at
 *   both, where glibc goes on after a SERVFAIL).
 * - FORMERR and queries that cannot be built: NO_RECOVERY.
 * - An answer section without a usable record (a CNAME chain ending in a
 *   name with no record of the asked type, a PTR answer without PTR):
 *   NO_RECOVERY (DNS_NORECORD below), as glibc's answer parsers say.
 *
 * getaddrinfo (sysdeps/posix/getaddrinfo.c) gives EAI_AGAIN for
 * TRY_AGAIN, EAI_NODATA for NO_DATA and EAI_NONAME for everything else
 * (see gai_failure()).  Messages come from gai_strerror()/hstrerror(), as
 * in CPython's socketmodule.c.
 */
#define DNS_NORECORD (-1000)

static const struct {
    int status, herr;
} dns_errors[] = {
    {ARES_ENODATA,      NO_DATA},
    {ARES_ENOTFOUND,    HOST_NOT_FOUND},
    {ARES_ESERVFAIL,    TRY_AGAIN},
    {ARES_EREFUSED,     TRY_AGAIN},
    {ARES_ENOTIMP,      TRY_AGAIN},
    {ARES_ETIMEOUT,     TRY_AGAIN},
    {ARES_ECONNREFUSED, TRY_AGAIN},
    {ARES_EBADRESP,     TRY_AGAIN},     /* glibc ignores it and times out */
    {ARES_EDESTRUCTION, TRY_AGAIN},
    {ARES_ECANCELLED,   TRY_AGAIN},
    {ARES_EFORMERR,     NO_RECOVERY},
    {ARES_EBADNAME,     NO_RECOVERY},
    {ARES_EBADQUERY,    NO_RECOVERY},
    {DNS_NORECORD,      NO_RECOVERY},
};

static int
status_herr(int status)
{
    size_t i;
    for (i = 0; i < sizeof(dns_errors) / sizeof(dns_errors[0]); i++)
        if (dns_errors[i].status == status)
            return dns_errors[i].herr;
    return NO_RECOVERY;
}

/* getaddrinfo()'s view of a failed lookup of one family: EAI_AGAIN,
 * 1 ("no data": the name exists) or 0. */
static int
herr_nodata(int herr)
{
    return herr == TRY_AGAIN ? EAI_AGAIN : herr == NO_DATA;
}

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

/* Raise socket.gaierror(code) (as_herror == 0) or socket.herror(code),
 * with the C library's message. */
static PyObject *
dns_raise(int code, int as_herror)
{
    PyObject *exc, *v;
    exc = socket_exc(as_herror ? "herror" : "gaierror");
    if (exc == NULL)
        return NULL;
    if (as_herror)
        v = Py_BuildValue("(is)", code, hstrerror(code));
    else
        v = Py_BuildValue("(is)", code, gai_strerror(code));
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

/* timer_update() after a send or an answer, when it can matter.
 * ares_timeout() walks every pending query (c-ares 1.18), and this runs for
 * every lookup and every readable event.  c-ares gives a send at least one
 * try-timeout from now (later tries get longer ones), so a timer armed to
 * expire within one try-timeout is never late for a deadline that appeared
 * since; at worst it fires early, for a query that got its answer, and
 * tmo_cb re-arms it. */
static void
timer_maybe_update(dns_chan *dc)
{
    if (dc->try_timeout > 0 && ev_is_active(&dc->timer) &&
        ev_timer_remaining(dc->h->loop, &dc->timer) <= dc->try_timeout)
        return;
    timer_update(dc);
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
    timer_maybe_update(dc);
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
    chan_free_search(dc);
    PyMem_RawFree(dc);
}

static PyObject *
chan_error(int status)
{
    if (status == ARES_ENOMEM)
        return PyErr_NoMemory();
    PyErr_Format(PyExc_OSError, "c-ares: %s", ares_strerror(status));
    return NULL;
}

static void
chan_free_search(dns_chan *dc)
{
    int i;
    for (i = 0; i < dc->ndomains; i++)
        free(dc->domains[i]);
    free(dc->domains);
    dc->domains = NULL;
    dc->ndomains = 0;
}

/* Keep the search rules c-ares read (ndots, the search list): the
 * lookups walk the search list themselves, as glibc's res_search does. */
static int
chan_save_search(dns_chan *dc)
{
    struct ares_options o;
    int mask, i, status;
    dc->ndots = 1;
    memset(&o, 0, sizeof(o));
    status = ares_save_options(dc->channel, &o, &mask);
    if (status != ARES_SUCCESS)
        return status == ARES_ENOMEM ? -1 : 0;
    if (mask & ARES_OPT_NDOTS)
        dc->ndots = o.ndots;
    if ((mask & ARES_OPT_TIMEOUTMS) && o.timeout > 0)
        dc->try_timeout = o.timeout * 1e-3;
    if ((mask & ARES_OPT_DOMAINS) && o.ndomains > 0) {
        dc->domains = calloc((size_t)o.ndomains, sizeof(char *));
        if (dc->domains == NULL)
            goto nomem;
        for (i = 0; i < o.ndomains; i++) {
            dc->domains[i] = strdup(o.domains[i]);
            if (dc->domains[i] == NULL)
                goto nomem;
            dc->ndomains = i + 1;
        }
    }
    ares_destroy_options(&o);
    return 0;
nomem:
    ares_destroy_options(&o);
    chan_free_search(dc);
    return -1;
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
            return (dns_chan *)chan_error(status);
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
        return (dns_chan *)chan_error(status);
    }
    if (chan_save_search(dc) < 0) {
        ares_destroy(dc->channel);
        PyMem_RawFree(dc);
        return (dns_chan *)PyErr_NoMemory();
    }
    ares_set_socket_configure_callback(dc->channel, sock_config_cb, NULL);
    if (dns_conf.servers != NULL) {
        status = ares_set_servers_ports_csv(dc->channel, dns_conf.servers);
        if (status != ARES_SUCCESS) {
            ares_destroy(dc->channel);
            chan_free_search(dc);
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
ans_clear(dns_ans *a)
{
    int i;
    free(a->addrs);
    free(a->name);
    for (i = 0; i < a->naliases; i++)
        free(a->aliases[i]);
    free(a->aliases);
    a->addrs = NULL;
    a->name = NULL;
    a->aliases = NULL;
    a->naddrs = a->naliases = 0;
}

static void
req_free(dns_req *r)
{
    ans_clear(&r->ans[0]);
    ans_clear(&r->ans[1]);
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

/* Every query of the round has been answered.  Runs no Python code. */
static void
req_finish(dns_req *r)
{
    r->done = 1;
    req_uncount(r);
    if (r->t != NULL)
        sched_unpark(r->t, Py_NewRef(Py_True));
}

/* ------------------------------------------------------------------------
 * Host names and answers.
 */

static int
host_char(unsigned int c)
{
    return ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') ||
           ('A' <= c && c <= 'Z') || c == '-' || c == '_';
}

/* glibc's res_hnok(): printable ASCII making a valid domain name
 * (backslash escapes decoded, labels of 1 to 63 octets, 255 octets in
 * all), each label of letters, digits, '-' and '_', the first label not
 * starting with '-'.  glibc sends no query for a name that fails it. */
static int
host_name_ok(const char *s)
{
    const unsigned char *p;
    int label = 0, total = 1, first = 1;
    for (p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p > '~')
            return 0;
    p = (const unsigned char *)s;
    if (p[0] == '.' && p[1] == '\0')
        return 1;                           /* the root */
    while (*p) {
        unsigned int c = *p++;
        if (c == '.') {
            if (label == 0)
                return 0;                   /* empty label */
            total += label + 1;
            label = 0;
            first = 0;
            continue;
        }
        if (c == '\\') {
            if (isdigit(p[0]) && isdigit(p[1]) && isdigit(p[2])) {
                c = (p[0] - '0') * 100u + (p[1] - '0') * 10u + (p[2] - '0');
                if (c > 255)
                    return 0;
                p += 3;
            }
            else if (*p) {
                c = *p++;
            }
            else {
                return 0;                   /* dangling escape */
            }
        }
        if (!host_char(c) || (first && label == 0 && c == '-'))
            return 0;
        if (++label > 63)
            return 0;
    }
    if (label)
        total += label + 1;
    return total <= 255;
}

/* The name at `p` (a copy in malloc memory) and the octets it occupies. */
static int
get_name(const unsigned char *abuf, int alen, const unsigned char *p,
         char **name, long *len)
{
    char *s;
    int status = ares_expand_name(p, abuf, alen, &s, len);
    if (status != ARES_SUCCESS)
        return status;
    *name = strdup(s);
    ares_free_string(s);
    return *name == NULL ? ARES_ENOMEM : ARES_SUCCESS;
}

static int
ans_push_name(char ***v, int *n, char *name)
{
    char **nv = realloc(*v, ((size_t)*n + 1) * sizeof(char *));
    if (nv == NULL) {
        free(name);
        return ARES_ENOMEM;
    }
    nv[(*n)++] = name;
    *v = nv;
    return ARES_SUCCESS;
}

/* Parse the answer section the way glibc's nss_dns does: records of
 * another class are skipped; a CNAME makes its target the name the next
 * records must be for (and, if it is a host name, the canonical name);
 * an address record counts when it is for that name and of the right
 * size; for PTR, the first record for that name gives the host name.
 * The chain's names go to a->aliases, the last one to a->name.  Returns
 * ARES_SUCCESS (possibly with nothing usable), ARES_EBADRESP or
 * ARES_ENOMEM. */
static int
parse_answer(const unsigned char *abuf, int alen, dns_ans *a)
{
    const unsigned char *p, *end = abuf + alen;
    char *expected = NULL, *owner = NULL, **names = NULL;
    int nnames = 0, an, i, status;
    int size = a->type == DNS_T_A ? 4 : 16;
    long len;
    if (alen < 12 || (abuf[4] << 8 | abuf[5]) != 1)
        return ARES_EBADRESP;
    an = abuf[6] << 8 | abuf[7];
    p = abuf + 12;
    status = get_name(abuf, alen, p, &expected, &len);
    if (status != ARES_SUCCESS)
        return status;
    if (end - p < len + 4)
        goto bad;
    p += len + 4;
    if (!host_name_ok(expected))
        an = 0;                 /* glibc: not a host name, nothing usable */
    else if (a->type != DNS_T_PTR) {
        char *c = strdup(expected);
        if (c == NULL || ans_push_name(&names, &nnames, c) != ARES_SUCCESS)
            goto nomem;
    }
    for (; an > 0; an--) {
        int type, klass, rdlen;
        const unsigned char *rdata;
        free(owner);
        owner = NULL;
        status = get_name(abuf, alen, p, &owner, &len);
        if (status != ARES_SUCCESS)
            goto fail;
        if (end - p < len + 10)
            goto bad;
        p += len;
        type = p[0] << 8 | p[1];
        klass = p[2] << 8 | p[3];
        rdlen = p[8] << 8 | p[9];
        rdata = p + 10;
        if (end - rdata < rdlen)
            goto bad;
        p = rdata + rdlen;
        if (klass != DNS_C_IN)
            continue;
        if (type == DNS_T_CNAME) {
            char *target;
            status = get_name(abuf, alen, rdata, &target, &len);
            if (status != ARES_SUCCESS)
                goto fail;
            free(expected);
            expected = target;
            if (a->type != DNS_T_PTR && host_name_ok(target)) {
                char *c = strdup(target);
                if (c == NULL ||
                    ans_push_name(&names, &nnames, c) != ARES_SUCCESS)
                    goto nomem;
            }
        }
        else if (type == a->type && strcasecmp(owner, expected) == 0) {
            if (type == DNS_T_PTR) {
                if (!host_name_ok(expected))
                    break;              /* glibc: no usable answer */
                status = get_name(abuf, alen, rdata, &a->name, &len);
                if (status != ARES_SUCCESS)
                    goto fail;
                break;
            }
            if (rdlen == size) {
                dns_addr *v = realloc(a->addrs, ((size_t)a->naddrs + 1) *
                                                sizeof(dns_addr));
                if (v == NULL)
                    goto nomem;
                a->addrs = v;
                v[a->naddrs].family = size == 4 ? AF_INET : AF_INET6;
                memset(v[a->naddrs].addr, 0, 16);
                memcpy(v[a->naddrs].addr, rdata, (size_t)size);
                a->naddrs++;
            }
        }
    }
    if (nnames > 0) {
        a->name = names[--nnames];
        a->aliases = names;
        a->naliases = nnames;
        names = NULL;
        nnames = 0;
    }
    status = ARES_SUCCESS;
    goto done;
bad:
    status = ARES_EBADRESP;
    goto fail;
nomem:
    status = ARES_ENOMEM;
fail:
    ans_clear(a);
done:
    for (i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    free(expected);
    free(owner);
    return status;
}

/* Called by c-ares (inside ares_process_fd, ares_destroy or the submit
 * call itself).  Runs no Python code. */
static void
query_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    dns_slot *s = arg;
    dns_req *r = s->r;
    dns_ans *a = &r->ans[s->idx];
    (void)timeouts;
    r->dc->pending--;
    r->outstanding--;
    if (status == ARES_EDESTRUCTION)
        r->destroyed = 1;
    if (!r->orphan) {
        a->status = status;
        if (status == ARES_SUCCESS)
            a->status = abuf != NULL ? parse_answer(abuf, alen, a)
                                     : ARES_EBADRESP;
    }
    if (r->outstanding > 0)
        return;
    if (r->orphan) {
        req_free(r);
        return;
    }
    req_finish(r);
}

static void
req_abort(TaskletObject *t, void *arg)
{
    dns_req *r = arg;
    (void)t;
    /* Killed while resolving: c-ares still holds the queries and will
     * call back; from now on the last callback only frees the request. */
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
    timer_maybe_update(dc);
}

/* One round: `name` asked for each type of `types` at once. */
typedef struct {
    const char *name;
    int types[2];
    int nq;
} round_args;

static void
submit_round(dns_chan *dc, dns_req *r, const round_args *a)
{
    int i;
    r->nq = a->nq;
    r->outstanding = a->nq;     /* before any callback can run */
    for (i = 0; i < a->nq; i++) {
        r->slot[i].r = r;
        r->slot[i].idx = i;
        r->ans[i].type = a->types[i];
    }
    for (i = 0; i < a->nq; i++) {
        dc->pending++;
        ares_query(dc->channel, a->name, DNS_C_IN, a->types[i], query_cb,
                   &r->slot[i]);
    }
}

/* Submit a round and wait for it.  Returns the finished request (the
 * caller frees it), or NULL with an exception.  A channel destroyed under
 * the request (configuration change) is retried once on the new one. */
static dns_req *
req_run(sched_thread *ts, const round_args *a)
{
    int attempt;
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
        submit_round(dc, r, a);
        if (!r->done) {
            r->t = ts->current;
            r->counted = 1;
            dc->h->nactive++;
            chan_drain(dc);
            timer_maybe_update(dc);
        }
        if (!r->done) {
            v = sched_park(ts, req_abort, r);
            if (v == NULL) {
                /* Killed: either still pending (req_abort orphaned it,
                 * the last callback frees it) or answered just before. */
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
        if (r->destroyed && attempt == 0 &&
            hub_of(ts) != NULL && hub_of(ts)->dns != dc) {
            req_free(r);
            continue;
        }
        return r;
    }
}

/* ------------------------------------------------------------------------
 * Destination address ordering (RFC 6724 section 6), done here rather than
 * by c-ares, and only when an answer has two addresses or more (c-ares'
 * own sort opens, connects and closes a UDP socket for every address,
 * even for a single one: four system calls per lookup for an order that
 * cannot change).  The rules are
 * the ones glibc's getaddrinfo() applies, with its default policy table
 * and scopes (no /etc/gai.conf): 1 unusable destination (no route, found with a
 * connected UDP socket), 2 matching scope, 5 matching label, 6 precedence,
 * 8 smaller scope, 9 longest matching prefix (IPv6), 10 answer order.
 */
typedef struct {
    dns_addr a;
    int usable, order;
    struct sockaddr_storage dst, src;
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
    const struct sockaddr *d1 = (const struct sockaddr *)&e1->dst;
    const struct sockaddr *d2 = (const struct sockaddr *)&e2->dst;
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
sort_addrs(dns_addr *addrs, int count)
{
    sort_elem *e;
    int i;
    if (count < 2)
        return;
    e = malloc((size_t)count * sizeof(*e));
    if (e == NULL)
        return;                 /* answer order */
    for (i = 0; i < count; i++) {
        memset(&e[i].dst, 0, sizeof(e[i].dst));
        e[i].a = addrs[i];
        e[i].order = i;
        if (addrs[i].family == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&e[i].dst;
            s4->sin_family = AF_INET;
            memcpy(&s4->sin_addr, addrs[i].addr, 4);
        }
        else {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&e[i].dst;
            s6->sin6_family = AF_INET6;
            memcpy(&s6->sin6_addr, addrs[i].addr, 16);
        }
        e[i].usable = source_for((struct sockaddr *)&e[i].dst, &e[i].src);
    }
    qsort(e, (size_t)count, sizeof(*e), sort_cmp);
    for (i = 0; i < count; i++)
        addrs[i] = e[i].a;
    free(e);
}

/* ------------------------------------------------------------------------
 * The search list, as glibc's res_search() walks it: the name as given
 * first when it has ndots dots or more (or a trailing dot, and then only
 * that), then the name in each search domain, then the name as given if
 * not tried yet.  Going on after NXDOMAIN, NODATA and SERVFAIL, stopping
 * at an answer or at another failure.
 */

/* h_errno-like outcome of a finished round, as glibc's res_query() gives
 * it for the same replies: 0 when an answer section came back (usable or
 * not: that is the parser's business).  For A and AAAA asked together,
 * one answer section is enough; a query that failed (TRY_AGAIN) while the
 * other got a reply leaves the reply to decide; otherwise the A reply
 * decides unless it is NODATA. */
static int
round_herr(const dns_req *r, int *servfail, int *connrefused)
{
    const dns_ans *a = &r->ans[0], *b = &r->ans[1];
    int ha, hb;
    *servfail = *connrefused = 0;
    if (a->status == ARES_SUCCESS || (r->nq > 1 && b->status == ARES_SUCCESS))
        return 0;
    ha = status_herr(a->status);
    if (r->nq > 1) {
        hb = status_herr(b->status);
        if (ha == TRY_AGAIN && hb != TRY_AGAIN)
            return hb;
        if (ha != TRY_AGAIN && (hb == TRY_AGAIN || a->status != ARES_ENODATA))
            return ha;
        if (ha != TRY_AGAIN)
            return hb;
    }
    *servfail = a->status == ARES_ESERVFAIL;
    *connrefused = a->status == ARES_ECONNREFUSED;
    return ha;
}

static char *
join_name(const char *name, const char *domain)
{
    size_t n = strlen(name), d = strlen(domain);
    char *s = malloc(n + d + 2);
    if (s != NULL) {
        memcpy(s, name, n);
        s[n] = '.';
        memcpy(s + n + 1, domain, d + 1);
    }
    return s;
}

/* req_run(), with a reply that could not be stored for want of memory
 * made an exception. */
static dns_req *
round_run(sched_thread *ts, const round_args *a)
{
    dns_req *r = req_run(ts, a);
    int i;
    if (r == NULL)
        return NULL;
    for (i = 0; i < r->nq; i++) {
        if (r->ans[i].status == ARES_ENOMEM) {
            req_free(r);
            return (dns_req *)PyErr_NoMemory();
        }
    }
    return r;
}

/* One round of the search walk for `name`: the finished request (its
 * outcome in *herr), or NULL with an exception. */
static dns_req *
search_round(sched_thread *ts, round_args *a, const char *name, int *herr,
             int *last_tryagain, int *servfail, int *connrefused)
{
    dns_req *r;
    a->name = name;
    r = round_run(ts, a);
    if (r != NULL) {
        *herr = round_herr(r, servfail, connrefused);
        *last_tryagain = *herr == TRY_AGAIN;
    }
    return r;
}

/* Look `name` up with the search list, asking for `types` (one or two)
 * in each round.  Returns 1 with *out the answered round (the caller
 * frees it), 0 with *herr the failure, -1 with an exception.
 * *last_tryagain tells whether the last name tried failed with
 * TRY_AGAIN (no reply, or SERVFAIL/REFUSED from every server): glibc's
 * errno then says so, and its gethostbyname2_r() reports the failure
 * differently (see py_dns_getaddrinfo). */
static int
search(sched_thread *ts, const char *name, const int *types, int nq,
       dns_req **out, int *herr, int *last_tryagain)
{
    dns_chan *dc = chan_get(ts);
    round_args a;
    char **domains = NULL;
    const char *c;
    size_t n;
    int ndomains = 0, dots = 0, trailing, i, rc = 0, saved = -1;
    int got_nodata = 0, got_servfail = 0, tried_as_is = 0, root = 0;
    int servfail, connrefused;
    dns_req *r;
    if (dc == NULL)
        return -1;
    for (c = name; *c; c++)
        dots += *c == '.';
    n = strlen(name);
    trailing = n > 0 && name[n - 1] == '.';
    a.types[0] = types[0];
    a.types[1] = nq > 1 ? types[1] : 0;
    a.nq = nq;
    *out = NULL;
    *herr = HOST_NOT_FOUND;         /* if no query is made at all */
    *last_tryagain = 0;
    /* the channel may be re-created while we wait: copy its list */
    if (!trailing && dc->ndomains > 0) {
        domains = calloc((size_t)dc->ndomains, sizeof(char *));
        if (domains == NULL)
            goto nomem;
        for (i = 0; i < dc->ndomains; i++) {
            const char *d = dc->domains[i];
            if (d[0] == '.')
                d++;
            if (d[0] == '\0')
                root = 1;
            domains[i] = join_name(name, d);
            if (domains[i] == NULL)
                goto nomem;
            ndomains = i + 1;
        }
    }
    if (dots >= dc->ndots || trailing) {
        r = search_round(ts, &a, name, herr, last_tryagain, &servfail,
                         &connrefused);
        if (r == NULL)
            goto error;
        if (*herr == 0 || trailing)
            goto answered;
        req_free(r);
        saved = *herr;
        tried_as_is = 1;
    }
    for (i = 0; i < ndomains; i++) {
        r = search_round(ts, &a, domains[i], herr, last_tryagain,
                         &servfail, &connrefused);
        if (r == NULL)
            goto error;
        if (*herr == 0)
            goto answered;
        req_free(r);
        if (connrefused) {
            *herr = TRY_AGAIN;
            goto failed;
        }
        if (*herr == NO_DATA)
            got_nodata = 1;
        else if (*herr == TRY_AGAIN && servfail)
            got_servfail = 1;
        else if (*herr != HOST_NOT_FOUND)
            break;
    }
    if (!tried_as_is && !root) {
        r = search_round(ts, &a, name, herr, last_tryagain, &servfail,
                         &connrefused);
        if (r == NULL)
            goto error;
        if (*herr == 0)
            goto answered;
        req_free(r);
    }
    if (saved != -1)
        *herr = saved;
    else if (got_nodata)
        *herr = NO_DATA;
    else if (got_servfail)
        *herr = TRY_AGAIN;
    goto failed;
answered:
    if (*herr == 0) {
        *out = r;
        rc = 1;
    }
    else {
        req_free(r);
    }
    goto done;
nomem:
    PyErr_NoMemory();
error:
    rc = -1;
    goto done;
failed:
    rc = 0;
done:
    for (i = 0; i < ndomains; i++)
        free(domains[i]);
    free(domains);
    return rc;
}

/* ------------------------------------------------------------------------
 * _dns_getaddrinfo(host: bytes, family, flags, hostent=False) ->
 *     (canonname or None, [CNAME aliases], [(family, address, scope id)])
 *
 * Addresses only: socket types, protocols and ports are the Python side's
 * (it takes them from libc so they are exactly the stdlib's), so is
 * AI_ADDRCONFIG (it passes the family that leaves).  What glibc's
 * getaddrinfo() does with the DNS (sysdeps/posix/getaddrinfo.c and
 * resolv/nss_dns/dns-host.c):
 *
 * - AF_UNSPEC: A and AAAA asked together; the A addresses, then the AAAA
 *   ones.  AF_INET / AF_INET6: that type only.  AF_INET6 with
 *   AI_V4MAPPED: AAAA, then (if there was none, or with AI_ALL) A, the
 *   IPv4 addresses given as ::ffff:a.b.c.d; without AI_ALL, AAAA records
 *   that are themselves v4-mapped are dropped when real ones exist.
 * - The name must be a host name (res_hnok), else EAI_NONAME with no
 *   query -- except for one family with AI_CANONNAME, where glibc asks
 *   anyway and rejects the name in the answer.
 * - No address at all: EAI_AGAIN if each family asked failed with
 *   TRY_AGAIN, EAI_NODATA if each one failed with NO_DATA or TRY_AGAIN,
 *   else EAI_NONAME (NXDOMAIN, or an answer without a usable record:
 *   a CNAME chain ending in a name without that type).
 * - Two addresses or more are put in RFC 6724 order (sort_addrs); not
 *   for hostent=True (gethostbyname_ex: glibc's gethostbyname_r keeps
 *   the answer order).
 */
typedef struct {
    dns_addr *v;
    int n;
    char *canon;                  /* borrowed from an answer */
    dns_ans *names;               /* the answer giving canon and aliases */
} gai_out;

static int
gai_take(gai_out *o, dns_ans *ans, int map, int drop_mapped)
{
    int i;
    dns_addr *v;
    if (ans->naddrs == 0)
        return 0;
    v = realloc(o->v, ((size_t)o->n + (size_t)ans->naddrs) * sizeof(*v));
    if (v == NULL)
        return -1;
    o->v = v;
    for (i = 0; i < ans->naddrs; i++) {
        dns_addr *d = &v[o->n];
        const dns_addr *s = &ans->addrs[i];
        if (map && s->family == AF_INET) {
            d->family = AF_INET6;
            memset(d->addr, 0, 10);
            d->addr[10] = d->addr[11] = 0xff;
            memcpy(d->addr + 12, s->addr, 4);
        }
        else if (drop_mapped && s->family == AF_INET6 &&
                 IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)s->addr)) {
            continue;
        }
        else {
            *d = *s;
        }
        o->n++;
    }
    if (o->names == NULL) {
        o->names = ans;
        o->canon = ans->name;
    }
    return 0;
}

static int
gai_failure(int nodata_a, int nodata_b)
{
    if (nodata_a && nodata_b)
        return (nodata_a == EAI_AGAIN && nodata_b == EAI_AGAIN) ? EAI_AGAIN
                                                              : EAI_NODATA;
    return EAI_NONAME;
}

static PyObject *
gai_result(gai_out *o, int want_names, int sort)
{
    PyObject *list = NULL, *aliases = NULL, *canon = NULL, *result = NULL;
    int i;
    if (sort)
        sort_addrs(o->v, o->n);
    list = PyList_New(0);
    aliases = PyList_New(0);
    if (list == NULL || aliases == NULL)
        goto done;
    for (i = 0; i < o->n; i++) {
        char buf[INET6_ADDRSTRLEN];
        PyObject *item;
        if (inet_ntop(o->v[i].family, o->v[i].addr, buf, sizeof(buf)) == NULL)
            continue;
        item = Py_BuildValue("(isk)", o->v[i].family, buf, 0UL);
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            goto done;
        }
        Py_DECREF(item);
    }
    if (want_names && o->names != NULL && o->canon != NULL) {
        for (i = 0; i < o->names->naliases; i++) {
            const char *s = o->names->aliases[i];
            PyObject *a = PyUnicode_DecodeASCII(s, (Py_ssize_t)strlen(s),
                                                "surrogateescape");
            if (a == NULL || PyList_Append(aliases, a) < 0) {
                Py_XDECREF(a);
                goto done;
            }
            Py_DECREF(a);
        }
        canon = PyUnicode_DecodeASCII(o->canon, (Py_ssize_t)strlen(o->canon),
                                      "surrogateescape");
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
    return result;
}

static PyObject *
py_dns_getaddrinfo(PyObject *m, PyObject *args)
{
    static const int a_aaaa[2] = {DNS_T_A, DNS_T_AAAA};
    static const int aaaa[1] = {DNS_T_AAAA}, a_only[1] = {DNS_T_A};
    const char *host;
    int family, flags, hostent = 0, want_names, rc, herr, nd1 = 0, nd2 = 0;
    int eai = 0, i, last_t = 0;
    sched_thread *ts;
    dns_req *r1 = NULL, *r2 = NULL;
    gai_out o;
    PyObject *result = NULL;
    (void)m;
    if (!PyArg_ParseTuple(args, "yii|p:_dns_getaddrinfo", &host, &family,
                          &flags, &hostent))
        return NULL;
    if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6) {
        PyErr_SetString(PyExc_ValueError, "AF_UNSPEC, AF_INET or AF_INET6");
        return NULL;
    }
    ts = sched_get();
    if (ts == NULL)
        return NULL;
    memset(&o, 0, sizeof(o));
    want_names = hostent || (flags & AI_CANONNAME);
    if (!(family != AF_UNSPEC && (flags & AI_CANONNAME) && !hostent) &&
        !host_name_ok(host))
        return dns_raise(EAI_NONAME, 0);
    if (family == AF_UNSPEC) {
        rc = search(ts, host, a_aaaa, 2, &r1, &herr, &last_t);
        if (rc < 0)
            goto done;
        if (rc == 0) {
            nd1 = nd2 = herr_nodata(herr);
        }
        else {
            for (i = 0; i < 2; i++)
                if (gai_take(&o, &r1->ans[i], 0, 0) < 0)
                    goto nomem;
        }
    }
    else {
        int map = family == AF_INET6 && (flags & AI_V4MAPPED);
        int got6;
        rc = search(ts, host, family == AF_INET ? a_only : aaaa, 1, &r1,
                    &herr, &last_t);
        if (rc < 0)
            goto done;
        if (rc == 0)
            nd1 = nd2 = herr_nodata(herr);
        got6 = rc == 1 && family == AF_INET6 && r1->ans[0].naddrs > 0;
        if (rc == 1 && gai_take(&o, &r1->ans[0], 0,
                                got6 && map && !(flags & AI_ALL)) < 0)
            goto nomem;
        if (map && ((flags & AI_ALL) || !got6)) {
            rc = search(ts, host, a_only, 1, &r2, &herr, &last_t);
            if (rc < 0)
                goto done;
            if (rc == 0)
                nd2 = herr_nodata(herr);
            else {
                nd2 = 0;
                if (gai_take(&o, &r2->ans[0], 1, 0) < 0)
                    goto nomem;
            }
        }
    }
    if (o.n == 0) {
        if (family == AF_INET && !(flags & AI_CANONNAME)) {
            /* glibc takes its gethostbyname2_r() path: a failure with
             * the resolver in trouble (an answer without a usable
             * record, or no reply to the last query) is EAI_AGAIN for
             * TRY_AGAIN, else EAI_NODATA; a plain negative answer is
             * EAI_NODATA for NO_DATA, else EAI_NONAME. */
            if (rc == 1)
                eai = EAI_NODATA;
            else if (last_t)
                eai = herr == TRY_AGAIN ? EAI_AGAIN : EAI_NODATA;
            else
                eai = herr == NO_DATA ? EAI_NODATA : EAI_NONAME;
        }
        else {
            eai = gai_failure(nd1, nd2);
        }
    }
    if (eai != 0)
        dns_raise(eai, 0);
    else
        result = gai_result(&o, want_names, !hostent);
    goto done;
nomem:
    PyErr_NoMemory();
done:
    free(o.v);
    if (r1 != NULL)
        req_free(r1);
    if (r2 != NULL)
        req_free(r2);
    return result;
}

/* ------------------------------------------------------------------------
 * _dns_gethostbyaddr(packed address: bytes) ->
 *     (name, [], [address], family)  or socket.herror.
 *
 * As glibc's nss_dns (_nss_dns_gethostbyaddr2_r): a v4-mapped or
 * v4-compatible IPv6 address is looked up as the IPv4 address, and the
 * entry is then an AF_INET one (the family tells the caller); one PTR
 * query for the in-addr.arpa / ip6.arpa name, no search list; the first
 * PTR record gives the name, never aliases.  The h_errno of a failure
 * comes from the status table.
 */
static PyObject *
py_dns_gethostbyaddr(PyObject *m, PyObject *args)
{
    static const unsigned char mapped[12] = {0,0,0,0,0,0,0,0,0,0,0xff,0xff};
    static const unsigned char compat[12] = {0};
    static const unsigned char one[4] = {0, 0, 0, 1};
    static const char hexd[] = "0123456789abcdef";
    Py_buffer buf;
    const unsigned char *u;
    char qname[80], *q, text[INET6_ADDRSTRLEN];
    int len, family, herr, servfail, connrefused, i;
    sched_thread *ts;
    round_args a;
    dns_req *r;
    PyObject *result = NULL;
    (void)m;
    if (!PyArg_ParseTuple(args, "y*:_dns_gethostbyaddr", &buf))
        return NULL;
    if (buf.len != 4 && buf.len != 16) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "packed IPv4 or IPv6 address expected");
        return NULL;
    }
    u = buf.buf;
    len = (int)buf.len;
    family = len == 4 ? AF_INET : AF_INET6;
    if (len == 16 && (memcmp(u, mapped, 12) == 0 ||
                      (memcmp(u, compat, 12) == 0 &&
                       memcmp(u + 12, one, 4) != 0))) {
        u += 12;
        len = 4;
        family = AF_INET;
    }
    if (family == AF_INET) {
        snprintf(qname, sizeof(qname), "%u.%u.%u.%u.in-addr.arpa",
                 u[3], u[2], u[1], u[0]);
    }
    else {
        for (q = qname, i = 15; i >= 0; i--) {
            *q++ = hexd[u[i] & 0xf];
            *q++ = '.';
            *q++ = hexd[u[i] >> 4];
            *q++ = '.';
        }
        strcpy(q, "ip6.arpa");
    }
    if (inet_ntop(family, u, text, sizeof(text)) == NULL)
        text[0] = '\0';
    PyBuffer_Release(&buf);
    ts = sched_get();
    if (ts == NULL)
        return NULL;
    a.name = qname;
    a.types[0] = DNS_T_PTR;
    a.types[1] = 0;
    a.nq = 1;
    r = round_run(ts, &a);
    if (r == NULL)
        return NULL;
    herr = round_herr(r, &servfail, &connrefused);
    if (herr != 0 || r->ans[0].name == NULL) {
        dns_raise(herr != 0 ? herr : status_herr(DNS_NORECORD), 1);
    }
    else {
        const char *hn = r->ans[0].name;
        result = Py_BuildValue("(N[][s]i)",
                               PyUnicode_DecodeASCII(hn, (Py_ssize_t)strlen(hn),
                                                     "surrogateescape"),
                               text, family);
    }
    req_free(r);
    return result;
}

/* ------------------------------------------------------------------------
 * _dns_addrconfig() -> (IPv4 configured, IPv6 configured), as glibc's
 * AI_ADDRCONFIG decides it (__check_pf): an IPv4 address other than
 * 127.0.0.1, an IPv6 address other than ::1, on any interface.  Both
 * True when the interfaces cannot be read.
 */
static PyObject *
py_dns_addrconfig(PyObject *m, PyObject *unused)
{
    struct ifaddrs *ifa, *i;
    int v4 = 0, v6 = 0;
    (void)m; (void)unused;
    if (getifaddrs(&ifa) < 0)
        return Py_BuildValue("(OO)", Py_True, Py_True);
    for (i = ifa; i != NULL; i = i->ifa_next) {
        const struct sockaddr *sa = i->ifa_addr;
        if (sa == NULL)
            continue;
        if (sa->sa_family == AF_INET &&
            ((const struct sockaddr_in *)sa)->sin_addr.s_addr !=
            htonl(INADDR_LOOPBACK))
            v4 = 1;
        else if (sa->sa_family == AF_INET6 &&
                 !IN6_IS_ADDR_LOOPBACK(
                     &((const struct sockaddr_in6 *)sa)->sin6_addr))
            v6 = 1;
    }
    freeifaddrs(ifa);
    return Py_BuildValue("(OO)", v4 ? Py_True : Py_False,
                         v6 ? Py_True : Py_False);
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
    {"_dns_getaddrinfo", py_dns_getaddrinfo, METH_VARARGS,
     "_dns_getaddrinfo($module, host, family, flags, hostent=False, /)\n"
     "--\n"
     "\n"
     "Resolve host (bytes) on the hub: the answer of getaddrinfo() for DNS\n"
     "names."},
    {"_dns_gethostbyaddr", py_dns_gethostbyaddr, METH_VARARGS,
     "_dns_gethostbyaddr($module, address, /)\n"
     "--\n"
     "\n"
     "Reverse lookup of a packed IPv4 or IPv6 address on the hub."},
    {"_dns_addrconfig", py_dns_addrconfig, METH_NOARGS,
     "_dns_addrconfig($module, /)\n"
     "--\n"
     "\n"
     "Return the families with a configured address (AI_ADDRCONFIG)."},
    {"_dns_configure", (PyCFunction)(void (*)(void))py_dns_configure,
     METH_VARARGS | METH_KEYWORDS,
     "_dns_configure($module, /, servers=None, timeout=None, tries=None)\n"
     "--\n"
     "\n"
     "Set the nameservers, timeout and tries (None: the system's value)."},
    {"_dns_info", py_dns_info, METH_NOARGS,
     "_dns_info($module, /)\n"
     "--\n"
     "\n"
     "Return a dict describing the resolver state (tests)."},
    {NULL, NULL, 0, NULL}
};

int
hub_dns_module_init(PyObject *module)
{
    return PyModule_AddFunctions(module, dns_methods);
}
