/* The hub: one libev loop per thread, polled by the scheduler's idle hook
 * when nothing is runnable (docs/design.md, "The scheduler and the hub").
 * The only headers that see <ev.h>.  Watcher callbacks only call sched_unpark() or queue work for
 * the idle hook; they never run Python code and never switch. */
#ifndef HUB_HUB_H
#define HUB_HUB_H

#include "module.h"
#include <ev.h>

typedef struct hub_wait hub_wait;
typedef struct hub_timer hub_timer;

/* Per-fd bookkeeping: who waits on it in each direction. */
typedef struct {
    hub_wait *reader;
    hub_wait *writer;
    int recv_waits;               /* sock.c: the last recv found no data */
} hub_fdslot;

typedef struct hub_state {
    struct ev_loop *loop;
    sched_thread *ts;
    PyThreadState *released;      /* while the poll runs without the GIL */
    int keep_gil;                 /* a poll that does not wait keeps it */
    ev_async async;               /* cross-thread wake-up (hub_wakeup) */
    int is_main;
    hub_fdslot *fds;              /* indexed by fd */
    int nfds;
    hub_wait *free_waits;         /* freelist */
    hub_timer *expired;           /* Timeout objects whose timer fired */
    double last_poll;             /* slp_monotonic() of the last poll
                                     (the fairness polls pace on it) */
    Py_ssize_t nactive;           /* waits and timers that can wake someone */
    void *dns;                    /* dns.c: the thread's c-ares channel */
    struct lock_waiter *lock_done; /* lock.c: waits granted by other threads */
    struct lock_waiter *lock_waits; /* lock.c: every lock wait of the thread */
    int polling;                  /* in the idle poll or right after it */
    TaskletObject *soon_pos;      /* during a poll: where the last timer
                                     wake-up went (hub_run_soon) */
    unsigned long soon_count;     /* timer wake-ups moved to the front */
} hub_state;

/* One wait of a parked tasklet: lives on the heap (a tasklet's C stack is
 * moved away while it is switched out, libev keeps pointers). */
struct hub_wait {
    ev_io io;
    ev_timer timer;
    hub_state *h;
    TaskletObject *t;             /* borrowed: parked, the scheduler owns it */
    hub_wait **slot;              /* &fds[fd].reader/writer, or NULL */
    hub_wait *next_free;
    int counted;                  /* counts in h->nactive */
};

/* A Timeout's timer (Python object, hub.c). */
struct hub_timer {
    PyObject_HEAD
    ev_timer timer;
    hub_state *h;
    TaskletObject *target;        /* owned */
    PyObject *exc;                /* owned: exception instance to raise */
    hub_timer *next_expired;
    int active;
    int queued;
};

/* The thread's hub state, or NULL before hub_get() made it. */
static inline hub_state *hub_of(sched_thread *ts)
{
    return (hub_state *)sched_hub_state(ts);
}

/* The deadline of a timed wait that may wait more than once (a socket
 * call retried after each wake-up, a lock): *deadline is 0 until the first
 * call, which fixes it `timeout` seconds ahead on slp_monotonic(), so the
 * retries share it.  Returns the seconds left: -1 when timeout < 0 (no
 * limit), 0 once the deadline has passed. */
static inline double hub_deadline_left(double *deadline, double timeout)
{
    double now;
    if (timeout < 0)
        return -1;
    now = slp_monotonic();
    if (*deadline == 0)
        *deadline = now + timeout;
    return *deadline > now ? *deadline - now : 0;
}

/* hub.c */
/* Registers the hub's operations with the scheduler (module.c calls it). */
int hub_module_init(PyObject *module);
hub_state *hub_get(sched_thread *ts);     /* NULL with an exception */
void hub_wakeup(sched_thread *ts);        /* thread-safe, GIL not needed */
void hub_maybe_poll(sched_thread *ts);    /* fairness: poll without blocking */
/* Fairness before a tasklet parks while others are runnable: poll without
 * blocking (at most once a millisecond) and deliver expired Timeouts.
 * Returns -1 with an exception when a Timeout targets the caller. */
int hub_poll_fair(sched_thread *ts);
/* From a watcher callback, right after sched_unpark(t): a due timer's
 * tasklet runs next (after the ones earlier timers of this poll woke),
 * not behind a whole round of the run queue. */
void hub_run_soon(hub_state *h, TaskletObject *t);
/* A fairness point before I/O that may complete without waiting (socket
 * calls): at most once a millisecond, poll without blocking; when that
 * woke a due timer's tasklet, yield to it once (not inside atomic, a
 * switch_trap or the schedule callback).  Returns -1 with an exception. */
int hub_fair_point(void);

/* wait.c */
/* Park the current tasklet until fd is ready for `events` (EV_READ or
 * EV_WRITE; fd < 0: no fd) or `timeout` seconds pass (< 0: never).
 * Returns 1 ready, 0 timed out, -1 with an exception (kill/throw, EBADF
 * when the fd was closed by another tasklet, a second waiter in the same
 * direction). */
int hub_wait_fd(sched_thread *ts, int fd, int events, double timeout);
/* Wake every tasklet waiting on fd with OSError(EBADF); call before
 * closing it.  Returns the number woken. */
int hub_cancel_fd(sched_thread *ts, int fd);
int hub_wait_module_init(PyObject *module);
void hub_wait_release(hub_state *h);

/* lock.c */
int hub_lock_module_init(PyObject *module);
void hub_lock_drain(hub_state *h);        /* after a poll, own thread */
void hub_lock_thread_end(hub_state *h);   /* before the hub is freed */

/* sock.c */
int hub_sock_module_init(PyObject *module);

/* dns.c */
int hub_dns_module_init(PyObject *module);
void hub_dns_release(hub_state *h);       /* thread end: destroy the channel */

#endif /* HUB_HUB_H */
