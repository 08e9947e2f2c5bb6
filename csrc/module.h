/* Shared declarations of the Stackless layer: the tasklet, channel and bomb
 * objects, the per-thread scheduler and the module state.
 *
 * Ownership rules (docs/design.md, "Ownership and reference rules"):
 *   - the run queue (a ring that contains the current tasklet), a channel's
 *     queue and the watchdog list each own one reference to every tasklet in
 *     them; a tasklet is in at most one queue at a time;
 *   - sched_thread.current and TaskletObject.chan are borrowed;
 *   - a reference given up by a tasklet that is switching away is released
 *     by whoever runs next (sched_thread.pending_decref), so that a tasklet
 *     is never deallocated while its own code is still on the C stack.
 */
#ifndef SLP_MODULE_H
#define SLP_MODULE_H

#include <Python.h>
#include <time.h>
#include "pythread.h"
#include "switch.h"
#include "pystate.h"
#include "compat.h"
#include "pyhook.h"

typedef struct sched_thread sched_thread;
typedef struct TaskletObject TaskletObject;
typedef struct ChannelObject ChannelObject;

/* The hub's part of a thread's scheduler record: opaque to the scheduler
 * and written by the hub only (docs/design.md, "The scheduler and the
 * hub").  The scheduler reads `keepalive` to know that the hub can still
 * make a tasklet runnable although none is parked. */
typedef struct {
    void *state;            /* the hub's per-thread state, or NULL */
    Py_ssize_t keepalive;   /* armed sources that no parked tasklet waits
                               for (Timeout timers) */
} sched_hub_part;

/* tasklet flags */
#define TF_MAIN            0x0001
#define TF_SETUP           0x0002  /* bound with arguments, not yet started */
#define TF_IN_RING         0x0004  /* in its thread's run queue */
#define TF_ATOMIC          0x0008
#define TF_IGNORE_NESTING  0x0010
#define TF_BLOCK_TRAP      0x0020
#define TF_WATCHDOG        0x0040  /* paused in run(), in the watchdog list */
#define TF_FINALIZING      0x0080
#define TF_PARKED          0x0100  /* waiting in sched_park() (a state of
                                      its own: `blocked` is the channel
                                      direction, as in Stackless) */
#define TF_ARGS_TRIED      0x0200  /* tasklet_drop_copied_args() ran */

struct TaskletObject {
    PyObject_HEAD
    vectorcallfunc vectorcall;    /* tasklet(...)(*args) is setup() */
    TaskletObject *next, *prev;   /* links in the run queue (ring) */
    TaskletObject *cnext, *cprev; /* links in a channel's queue */
    TaskletObject *all_next, *all_prev; /* the thread's started tasklets */
    PyObject *tempval;            /* owned, never NULL */
    PyObject *func;               /* owned bound callable, or NULL */
    PyObject *args;               /* owned tuple when set up, else NULL */
    PyObject *kwargs;             /* owned dict or NULL */
    PyObject *context;            /* owned start context (not yet started) */
    sched_thread *ts;             /* owning thread, NULL once it ended */
    ChannelObject *chan;          /* borrowed: channel it is blocked on */
    PyObject *weakreflist;
    unsigned long thread_id;
    unsigned short flags;         /* TF_* */
    short blocked;                /* Stackless's meaning: 1 sending, -1
                                     receiving on `chan`, 0 not on a channel */
    int c_nesting;                /* calls of the test helpers in progress
                                     (nesting_level counts them) */
    /* parked (TF_PARKED): the wait's abort function and its argument,
     * called by the scheduler only (park_leave()) */
    void (*abort_fn)(TaskletObject *t, void *arg);
    void *abort_arg;
    slp_stack stack;
    pystate_saved ps;
    PyObject *cstate;             /* owned cstack object, created on demand */
    long long serial;             /* serial of its own C stack, 0: none yet */
};

struct ChannelObject {
    PyObject_HEAD
    TaskletObject *head, *tail;   /* blocked tasklets, FIFO, owned */
    Py_ssize_t balance;           /* > 0 senders waiting, < 0 receivers */
    int preference;
    int schedule_all;
    int closing;
    PyObject *weakreflist;
};

typedef struct {
    PyObject_HEAD
    PyObject *type, *value, *traceback;
} BombObject;

typedef struct {
    PyObject_HEAD
    int saved;
} AtomicObject;

typedef struct {
    PyObject_HEAD
    TaskletObject *task;          /* borrowed; NULL once the tasklet is gone */
    long long serial;             /* used when task is NULL */
} CStackObject;

/* The interrupt watchdog's part of a thread's scheduler record, owned by
 * csrc/watchdog.c (docs/design.md, "The scheduler", run()); the fields the
 * timer thread reads are guarded by its lock.  Other files use the
 * accessors declared with watchdog.c's functions below. */
typedef struct {
    TaskletObject *caller;        /* borrowed: run(timeout) caller, or NULL */
    sched_thread *next;           /* the timer's list */
    long long budget;             /* ticks per slice, or for the whole run() */
    long long left;               /* counted mode: ticks left */
    long long budget_ns;          /* timed mode: the budget as time */
    long long start_ns;           /* timed mode: slp_monotonic_ns() at the
                                     start of the slice (or run()) */
    int clock;                    /* timed mode: the thread's CPU clock */
    long long t_stamp, t_cpu_start, t_look_cpu; /* the timer's */
    long long fired_stamp;        /* the slice a poke is for */
    long long deadline;           /* due: slp_monotonic_ns() to interrupt */
    int counted;                  /* the hook counts the ticks */
    int soft, ignore_nesting, total, threadblock;
    int fired;                    /* timed mode: a poke is on its way */
    int poking;                   /* the timer is poking (timer lock) */
    int due;                      /* the hook interrupts at its next event */
    int soft_irq;                 /* soft: the next switch revives run() */
    int pending;                  /* an interrupt waits for atomic to clear */
    unsigned long deferred;       /* interrupts that had to wait (tests) */
    unsigned long interrupts;     /* interrupts delivered (tests, bench) */
    pyhook_saved saved;           /* the hook is on the running tasklet */
    PyObject *frame;              /* frame with opcode events, or NULL */
} sched_wd;

/* The cross-thread part of a thread's scheduler record (scheduler.c only):
 * how other threads find this one, hand it work and wake it. */
typedef struct {
    sched_thread *next, *prev;    /* the registry of live schedulers */
    PyThread_type_lock wake_lock; /* released to wake a waiting thread */
    int waiting;                  /* blocked in sched_wait_threads() */
    PyObject *inbox;              /* parked tasklets killed by other threads */
} sched_xt;

struct sched_thread {
    PyThreadState *tstate;
    unsigned long thread_id;
    TaskletObject *main;          /* owned */
    TaskletObject *current;       /* borrowed */
    Py_ssize_t runcount;          /* length of the ring */
    slp_thread sw;
    int switch_trap;
    int in_callback;              /* inside the schedule callback */
    PyObject *watchdogs;          /* list: run() callers, innermost last */
    PyObject *pending_decref;     /* released after the next switch */
    TaskletObject *all;           /* started tasklets (borrowed list head) */
    int dead;                     /* its thread has ended */
    sched_xt xt;                  /* scheduler.c's cross-thread part */
    unsigned long switches;       /* switch counter (watchdog) */
    PyObject *const *call_sp;     /* end of the args of the blocking call */
    Py_ssize_t nparked;           /* tasklets waiting in sched_park() */
    unsigned int poll_countdown;  /* schedule() calls until the next poll */
    sched_wd wd;                  /* the watchdog's, see sched_wd */
    int parking;                  /* blocking, before the switch: if the
                                     current tasklet is woken meanwhile,
                                     it just goes on */
    sched_hub_part hub;           /* the hub's, see sched_hub_part */
    /* C-stack serials, as get_thread_info(tid, 1 << 30) reports them: the
     * last one handed out; the main tasklet's stack has serial 1 */
    long long serial;
    PyObject *initial_stub;       /* owned cstack of the thread's base */
    int run_called;               /* run() was called: a watchdog list exists */
};

typedef struct {
    PyTypeObject *tasklet_type;
    PyTypeObject *channel_type;
    PyTypeObject *bomb_type;
    PyTypeObject *atomic_type;
    PyTypeObject *cstack_type;
    PyObject *TaskletExit;
    PyObject *error_handler;
    PyObject *channel_callback;
    PyObject *schedule_callback;
    /* Suspended tasklets the collector found unreachable: killed once the
     * collection is over (see tasklet_finalize). */
    PyObject *pending_kills;
    int softswitch;
    int channel_cb_active;
    int schedule_cb_active;
} slp_module_state;

/* The one module state of the process (the module refuses to load twice). */
extern slp_module_state *slp_st;

#define Tasklet_Check(o) PyObject_TypeCheck((o), slp_st->tasklet_type)
#define Channel_Check(o) PyObject_TypeCheck((o), slp_st->channel_type)
#define Bomb_Check(o) Py_IS_TYPE((o), slp_st->bomb_type)

/* The tasklet's thread, or NULL once that thread has ended. */
static inline sched_thread *tasklet_ts(TaskletObject *t)
{
    return (t->ts != NULL && !t->ts->dead) ? t->ts : NULL;
}
/* Waiting for something: on a channel or in a park (Python's
 * tasklet.blocked is true for both). */
static inline int tasklet_waiting(TaskletObject *t)
{
    return t->blocked != 0 || (t->flags & TF_PARKED);
}
static inline int tasklet_started(TaskletObject *t)
{
    return slp_stack_started(&t->stack);
}
static inline int tasklet_alive(TaskletObject *t)
{
    /* a tasklet set up for a thread that has ended died with it */
    return ((t->flags & TF_SETUP) && tasklet_ts(t) != NULL) ||
           (t->flags & TF_MAIN) || tasklet_started(t);
}

static inline PyObject *
slp_tuple_from_array(PyObject *const *items, Py_ssize_t n)
{
    PyObject *t = PyTuple_New(n);
    Py_ssize_t i;
    if (t == NULL)
        return NULL;
    for (i = 0; i < n; i++)
        PyTuple_SET_ITEM(t, i, Py_NewRef(items[i]));
    return t;
}

/* The scheduler-hub interface (docs/design.md, "The scheduler and the
 * hub"): the operations the hub registers with sched_register_hub() when
 * the module is initialised.  "The hub has work" means tasklets are parked
 * or the hub's keep-alive count is positive. */
typedef struct {
    /* Nothing is runnable but the hub has work: wait (releasing the GIL)
     * until something can run; callbacks only call sched_unpark().
     * Returns 1 after waiting, 0 when nothing could ever wake a parked
     * tasklet, -1 with an exception (KeyboardInterrupt from a signal). */
    int (*idle)(sched_thread *ts);
    /* Poll without blocking (fairness for tasklets that only ever
     * schedule()); called every 64th schedule() while the hub has work. */
    void (*poll)(sched_thread *ts);
    /* Wake ts's thread out of idle() (GIL held, from another thread). */
    void (*wake)(sched_thread *ts);
    /* ts's scheduler is going away: free the hub's part of it. */
    void (*thread_end)(sched_thread *ts);
} sched_hub_ops;
void sched_register_hub(const sched_hub_ops *ops);
static inline void *sched_hub_state(sched_thread *ts)
{
    return ts->hub.state;
}
/* for the hub only */
static inline void sched_set_hub_state(sched_thread *ts, void *state)
{
    ts->hub.state = state;
}
static inline void sched_hub_keepalive(sched_thread *ts, int delta)
{
    ts->hub.keepalive += delta;
}
static inline Py_ssize_t sched_hub_keepalive_count(sched_thread *ts)
{
    return ts->hub.keepalive;
}
/* The scheduler is choosing what to run next (a tasklet that blocks waits
 * in its idle loop, where the hub polls) or runs the schedule callback:
 * Python code running there must not switch. */
static inline int sched_choosing(sched_thread *ts)
{
    return ts->parking || ts->in_callback;
}
/* A switch away from the current tasklet would be refused (switch_trap,
 * inside the schedule callback). */
static inline int sched_switch_refused(sched_thread *ts)
{
    return ts->switch_trap || ts->in_callback;
}
/* tasklets of the thread waiting in sched_park() */
static inline Py_ssize_t sched_nparked(sched_thread *ts)
{
    return ts->nparked;
}

/* The project's one monotonic clock (CLOCK_MONOTONIC): the watchdog's
 * slice stamps, the hub's poll pacing and the deadline of every timed
 * wait (hub_deadline_left()).  libev keeps its own loop time for its
 * timers, which are only ever armed with relative timeouts. */
static inline long long slp_monotonic_ns(void)
{
    struct timespec tp;
    if (clock_gettime(CLOCK_MONOTONIC, &tp) < 0)
        return 0;
    return (long long)tp.tv_sec * 1000000000LL + tp.tv_nsec;
}
static inline double slp_monotonic(void)
{
    return (double)slp_monotonic_ns() * 1e-9;
}

/* module.c: a thread id argument as Stackless parses it: 0 for "the
 * current thread" (absent or -1), 1 with *id set, -1 with an exception
 * (OverflowError for other negative numbers) */
int slp_parse_thread_id(PyObject *o, unsigned long *id);

/* scheduler.c */
sched_thread *sched_get(void);           /* NULL with MemoryError */
void ring_append(sched_thread *ts, TaskletObject *t);       /* new reference */
void ring_insert_after(sched_thread *ts, TaskletObject *pos,
                       TaskletObject *t);                  /* new reference */
TaskletObject *ring_remove(sched_thread *ts, TaskletObject *t); /* gives ref */
int sched_check_switch(sched_thread *ts);
PyObject *sched_switch(sched_thread *ts, TaskletObject *next, PyObject *drop);
PyObject *sched_take_tempval(TaskletObject *t);
/* Raise a throw from another thread that reached the current tasklet
 * while it ran; call at a switch point before reusing its tempval.
 * Returns -1 with the exception set, or 0. */
int sched_raise_pending(sched_thread *ts);
PyObject *sched_schedule(sched_thread *ts, PyObject *retval, int remove);
PyObject *sched_run(sched_thread *ts, double timeout, int threadblock,
                    int soft, int ignore_nesting, int totaltimeout);
PyObject *sched_throw(TaskletObject *t, PyObject *bomb, int pending,
                      int is_kill);
int sched_kill_all(sched_thread *ts, int (*drop)(TaskletObject *t));

/* The one way to wait for something other than a channel (docs/design.md,
 * "The park / abort contract"): the current tasklet leaves the run queue
 * and is parked (TF_PARKED) until sched_unpark() makes it runnable again.
 * When the wait ends any other way (kill()/throw()/raise_exception(), a
 * Timeout, an error before the switch) the scheduler calls abort(t, arg)
 * once, which must stop whatever would unpark it (a watcher); it runs no
 * Python code.
 * While tasklets are parked and nothing is runnable, the scheduler calls
 * the idle hook instead of declaring a deadlock.  Returns the value given to sched_unpark() (a
 * new reference), or NULL with an exception (a bomb, a deadlock, the idle
 * hook's error).  On error abort(t, arg) has been called. */
typedef void (*sched_abort_fn)(TaskletObject *t, void *arg);
PyObject *sched_park(sched_thread *ts, sched_abort_fn abort, void *arg);

/* Make a parked tasklet of this thread runnable (appended to the run
 * queue) with `value` (stolen; a bomb is raised in it).  Runs no Python
 * code, never switches: safe from watcher callbacks.  Returns 0, or -1
 * (value released) when t is not parked. */
int sched_unpark(TaskletObject *t, PyObject *value);
/* A kill or throw is on its way to t (pending, or from another thread),
 * which is not on a channel (a channel waiter's tempval is its value). */
int sched_throw_pending(TaskletObject *t);
/* The current tasklet, already queued on a channel, is about to block:
 * the tasklet to switch to, itself when the transfer completed while the
 * scheduler waited for the hub or another thread, or NULL with an error
 * (Deadlock).  Call sched_check_switch() first. */
TaskletObject *sched_block_pick(sched_thread *ts);
sched_thread *sched_peek(void);
sched_thread *sched_find_thread(unsigned long thread_id); /* borrowed/NULL */
void sched_wake(sched_thread *ts);
/* insert/run/kill for a tasklet of another live thread (GIL held) */
void sched_remote_insert(sched_thread *ts, TaskletObject *t, int after_current);
void sched_forget(TaskletObject *t);
extern unsigned long slp_main_thread_ident;

/* watchdog.c */
int wd_arm(sched_thread *ts, TaskletObject *caller, double timeout, int soft,
           int ignore_nesting, int totaltimeout, int threadblock);
void wd_disarm(sched_thread *ts);
void wd_retry(sched_thread *ts);
void wd_shutdown(void);
/* Reads of the watchdog's part of the record (sched_wd) elsewhere. */
static inline TaskletObject *wd_caller(sched_thread *ts)
{
    return ts->wd.caller;       /* the run(timeout) caller: armed */
}
static inline int wd_hook_on(sched_thread *ts)
{
    return ts->wd.saved.installed;
}
static inline int wd_soft_due(sched_thread *ts)
{
    return ts->wd.soft_irq;
}
static inline int wd_threadblock(sched_thread *ts)
{
    return ts->wd.threadblock;
}
static inline int wd_interrupt_waits(sched_thread *ts)
{
    return ts->wd.pending;      /* for atomic to clear */
}
static inline unsigned long wd_deferred_count(sched_thread *ts)
{
    return ts->wd.deferred;
}
/* The switch to `next` is about to happen while a watchdog is armed: the
 * tasklet to switch to instead (run()'s caller, for a soft interrupt). */
TaskletObject *wd_switching(sched_thread *ts, TaskletObject *next);
/* The current tasklet leaves (before its state is saved) / resumes or
 * starts (after its state is restored), while a watchdog is armed. */
void wd_leaving(sched_thread *ts);
void wd_resumed(sched_thread *ts);
void sched_release_inner_watchdogs(sched_thread *ts, TaskletObject *w);
void sched_make_runnable_after(sched_thread *ts, TaskletObject *pos,
                               TaskletObject *t);

/* tasklet.c */
int tasklet_module_init(PyObject *module);
TaskletObject *tasklet_new_main(sched_thread *ts);
PyObject *bomb_new(PyObject *type, PyObject *value, PyObject *tb);
PyObject *bomb_from_error(void);         /* packs the raised exception */
PyObject *bomb_explode(PyObject *bomb);  /* steals; returns NULL */
PyObject *bomb_from_raise_args(PyObject *exc, PyObject *val, PyObject *tb);
int tasklet_finalize_kill(TaskletObject *t);
/* At interpreter exit: drop a suspended restorable tasklet (no C state)
 * without killing it, as Stackless does; returns 1 if dropped. */
int tasklet_drop_if_restorable(TaskletObject *t);
/* tasklet.cstate (one object per tasklet) and the thread's initial stub */
PyObject *cstack_of_tasklet(TaskletObject *t);         /* new reference */
PyObject *cstack_initial_stub(sched_thread *ts);       /* new reference */
long long tasklet_serial(TaskletObject *t);
int tasklet_run_pending_kills(void);
/* The running tasklet t is about to switch away: give up its argument
 * tuple if its Python function's frame holds the arguments now. */
void tasklet_drop_copied_args(TaskletObject *t);

/* channel.c */
int channel_module_init(PyObject *module);
void channel_remove_waiter(ChannelObject *ch, TaskletObject *t); /* gives ref */

#endif /* SLP_MODULE_H */
