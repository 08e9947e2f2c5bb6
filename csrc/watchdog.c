/* The watchdog: run(timeout) pre-empts a tasklet that runs too long
 * without switching, on a stock interpreter (docs/design.md, "The
 * scheduler", run()).
 *
 * A tick is about one bytecode instruction, as in Stackless, where the
 * eval loop counts them.  Stock CPython counts nothing, so there are two
 * modes, chosen by the budget:
 *
 *   counted (timeout <= WD_COUNT_MAX): a C trace hook rides on whichever
 *     tasklet runs under the watchdog and counts its trace events: one
 *     tick for a call or a return, WD_LINE_TICKS for a line; where the
 *     interpreter can deliver instruction events to a C hook (3.11, whose
 *     loops that jump to their own line have no line events), it asks for
 *     them in the innermost running frame (moving them along at calls and
 *     returns) and counts one tick for each instead of that frame's lines.  Exact and deterministic: run(100) stops a
 *     1,000-iteration loop part-way, every time.  Costs what tracing costs
 *     while armed (README: about 2-3x on a busy loop).
 *   timed (larger budgets): the budget is time, WD_TICK_NS per tick.  The
 *     running tasklet carries no hook: one C thread (the timer, holding no
 *     thread state) sleeps until the slice's deadline and then pokes the
 *     busy thread (pyhook_poke: a function that runs on that thread
 *     between two of its instructions), which puts the hook on the
 *     running tasklet; the hook interrupts at its next event.  Costs
 *     nothing while the budget lasts.
 *
 * A slice restarts at every switch (Stackless resets its tick watermark),
 * unless totaltimeout: then the budget is for the whole run() call.
 *
 * When the budget is spent, the running tasklet is interrupted: it leaves
 * the run queue and the watchdog's run() returns it.  The interrupt waits
 * (and the budget starts again) while the tasklet is atomic (an atomic
 * block's end delivers it at once), its nesting_level is above 0 without
 * ignore_nesting, under switch_trap and in the schedule callback.  With
 * soft=True nothing is interrupted: the next switch of any kind (a channel
 * transfer, schedule(), a wait in the hub, the end of a tasklet) goes to
 * run()'s caller instead, and run() returns None.
 *
 * The hook never stays in a suspended tasklet's saved state: it comes off
 * before every switch and goes onto the tasklet that resumes.  The
 * tasklet's own trace function (sys.settrace) keeps getting its events
 * through the hook.  Code under no watchdog pays nothing: the scheduler's
 * switch points test one pointer.
 */
#include "module.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define WD_COUNT_MAX 100000LL           /* larger budgets are timed */
#define WD_TICK_NS 20LL                 /* a tick in the timed mode */
#define WD_LINE_TICKS 4                 /* a line event, counted mode */
#define WD_MAX_SLEEP_NS 10000000LL      /* 10 ms */
#define WD_LEAD_NS 50000LL              /* poke this early (timed mode) */

static PyThread_type_lock wd_lock;      /* guards the list below */
static PyThread_type_lock wd_sleep;     /* released to wake the timer */
static sched_thread *wd_list;           /* threads with a timed watchdog */
static int wd_timer_running;
static int wd_stop;

/* The timed mode's clock: the CPU time of the busy thread, which stands
 * still while the thread executes no instructions (on a loaded machine,
 * while other processes have the CPU). */
static long long
clock_ns(clockid_t clk)
{
    struct timespec tp;
    if (clock_gettime(clk, &tp) < 0)
        return 0;
    return (long long)tp.tv_sec * 1000000000LL + tp.tv_nsec;
}

static long long
own_cpu_ns(void)
{
    return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

/* Reading a CPU clock is a system call (microseconds in a VM): a switch
 * stamps the slice start with the wall clock instead, and the timer works
 * out the CPU time at that moment (timer_look). */
static long long
wall_ns(void)
{
    return slp_monotonic_ns();
}

/* --- the hook ---------------------------------------------------------- */

static int wd_trace(PyObject *obj, PyFrameObject *frame, int what,
                    PyObject *arg);
static void hook_off(sched_thread *ts);

/* Put the hook on the running tasklet (GIL held, in ts's thread). */
static void
hook_on(sched_thread *ts)
{
    PyFrameObject *f;
    if (ts->wd.saved.installed) {
        if (pyhook_is_installed(wd_trace, &ts->wd.saved))
            return;
        /* the tasklet called sys.settrace(): its new function becomes
         * the one the hook passes events on to */
        hook_off(ts);
    }
    if (pyhook_install(wd_trace, &ts->wd.saved) < 0) {
        PyErr_Clear();
        return;
    }
    /* a loop that never leaves its line (while True: pass) has no line
     * events: ask for instruction events in the running frame */
    f = PyEval_GetFrame();
    if (f != NULL && pyhook_trace_opcodes(f, 1) == 0)
        ts->wd.frame = Py_NewRef((PyObject *)f);
}

/* Instruction events in `f` (the running frame) instead of the last one. */
static void
hook_retarget(sched_thread *ts, PyFrameObject *f)
{
    PyObject *old = ts->wd.frame;
    if ((PyObject *)f == old)
        return;
    ts->wd.frame = NULL;
    if (old != NULL) {
        pyhook_trace_opcodes((PyFrameObject *)old, 0);
        Py_DECREF(old);
    }
    if (f != NULL && pyhook_trace_opcodes(f, 1) == 0)
        ts->wd.frame = Py_NewRef((PyObject *)f);
}

static void
hook_off(sched_thread *ts)
{
    PyObject *f = ts->wd.frame;
    if (f != NULL) {
        ts->wd.frame = NULL;
        pyhook_trace_opcodes((PyFrameObject *)f, 0);
        Py_DECREF(f);
    }
    pyhook_uninstall(wd_trace, &ts->wd.saved);
}

/* The budget starts again (a switch, or an interrupt that had to wait). */
static void
budget_restart(sched_thread *ts)
{
    ts->wd.due = 0;
    if (ts->wd.counted) {
        ts->wd.left = ts->wd.budget;
    }
    else {
        __atomic_store_n(&ts->wd.start_ns, wall_ns(), __ATOMIC_RELAXED);
        __atomic_store_n(&ts->wd.fired, 0, __ATOMIC_RELEASE);
    }
}

static int
nesting_ok(sched_thread *ts, TaskletObject *t)
{
    return ts->wd.ignore_nesting || (t->flags & TF_IGNORE_NESTING) ||
           pystate_nesting_level(ts->tstate, NULL) == 0;
}

static int
must_wait(sched_thread *ts, TaskletObject *t)
{
    return (t->flags & TF_ATOMIC) || ts->switch_trap || ts->in_callback ||
           !nesting_ok(ts, t);
}

/* The budget of the running tasklet is spent. */
static int
wd_fire(sched_thread *ts)
{
    TaskletObject *victim = ts->current, *w = ts->wd.caller;
    PyObject *res;

    if (w == NULL || victim == w) {
        budget_restart(ts);
        return 0;
    }
    if (must_wait(ts, victim) || ts->wd.soft) {
        if (ts->wd.soft)
            ts->wd.soft_irq = 1;    /* the next switch revives run() */
        else {
            /* atomic: delivered when it clears; the others: when the
             * budget is spent again */
            ts->wd.pending = (victim->flags & TF_ATOMIC) != 0;
            ts->wd.deferred++;
        }
        budget_restart(ts);
        if (!ts->wd.counted)
            hook_off(ts);
        return 0;
    }
    hook_off(ts);
    if (sched_check_switch(ts) < 0)
        return -1;
    ts->wd.interrupts++;
    /* The victim leaves the run queue; the watchdog's run() returns it. */
    sched_release_inner_watchdogs(ts, w);
    Py_SETREF(w->tempval, Py_NewRef((PyObject *)victim));
    sched_make_runnable_after(ts, victim, w);
    res = sched_switch(ts, w, (PyObject *)ring_remove(ts, victim));
    if (res == NULL)
        return -1;              /* killed or thrown into while paused */
    Py_DECREF(res);
    return 0;
}

static int
wd_trace(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
    sched_thread *ts = sched_peek();
    int r = 0;

    if (ts == NULL || !ts->wd.saved.installed)
        return 0;
    if (what != PyTrace_OPCODE) {
        /* the tasklet's own trace function */
        r = pyhook_chain(&ts->wd.saved, obj, frame, what, arg);
        if (r < 0 || !ts->wd.saved.installed)
            return r;
    }
    if (!pyhook_opcode_events()) {
        /* line events only */
    }
    else if (what == PyTrace_CALL) {
        hook_retarget(ts, frame);
    }
    else if (what == PyTrace_RETURN && (PyObject *)frame == ts->wd.frame) {
        PyFrameObject *back = PyFrame_GetBack(frame);
        hook_retarget(ts, back);
        Py_XDECREF(back);
    }
    if (ts->wd.due) {
        /* timed mode: poked a little early, the hook waits for the
         * deadline itself */
        if (ts->wd.deadline != 0 && wall_ns() < ts->wd.deadline)
            return r;
    }
    else {
        if (!ts->wd.counted)
            return r;
        if (what == PyTrace_OPCODE)
            ts->wd.left--;
        else if (what == PyTrace_LINE)
            ts->wd.left -= (PyObject *)frame == ts->wd.frame ? 0
                                                             : WD_LINE_TICKS;
        else
            ts->wd.left--;
        if (ts->wd.left > 0)
            return r;
    }
    if (wd_fire(ts) < 0)
        return -1;
    return r;
}

/* An interrupt that had to wait is delivered now (atomic was cleared). */
void
wd_retry(sched_thread *ts)
{
    if (ts->wd.pending && ts->wd.caller != NULL) {
        ts->wd.pending = 0;
        ts->wd.due = 1;
        ts->wd.deadline = 0;
        hook_on(ts);
    }
}

/* --- the scheduler's switch points ------------------------------------- */

static TaskletObject *soft_divert(sched_thread *ts, TaskletObject *cur,
                                  TaskletObject *w, TaskletObject *next);

TaskletObject *
wd_switching(sched_thread *ts, TaskletObject *next)
{
    TaskletObject *cur = ts->current, *w = ts->wd.caller;

    if (ts->wd.soft_irq)
        next = soft_divert(ts, cur, w, next);
    if (next != cur) {
        /* a new slice; with totaltimeout a due interrupt stays due: the
         * hook goes onto the next tasklet (wd_resumed) */
        if (!ts->wd.total)
            budget_restart(ts);
        ts->wd.pending = 0;
    }
    return next;
}

static TaskletObject *
soft_divert(sched_thread *ts, TaskletObject *cur, TaskletObject *w,
            TaskletObject *next)
{
    /* a soft interrupt is due: the switch goes to run()'s caller, and the
     * tasklet that would have run stays queued after it */
    if (w == NULL || w == cur || w == next || (w->flags & TF_IN_RING) ||
        tasklet_waiting(w)) {
        ts->wd.soft_irq = 0;
        return next;
    }
    if (!nesting_ok(ts, cur))
        return next;            /* passed on to the next switch */
    ts->wd.soft_irq = 0;
    Py_SETREF(w->tempval, Py_NewRef(Py_None));
    if (next == cur || !(next->flags & TF_IN_RING))
        sched_make_runnable_after(ts, cur, w);
    else
        sched_make_runnable_after(ts, next->prev, w);
    return w;
}

void
wd_leaving(sched_thread *ts)
{
    if (ts->wd.saved.installed)
        hook_off(ts);
}

void
wd_resumed(sched_thread *ts)
{
    PyObject *exc, *val, *tb;
    if (ts->current == ts->wd.caller || !(ts->wd.counted || ts->wd.due))
        return;
    PyErr_Fetch(&exc, &val, &tb);
    hook_on(ts);
    PyErr_Restore(exc, val, tb);
}

/* --- the timer (timed mode) -------------------------------------------- */

static int
wd_still_armed(sched_thread *ts)
{
    sched_thread *p;
    int found = 0;
    PyThread_acquire_lock(wd_lock, 1);
    for (p = wd_list; p != NULL; p = p->wd.next)
        if (p == ts)
            found = 1;
    PyThread_release_lock(wd_lock);
    return found;
}

/* Runs on the busy thread (pyhook_poke): the deadline has passed. */
static int
wd_poked(void *arg)
{
    sched_thread *ts = arg;
    if (!wd_still_armed(ts) || ts->wd.counted)
        return 0;
    if (sched_peek() != ts) {
        /* another thread ran the pending call: ask again */
        if (pyhook_poke(ts->tstate, wd_poked, ts) < 0)
            __atomic_store_n(&ts->wd.fired, 0, __ATOMIC_RELEASE);
        return 0;
    }
    if (!__atomic_load_n(&ts->wd.fired, __ATOMIC_ACQUIRE) ||
        __atomic_load_n(&ts->wd.start_ns, __ATOMIC_RELAXED) !=
            ts->wd.fired_stamp) {
        /* the slice started again meanwhile */
        __atomic_store_n(&ts->wd.fired, 0, __ATOMIC_RELEASE);
        return 0;
    }
    if (ts->current == ts->wd.caller)
        return 0;
    /* the CPU time left (the timer's estimate of the slice's start); the
     * hook checks the wall clock, which runs at least as fast */
    {
        long long left = ts->wd.budget_ns -
                         (own_cpu_ns() - ts->wd.t_cpu_start);
        ts->wd.deadline = left > 0 ? wall_ns() + left : 0;
    }
    ts->wd.due = 1;
    hook_on(ts);
    return 0;
}

/* A poke takes tens of microseconds to arrive: it is sent this much before
 * the deadline, and the hook waits for the deadline itself, tracing the
 * busy tasklet meanwhile (3-4x slower): at most 1/80 of the budget, so
 * that this costs under 5%. */
static long long
lead(sched_thread *ts)
{
    long long l = ts->wd.budget_ns / 80;
    return l < WD_LEAD_NS ? l : WD_LEAD_NS;
}

/* The CPU time ts's slice has used so far (timer thread, its lock held).
 * The CPU time at the slice start is bounded from below twice: by the CPU
 * time now less the wall-clock time since the stamp, and by the CPU time at
 * the timer's previous look, if the stamp is newer.  Without load the first
 * is exact; with load the estimate errs towards an early interrupt, never a
 * late one. */
static long long
timer_look(sched_thread *ts)
{
    long long cpu = clock_ns((clockid_t)ts->wd.clock);
    long long stamp = __atomic_load_n(&ts->wd.start_ns, __ATOMIC_RELAXED);
    if (stamp != ts->wd.t_stamp) {
        long long est = cpu - (wall_ns() - stamp);
        if (est < ts->wd.t_look_cpu)
            est = ts->wd.t_look_cpu;
        ts->wd.t_stamp = stamp;
        ts->wd.t_cpu_start = est;
    }
    ts->wd.t_look_cpu = cpu;
    return cpu - ts->wd.t_cpu_start;
}

static void
wd_timer_main(void *unused)
{
    (void)unused;
#ifdef PR_SET_TIMERSLACK
    /* wake up on time, not up to 50 us late */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
#endif
    {
        /* On a loaded machine a waking thread of a busy process waits for
         * the other processes' time slices (milliseconds): the lowest
         * real-time priority, where permitted, wakes it on time.  It runs
         * for microseconds per deadline. */
        struct sched_param sp;
        sp.sched_priority = 1;
        (void)pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
    }
    for (;;) {
        sched_thread *ts, *fire[16];
        int nfire = 0, i, failed;
        long long used, sleep_ns = WD_MAX_SLEEP_NS;
        /* the budgets are CPU time, the sleep wall-clock time, which runs
         * at least as fast: the timer never wakes late, sometimes early
         * (then it sleeps again) */

        PyThread_acquire_lock(wd_lock, 1);
        if (wd_stop) {
            wd_timer_running = 0;
            PyThread_release_lock(wd_lock);
            return;
        }
        for (ts = wd_list; ts != NULL; ts = ts->wd.next) {
            if (__atomic_load_n(&ts->wd.fired, __ATOMIC_ACQUIRE))
                continue;
            used = timer_look(ts) + lead(ts);
            if (used >= ts->wd.budget_ns) {
                if (nfire < 16) {
                    ts->wd.fired_stamp = ts->wd.t_stamp;
                    __atomic_store_n(&ts->wd.fired, 1, __ATOMIC_RELEASE);
                    ts->wd.poking++;    /* disarm waits for the poke */
                    fire[nfire++] = ts;
                }
            }
            else if (ts->wd.budget_ns - used < sleep_ns) {
                sleep_ns = ts->wd.budget_ns - used;
            }
        }
        PyThread_release_lock(wd_lock);
        failed = 0;
        for (i = 0; i < nfire; i++) {
            ts = fire[i];
            if (pyhook_finalizing() ||
                pyhook_poke(ts->tstate, wd_poked, ts) < 0) {
                /* (a full pending-call queue): retry in 1 ms -- never at
                 * once, this thread may have a real-time priority */
                __atomic_store_n(&ts->wd.fired, 0, __ATOMIC_RELEASE);
                failed = 1;
            }
            PyThread_acquire_lock(wd_lock, 1);
            ts->wd.poking--;
            PyThread_release_lock(wd_lock);
        }
        if (failed)
            sleep_ns = 1000000LL;
        else if (nfire > 0)
            continue;           /* work out the next sleep */
        if (sleep_ns < 1000)
            sleep_ns = 1000;
        PyThread_acquire_lock_timed(wd_sleep, (sleep_ns + 999) / 1000, 0);
    }
}

static int wd_start_timer(void);

/* os.register_at_fork(after_in_child=...): the timer thread did not survive
 * the fork, and its locks may have been held; a timed watchdog armed in the
 * forking thread goes on in the child with a new timer. */
static PyObject *
wd_after_fork_child(PyObject *self, PyObject *unused)
{
    sched_thread *ts = sched_peek();
    clockid_t clk;
    (void)self;
    (void)unused;
    wd_lock = NULL;             /* the old ones are left behind */
    wd_sleep = NULL;
    wd_list = NULL;
    wd_timer_running = 0;
    wd_stop = 0;
    if (ts == NULL || ts->wd.caller == NULL || ts->wd.counted)
        Py_RETURN_NONE;
    ts->wd.next = NULL;
    ts->wd.poking = 0;
    ts->wd.fired = 0;
    if (pthread_getcpuclockid(pthread_self(), &clk) != 0 ||
        wd_start_timer() < 0) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    ts->wd.clock = (int)clk;
    ts->wd.start_ns = ts->wd.t_stamp = wall_ns();
    ts->wd.t_cpu_start = ts->wd.t_look_cpu = own_cpu_ns();
    PyThread_acquire_lock(wd_lock, 1);
    wd_list = ts;
    PyThread_release_lock(wd_lock);
    PyThread_release_lock(wd_sleep);
    Py_RETURN_NONE;
}

static PyMethodDef wd_fork_def = {
    "_watchdog_after_fork", wd_after_fork_child, METH_NOARGS, NULL};

static int
wd_register_at_fork(void)
{
    static int done;
    PyObject *os, *fn, *reg, *args, *kw, *r = NULL;
    if (done)
        return 0;
    os = PyImport_ImportModule("os");
    if (os == NULL)
        return -1;
    reg = PyObject_GetAttrString(os, "register_at_fork");
    Py_DECREF(os);
    if (reg == NULL)
        return -1;
    fn = PyCFunction_New(&wd_fork_def, NULL);
    args = PyTuple_New(0);
    kw = fn != NULL ? Py_BuildValue("{sO}", "after_in_child", fn) : NULL;
    if (args != NULL && kw != NULL)
        r = PyObject_Call(reg, args, kw);
    Py_XDECREF(fn);
    Py_XDECREF(args);
    Py_XDECREF(kw);
    Py_DECREF(reg);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    done = 1;
    return 0;
}

static int
wd_start_timer(void)
{
    if (wd_register_at_fork() < 0)
        return -1;
    if (wd_lock == NULL) {
        wd_lock = PyThread_allocate_lock();
        wd_sleep = PyThread_allocate_lock();
        if (wd_lock == NULL || wd_sleep == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        PyThread_acquire_lock(wd_sleep, 1);
    }
    if (!wd_timer_running) {
        wd_stop = 0;
        if (PyThread_start_new_thread(wd_timer_main, NULL) ==
            PYTHREAD_INVALID_THREAD_ID) {
            PyErr_SetString(PyExc_RuntimeError,
                            "cannot start the watchdog timer thread");
            return -1;
        }
        wd_timer_running = 1;
    }
    return 0;
}

/* --- run(timeout) ------------------------------------------------------ */

int
wd_arm(sched_thread *ts, TaskletObject *caller, double timeout, int soft,
       int ignore_nesting, int totaltimeout, int threadblock)
{
    long long budget = timeout < 1.0 ? 1 : (long long)timeout;
    int counted = budget <= WD_COUNT_MAX;

    if (!counted && wd_start_timer() < 0)
        return -1;
    ts->wd.caller = caller;
    ts->wd.budget = budget;
    ts->wd.left = budget;
    ts->wd.counted = counted;
    ts->wd.soft = soft;
    ts->wd.ignore_nesting = ignore_nesting;
    ts->wd.total = totaltimeout;
    ts->wd.threadblock = threadblock;
    ts->wd.due = 0;
    ts->wd.soft_irq = 0;
    ts->wd.pending = 0;
    ts->wd.budget_ns = budget * WD_TICK_NS;
    ts->wd.fired = 0;
    if (!counted) {
        clockid_t clk;
        if (pthread_getcpuclockid(pthread_self(), &clk) != 0) {
            ts->wd.caller = NULL;
            PyErr_SetString(PyExc_RuntimeError,
                            "no CPU-time clock for the watchdog");
            return -1;
        }
        ts->wd.clock = (int)clk;
        ts->wd.start_ns = ts->wd.t_stamp = wall_ns();
        ts->wd.t_cpu_start = ts->wd.t_look_cpu = own_cpu_ns();
    }
    if (!counted) {
        PyThread_acquire_lock(wd_lock, 1);
        ts->wd.next = wd_list;
        wd_list = ts;
        PyThread_release_lock(wd_lock);
        PyThread_release_lock(wd_sleep);    /* let the timer see it */
    }
    return 0;
}

void
wd_disarm(sched_thread *ts)
{
    if (!ts->wd.counted && wd_lock != NULL) {
        sched_thread **pp;
        int poking;
        PyThread_acquire_lock(wd_lock, 1);
        for (pp = &wd_list; *pp != NULL; pp = &(*pp)->wd.next) {
            if (*pp == ts) {
                *pp = ts->wd.next;
                break;
            }
        }
        ts->wd.next = NULL;
        poking = ts->wd.poking;
        PyThread_release_lock(wd_lock);
        if (poking) {
            /* the timer is handing this thread a poke: it may need the
             * GIL (and the thread state must outlive it) */
            Py_BEGIN_ALLOW_THREADS
            for (;;) {
                struct timespec d = {0, 20000};
                PyThread_acquire_lock(wd_lock, 1);
                poking = ts->wd.poking;
                PyThread_release_lock(wd_lock);
                if (!poking)
                    break;
                nanosleep(&d, NULL);
            }
            Py_END_ALLOW_THREADS
        }
    }
    ts->wd.caller = NULL;
    ts->wd.counted = 0;
    ts->wd.due = 0;
    ts->wd.soft_irq = 0;
    ts->wd.pending = 0;
    ts->wd.fired = 0;
    hook_off(ts);
}

/* Interpreter exit: stop the timer thread (it must not touch the
 * interpreter once finalization starts). */
void
wd_shutdown(void)
{
    if (wd_lock == NULL || !wd_timer_running)
        return;
    PyThread_acquire_lock(wd_lock, 1);
    wd_stop = 1;
    PyThread_release_lock(wd_lock);
    PyThread_release_lock(wd_sleep);
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        int running;
        PyThread_acquire_lock(wd_lock, 1);
        running = wd_timer_running;
        PyThread_release_lock(wd_lock);
        if (!running)
            break;
        PyThread_release_lock(wd_sleep);
        {
            struct timespec d = {0, 1000000};
            nanosleep(&d, NULL);
        }
    }
    Py_END_ALLOW_THREADS
}
