/* The watchdog: run(timeout) pre-empts a tasklet that runs too long
 * without switching (STACKLESS_API.md §6.2), on a stock interpreter.
 *
 * CPython 3.11 counts no ticks, so a tick is time: SLP_TICK_NS of wall
 * clock, about what one bytecode instruction takes, with a floor of
 * SLP_WD_MIN_NS per slice.  One C thread (the timer, started on first use,
 * holding no thread state between wake-ups) watches every thread that has
 * an interrupt watchdog: it reads that thread's switch counter, and when
 * the counter has not moved for the timeout (or, with totaltimeout, when
 * the run() call has lasted that long) it takes the GIL (PyGILState_Ensure:
 * the busy thread lets go of it within the switch interval, 5 ms by
 * default) and installs a trace hook on that thread's current tasklet.
 * (Py_AddPendingCall() cannot be used: from a thread other than the main
 * one, CPython 3.11 does not signal the main thread's eval loop.)
 *
 * The hook runs at the next line event in the tasklet that ran too long,
 * removes itself (restoring the tasklet's own trace function) and, unless
 * the interrupt has to wait (atomic, nesting_level > 0 without
 * ignore_nesting, switch_trap, scheduler callback), removes that tasklet
 * from the run queue and revives the watchdog, whose run() returns it.
 * With soft=True nothing is interrupted: run() returns at the next
 * schedule() instead.
 *
 * Cost for programs that never use the watchdog: one counter increment per
 * switch.  While a watchdog is armed: the timer thread's wake-ups, and no
 * tracing at all until an interrupt is due.
 */
#include "module.h"

#include <time.h>

#define SLP_TICK_NS 20LL
#define SLP_WD_MIN_NS 1000000LL         /* 1 ms */
#define SLP_WD_MAX_SLEEP_NS 10000000LL  /* 10 ms */

static PyThread_type_lock wd_lock;      /* guards the list below */
static PyThread_type_lock wd_sleep;     /* released to wake the timer */
static sched_thread *wd_list;           /* threads with an armed watchdog */
static int wd_timer_running;
static int wd_stop;

static long long
now_ns(void)
{
    struct timespec tp;
    clock_gettime(CLOCK_MONOTONIC, &tp);
    return (long long)tp.tv_sec * 1000000000LL + tp.tv_nsec;
}

/* --- the hook ---------------------------------------------------------- */

static int wd_trace(PyObject *obj, PyFrameObject *frame, int what,
                    PyObject *arg);

/* Put the hook on ts's current tasklet (GIL held; maybe from the timer). */
static void
wd_install_hook(sched_thread *ts)
{
    PyThreadState *tstate = ts->tstate;
    if (ts->wd_hooked != NULL || ts->current == NULL)
        return;
    ts->wd_saved_func = tstate->c_tracefunc;
    ts->wd_saved_obj = Py_XNewRef(tstate->c_traceobj);
    ts->wd_hooked = ts->current;
    if (_PyEval_SetTrace(tstate, wd_trace, NULL) < 0) {
        PyErr_Clear();
        Py_CLEAR(ts->wd_saved_obj);
        ts->wd_saved_func = NULL;
        ts->wd_hooked = NULL;
        return;
    }
    /* Line events alone miss a loop that never leaves its line (while
     * True: pass): ask for an event at the next instruction. */
    ts->wd_frame = pystate_trace_opcodes_on(tstate);
    if (ts->wd_frame == NULL)
        PyErr_Clear();
}

/* Take the hook off again, wherever it is (GIL held, in ts's thread). */
static void
wd_remove_hook(sched_thread *ts)
{
    TaskletObject *t = ts->wd_hooked;
    PyObject *obj = ts->wd_saved_obj;
    Py_tracefunc func = ts->wd_saved_func;
    if (t == NULL)
        return;
    pystate_trace_opcodes_off(ts->wd_frame);
    Py_CLEAR(ts->wd_frame);
    ts->wd_hooked = NULL;
    ts->wd_saved_obj = NULL;
    ts->wd_saved_func = NULL;
    if (t == ts->current) {
        if (_PyEval_SetTrace(ts->tstate, func, obj) < 0)
            PyErr_Clear();
        Py_XDECREF(obj);
    }
    else if (!(tasklet_started(t) &&
               /* suspended with the hook in its saved state */
               pystate_swap_saved_trace(&t->ps, wd_trace, func, obj))) {
        Py_XDECREF(obj);
    }
}

/* An interrupt that had to wait is delivered now (atomic was cleared). */
void
wd_retry(sched_thread *ts)
{
    if (ts->wd_pending && ts->wd_caller != NULL) {
        ts->wd_pending = 0;
        wd_install_hook(ts);
    }
}

static int
wd_must_wait(sched_thread *ts, TaskletObject *t)
{
    if (t->flags & TF_ATOMIC)
        return 1;
    if (ts->switch_trap || ts->in_callback)
        return 1;
    if (!ts->wd_ignore_nesting && !(t->flags & TF_IGNORE_NESTING) &&
        pystate_nesting_level(ts->tstate, NULL) > 0)
        return 1;
    return 0;
}

static int
wd_trace(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
    sched_thread *ts = sched_peek();
    TaskletObject *victim, *w;
    PyObject *res;
    (void)obj;
    (void)frame;
    (void)what;
    (void)arg;
    if (ts == NULL)
        return 0;
    wd_remove_hook(ts);
    ts->wd_fired = 0;
    w = ts->wd_caller;
    victim = ts->current;
    if (w == NULL || victim == w)
        return 0;
    if (wd_must_wait(ts, victim)) {
        /* atomic: retried when it clears; the others: the timer fires
         * again while the condition lasts */
        ts->wd_pending = (victim->flags & TF_ATOMIC) != 0;
        ts->wd_seen_ns = now_ns();
        ts->wd_deferred++;
        return 0;
    }
    if (ts->wd_soft) {
        ts->wd_soft_stop = 1;
        return 0;
    }
    if (sched_check_switch(ts) < 0)
        return -1;
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

/* --- the timer --------------------------------------------------------- */

static int
wd_still_armed(sched_thread *ts)
{
    sched_thread *p;
    int found = 0;
    PyThread_acquire_lock(wd_lock, 1);
    for (p = wd_list; p != NULL; p = p->wd_next)
        if (p == ts)
            found = 1;
    PyThread_release_lock(wd_lock);
    return found;
}

static void
wd_deliver(sched_thread *ts)
{
    if (_Py_IsFinalizing())
        return;
    {
        PyGILState_STATE g = PyGILState_Ensure();
        if (wd_still_armed(ts) && ts->wd_fired)
            wd_install_hook(ts);
        PyGILState_Release(g);
    }
}

static void
wd_timer_main(void *unused)
{
    (void)unused;
    for (;;) {
        sched_thread *ts, *fire[16];
        int nfire = 0;
        long long now, sleep_ns = SLP_WD_MAX_SLEEP_NS;

        PyThread_acquire_lock(wd_lock, 1);
        if (wd_stop) {
            wd_timer_running = 0;
            PyThread_release_lock(wd_lock);
            return;
        }
        now = now_ns();
        for (ts = wd_list; ts != NULL; ts = ts->wd_next) {
            long long deadline;
            if (ts->wd_fired)
                continue;
            if (ts->wd_total) {
                deadline = ts->wd_start_ns + ts->wd_timeout_ns;
            }
            else {
                unsigned long sw = *(volatile unsigned long *)&ts->switches;
                if (sw != ts->wd_seen_switches) {
                    ts->wd_seen_switches = sw;
                    ts->wd_seen_ns = now;
                }
                deadline = ts->wd_seen_ns + ts->wd_timeout_ns;
            }
            if (now >= deadline) {
                if (nfire < 16) {
                    ts->wd_fired = 1;
                    fire[nfire++] = ts;
                }
            }
            else if (deadline - now < sleep_ns) {
                sleep_ns = deadline - now;
            }
        }
        PyThread_release_lock(wd_lock);
        while (nfire > 0)
            wd_deliver(fire[--nfire]);
        if (sleep_ns < 50000)
            sleep_ns = 50000;
        PyThread_acquire_lock_timed(wd_sleep, sleep_ns / 1000, 0);
    }
}

static int
wd_start_timer(void)
{
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
    long long ns = (long long)(timeout * (double)SLP_TICK_NS);
    if (ns < SLP_WD_MIN_NS)
        ns = SLP_WD_MIN_NS;
    if (wd_start_timer() < 0)
        return -1;
    PyThread_acquire_lock(wd_lock, 1);
    ts->wd_caller = caller;
    ts->wd_timeout_ns = ns;
    ts->wd_soft = soft;
    ts->wd_ignore_nesting = ignore_nesting;
    ts->wd_total = totaltimeout;
    ts->wd_threadblock = threadblock;
    ts->wd_start_ns = ts->wd_seen_ns = now_ns();
    ts->wd_seen_switches = ts->switches;
    ts->wd_fired = 0;
    ts->wd_pending = 0;
    ts->wd_soft_stop = 0;
    ts->wd_next = wd_list;
    wd_list = ts;
    PyThread_release_lock(wd_lock);
    PyThread_release_lock(wd_sleep);    /* let the timer see the new one */
    return 0;
}

void
wd_disarm(sched_thread *ts)
{
    sched_thread **pp;
    PyThread_acquire_lock(wd_lock, 1);
    for (pp = &wd_list; *pp != NULL; pp = &(*pp)->wd_next) {
        if (*pp == ts) {
            *pp = ts->wd_next;
            break;
        }
    }
    ts->wd_next = NULL;
    ts->wd_caller = NULL;
    ts->wd_fired = 0;
    ts->wd_pending = 0;
    ts->wd_soft_stop = 0;
    PyThread_release_lock(wd_lock);
    wd_remove_hook(ts);
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
