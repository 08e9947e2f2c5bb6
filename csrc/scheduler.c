/* The per-thread scheduler: the run queue, switching between tasklets,
 * blocking and the deadlock rules, run() and the end of a tasklet.
 *
 * The run queue is a ring that contains the current tasklet; "the end of
 * the queue" is just before the current tasklet.  Every transfer of control
 * goes through sched_switch(), which saves the interpreter state of the
 * tasklet that leaves, moves the C stack (switch.c), and restores the state
 * of the tasklet that resumes.
 */
#include "module.h"
#include "pyframe.h"

#include <assert.h>
#include <stddef.h>
#include "pythread.h"

/* initial-exec: one instruction to reach it instead of a call; the module
 * needs only a pointer of static TLS. */
static _Thread_local sched_thread *sched_tls
    __attribute__((tls_model("initial-exec")));

static void sched_entry(slp_thread *sw);
static void wake_all_others(sched_thread *me);

/* Every live scheduler, so that threads can find each other (GIL). */
static sched_thread *sched_threads;

/* The hub's operations, or NULL in a build without the hub. */
static const sched_hub_ops *hub_ops;

void
sched_register_hub(const sched_hub_ops *ops)
{
    hub_ops = ops;
}

/* The hub can still make a tasklet of this thread runnable. */
static inline int
hub_has_work(sched_thread *ts)
{
    return ts->nparked > 0 || ts->hub.keepalive > 0;
}

/* ------------------------------------------------------------------------
 * Per-thread state.
 */
static void sched_call_schedule_cb(sched_thread *ts, PyObject *prev,
                                   PyObject *next);

/* The thread ends (its thread state's dict is cleared): drop the run
 * queue and main.  Suspended tasklets of the thread become thread-less
 * (thread_id -1).  The record itself is kept, marked dead, because tasklets
 * that were created here still point to it. */
static void
sched_thread_release(PyObject *capsule)
{
    sched_thread *ts = PyCapsule_GetPointer(capsule, "stackless_compat.thread");
    if (ts == NULL) {
        PyErr_Clear();
        return;
    }
    if (!slp_is_finalizing() && ts->current != NULL && sched_tls == ts) {
        /* The thread ends: its suspended tasklets get TaskletExit so their
         * finally blocks run, as in Stackless. */
        PyObject *exc, *val, *tb;
        PyErr_Fetch(&exc, &val, &tb);
        if (sched_kill_all(ts, NULL) < 0)
            PyErr_WriteUnraisable(NULL);
        PyErr_Restore(exc, val, tb);
    }
    if (sched_tls == ts)
        sched_tls = NULL;
    if (slp_st != NULL && hub_ops != NULL)
        hub_ops->thread_end(ts);
    ts->dead = 1;
    if (ts->xt.prev != NULL)
        ts->xt.prev->xt.next = ts->xt.next;
    else if (sched_threads == ts)
        sched_threads = ts->xt.next;
    if (ts->xt.next != NULL)
        ts->xt.next->xt.prev = ts->xt.prev;
    ts->xt.next = ts->xt.prev = NULL;
    if (slp_st != NULL)
        wake_all_others(ts);
    if (slp_is_finalizing() || ts->current == NULL)
        return;
    Py_CLEAR(ts->xt.inbox);
    while (ts->current->next != ts->current) {
        TaskletObject *t = ts->current->next;
        t->flags &= ~TF_SETUP;
        Py_DECREF(ring_remove(ts, t));
    }
    if (ts->current->flags & TF_IN_RING)
        Py_DECREF(ring_remove(ts, ts->current));
    ts->current = NULL;
    Py_CLEAR(ts->main);
    Py_CLEAR(ts->watchdogs);
    Py_CLEAR(ts->initial_stub);
}

static int
sched_register_thread(sched_thread *ts)
{
    PyObject *dict = PyThreadState_GetDict(), *cap;
    int r;
    if (dict == NULL)
        return 0;
    cap = PyCapsule_New(ts, "stackless_compat.thread", sched_thread_release);
    if (cap == NULL)
        return -1;
    r = PyDict_SetItemString(dict, "stackless_compat.thread", cap);
    Py_DECREF(cap);
    return r;
}

sched_thread *
sched_find_thread(unsigned long thread_id)
{
    sched_thread *ts;
    for (ts = sched_threads; ts != NULL; ts = ts->xt.next)
        if (ts->thread_id == thread_id)
            return ts;
    return NULL;
}

/* Another Python thread exists: it may still hand us work, so blocking
 * waits for it instead of being a deadlock (docs/design.md, "The
 * scheduler", blocking). */
static int
other_threads_alive(sched_thread *me)
{
    PyThreadState *t;
    for (t = PyInterpreterState_ThreadHead(me->tstate->interp); t != NULL;
         t = PyThreadState_Next(t))
        if (t != me->tstate)
            return 1;
    return 0;
}

void
sched_wake(sched_thread *ts)
{
    if (ts->xt.waiting) {
        ts->xt.waiting = 0;
        PyThread_release_lock(ts->xt.wake_lock);
    }
    if (hub_ops != NULL)
        hub_ops->wake(ts);
}

static void
wake_all_others(sched_thread *me)
{
    sched_thread *ts;
    for (ts = sched_threads; ts != NULL; ts = ts->xt.next)
        if (ts != me)
            sched_wake(ts);
}

/* Block this OS thread (GIL released) until another thread hands it work,
 * or a while has passed (the caller re-checks).  Returns -1 with an
 * exception when a signal handler raised. */
static int
sched_wait_threads(sched_thread *ts)
{
    PyLockStatus r;
    ts->xt.waiting = 1;
    Py_BEGIN_ALLOW_THREADS
    r = PyThread_acquire_lock_timed(ts->xt.wake_lock, 200000, 1);
    Py_END_ALLOW_THREADS
    ts->xt.waiting = 0;
    if (r == PY_LOCK_INTR || ts->thread_id == slp_main_thread_ident)
        return PyErr_CheckSignals();
    return 0;
}

void
sched_remote_insert(sched_thread *ts, TaskletObject *t, int after_current)
{
    if (!(t->flags & TF_IN_RING)) {
        if (after_current)
            ring_insert_after(ts, ts->current, t);
        else
            ring_append(ts, t);
    }
    sched_wake(ts);
}

static void make_runnable_after(sched_thread *ts, TaskletObject *pos,
                                TaskletObject *t);

/* Parked tasklets that other threads threw into: their watchers belong to
 * this thread, so the abort happens here. */
static void
drain_inbox(sched_thread *ts)
{
    while (ts->xt.inbox != NULL && PyList_GET_SIZE(ts->xt.inbox) > 0) {
        TaskletObject *t = (TaskletObject *)PyList_GET_ITEM(ts->xt.inbox, 0);
        Py_INCREF(t);
        if (PySequence_DelItem(ts->xt.inbox, 0) < 0)
            PyErr_Clear();
        /* Only while the throw is still pending: if the wait completed
         * first and the tasklet already got the exception, it may be
         * parked again in a later wait (a finally block) that must not
         * be cut short. */
        if ((t->flags & TF_PARKED) && Bomb_Check(t->tempval))
            make_runnable_after(ts, ts->current->prev, t);
        Py_DECREF(t);
    }
}

static sched_thread *
sched_create(void)
{
    sched_thread *ts = PyMem_RawCalloc(1, sizeof(sched_thread));
    TaskletObject *main;
    if (ts == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    ts->xt.wake_lock = PyThread_allocate_lock();
    if (ts->xt.wake_lock == NULL) {
        PyMem_RawFree(ts);
        PyErr_NoMemory();
        return NULL;
    }
    PyThread_acquire_lock(ts->xt.wake_lock, 1);
    ts->tstate = PyThreadState_Get();
    ts->thread_id = PyThread_get_thread_ident();
    /* Stackless's layout: item 0 is the interrupt watchdog (the run(timeout)
     * caller) or None, then the run() callers, innermost last */
    ts->watchdogs = PyList_New(1);
    if (ts->watchdogs != NULL)
        PyList_SET_ITEM(ts->watchdogs, 0, Py_NewRef(Py_None));
    if (ts->watchdogs == NULL) {
        PyMem_RawFree(ts);
        return NULL;
    }
    main = tasklet_new_main(ts);
    if (main == NULL) {
        Py_DECREF(ts->watchdogs);
        PyMem_RawFree(ts);
        return NULL;
    }
    slp_thread_init(&ts->sw, &main->stack, sched_entry);
    ts->main = main;                    /* owned by ts */
    Py_INCREF(main);                    /* owned by the ring */
    main->next = main->prev = main;
    main->flags |= TF_IN_RING;
    ts->current = main;
    ts->runcount = 1;
    sched_tls = ts;
    ts->xt.next = sched_threads;
    if (sched_threads != NULL)
        sched_threads->xt.prev = ts;
    sched_threads = ts;
    if (sched_register_thread(ts) < 0)
        PyErr_Clear();      /* then the thread's tasklets leak at its end */
    if (slp_st->schedule_callback != NULL)
        sched_call_schedule_cb(ts, Py_None, (PyObject *)main);
    return ts;
}

sched_thread *
sched_get(void)
{
    sched_thread *ts = sched_tls;
    if (ts != NULL)
        return ts;
    return sched_create();
}

/* ------------------------------------------------------------------------
 * The ring.
 */
void
ring_insert_after(sched_thread *ts, TaskletObject *pos, TaskletObject *t)
{
    assert(!(t->flags & TF_IN_RING) && !tasklet_waiting(t));
    assert(pos->flags & TF_IN_RING);
    Py_INCREF(t);
    t->prev = pos;
    t->next = pos->next;
    pos->next->prev = t;
    pos->next = t;
    t->flags |= TF_IN_RING;
    ts->runcount++;
}

void
ring_append(sched_thread *ts, TaskletObject *t)
{
    ring_insert_after(ts, ts->current->prev, t);
}

TaskletObject *
ring_remove(sched_thread *ts, TaskletObject *t)
{
    assert(t->flags & TF_IN_RING);
    assert(t->next->prev == t && t->prev->next == t);
    assert(ts->runcount > 0);
    t->prev->next = t->next;
    t->next->prev = t->prev;
    t->next = t->prev = NULL;
    t->flags &= ~TF_IN_RING;
    ts->runcount--;
    return t;
}

static void
watchdog_remove(sched_thread *ts, TaskletObject *t)
{
    Py_ssize_t i = PyList_GET_SIZE(ts->watchdogs);
    t->flags &= ~TF_WATCHDOG;
    while (--i >= 1) {          /* item 0 is the interrupt slot */
        if (PyList_GET_ITEM(ts->watchdogs, i) == (PyObject *)t) {
            PyObject *exc, *val, *tb;
            PyErr_Fetch(&exc, &val, &tb);
            if (PySequence_DelItem(ts->watchdogs, i) < 0)
                PyErr_Clear();
            PyErr_Restore(exc, val, tb);
            return;
        }
    }
}

/* The tasklet revived when the queue runs dry: the innermost run() caller,
 * or main. */
static TaskletObject *
wakeup_target(sched_thread *ts)
{
    Py_ssize_t n = PyList_GET_SIZE(ts->watchdogs);
    if (n > 1)
        return (TaskletObject *)PyList_GET_ITEM(ts->watchdogs, n - 1);
    return ts->main;
}

/* A run() caller t is made runnable (by the scheduler or by hand, e.g.
 * t.run()): it leaves the watchdog list, and the run() callers nested
 * inside it go back to the run queue, as in Stackless. */
static void
revive_watchdog(sched_thread *ts, TaskletObject *t)
{
    sched_release_inner_watchdogs(ts, t);
    watchdog_remove(ts, t);
}

/* The one way out of a park: the park state is cleared, and when the wait
 * did not complete (kill, throw, a Timeout, an error before the switch)
 * the wait's abort function stops whatever would still unpark t.  This is
 * the only caller of abort functions (docs/design.md, "The park / abort
 * contract"). */
static void
park_leave(sched_thread *ts, TaskletObject *t, int abort)
{
    sched_abort_fn fn = t->abort_fn;
    void *arg = t->abort_arg;
    assert((t->flags & TF_PARKED) && fn != NULL);
    t->flags &= ~TF_PARKED;
    t->abort_fn = NULL;
    t->abort_arg = NULL;
    ts->nparked--;
    if (abort)
        fn(t, arg);
}

/* Put t right after pos; a watchdog leaves the watchdog list, a waiting
 * tasklet leaves its channel or its park.  A tasklet still in the ring is
 * the current one, blocking while the scheduler waits for the hub or
 * another thread: it only leaves its channel or park. */
static void
make_runnable_after(sched_thread *ts, TaskletObject *pos, TaskletObject *t)
{
    int in_ring = (t->flags & TF_IN_RING) != 0;
    int drop = 0;
    /* The channel's (or the park) reference keeps t alive until the ring
     * has its own; a parked tasklet still in the ring has no park
     * reference. */
    if (t->flags & TF_PARKED) {
        park_leave(ts, t, 1);
        drop = !in_ring;
    }
    else if (t->blocked) {
        channel_remove_waiter(t->chan, t);
        drop = 1;
    }
    if (!in_ring)
        ring_insert_after(ts, pos, t);
    if (drop)
        Py_DECREF(t);
    if (t->flags & TF_WATCHDOG)
        revive_watchdog(ts, t);
}

/* The interrupt watchdog w is revived while run() calls nested inside it
 * are still waiting: those inner watchdogs go back to the run queue (their
 * run() returns when they get their turn), so none is lost. */
void
sched_release_inner_watchdogs(sched_thread *ts, TaskletObject *w)
{
    Py_ssize_t n = PyList_GET_SIZE(ts->watchdogs);
    while (n > 1) {
        TaskletObject *t = (TaskletObject *)PyList_GET_ITEM(ts->watchdogs,
                                                             n - 1);
        if (t == w)
            break;
        if (!(t->flags & TF_IN_RING) && !tasklet_waiting(t))
            make_runnable_after(ts, ts->current->prev, t);
        else
            watchdog_remove(ts, t);
        n = PyList_GET_SIZE(ts->watchdogs);
    }
}

void
sched_make_runnable_after(sched_thread *ts, TaskletObject *pos,
                          TaskletObject *t)
{
    make_runnable_after(ts, pos, t);
}

/* ------------------------------------------------------------------------
 * Switching.
 */
static void
sched_call_schedule_cb(sched_thread *ts, PyObject *prev, PyObject *next)
{
    PyObject *cb = slp_st->schedule_callback, *res;
    PyObject *exc, *val, *tb;
    if (ts->in_callback)
        return;
    PyErr_Fetch(&exc, &val, &tb);
    Py_INCREF(cb);
    ts->in_callback = 1;
    res = PyObject_CallFunctionObjArgs(cb, prev, next, NULL);
    ts->in_callback = 0;
    if (res == NULL)
        slp_write_unraisable_msg("in scheduling callback", cb);
    Py_XDECREF(res);
    Py_DECREF(cb);
    PyErr_Restore(exc, val, tb);
}

/* Not inlined: its return address names the call site whose switch depth
 * the switch core learns (slp_reserve_switch). */
SLP_NOINLINE int
sched_check_switch(sched_thread *ts)
{
    char here;
    TaskletObject *cur = ts->current;
    char *stop;

    if (ts->switch_trap) {
        PyErr_SetString(PyExc_RuntimeError, "switch_trap");
        return -1;
    }
    if (ts->in_callback) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot switch tasklets inside the schedule callback");
        return -1;
    }
    /* Reserve the heap room the switch will need to save the current
     * tasklet's stack (the frames below this one are small, and their
     * size is learned by the switch core), so that the switch itself
     * cannot fail. */
    stop = (cur->flags & TF_MAIN) ? ts->sw.base : cur->stack.stop;
    if (slp_reserve_switch(&ts->sw, &here, stop,
                           __builtin_return_address(0)) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* The tasklets that most likely run after `self` are its successors in the
 * run queue: start bringing them into the cache while `self` runs (a round
 * robin of many tasklets would otherwise wait for memory at every switch).
 * Two steps, as a pipeline: the object of the second successor (its
 * fields say where its saved stack is), and the saved stack of the first,
 * whose object was brought in one switch earlier.  Inlined by force: GCC's
 * interprocedural passes treat a function made of prefetches as having no
 * effect and drop the call. */
static inline __attribute__((always_inline)) void
sched_prefetch_next(sched_thread *ts, TaskletObject *self)
{
    TaskletObject *n = self->next, *n2;
    size_t off;
    /* a handful of tasklets stay in the cache anyway */
    if (ts->runcount < 16 || n == NULL || n == self)
        return;
    slp_stack_prefetch(&n->stack);
    n2 = n->next;
    for (off = 0; off < sizeof(TaskletObject); off += 64)
        __builtin_prefetch((char *)n2 + off, 1, 3);
}

static void
sched_resumed(sched_thread *ts, TaskletObject *self)
{
    PyObject *drop = ts->pending_decref;
    sched_prefetch_next(ts, self);
    pystate_restore(ts->tstate, &self->ps);
    ts->pending_decref = NULL;
    Py_XDECREF(drop);
    if (wd_caller(ts) != NULL)
        wd_resumed(ts);
}

/* The watchdog list's interrupt slot (item 0). */
static void
set_interrupt_slot(sched_thread *ts, TaskletObject *t)
{
    PyList_SetItem(ts->watchdogs, 0,
                   Py_NewRef(t != NULL ? (PyObject *)t : Py_None));
}

/* Run `next` (already in the ring, or the revived/blocked bookkeeping
 * done).  `drop` is a reference the current tasklet gives up; it is released
 * once the switch is complete.  Returns when the current tasklet is resumed.
 * sched_check_switch() must have succeeded just before. */
static SLP_NOINLINE void
sched_do_switch(sched_thread *ts, TaskletObject *next, PyObject *drop)
{
    TaskletObject *self = ts->current;

    if (!(self->flags & TF_ARGS_TRIED))
        tasklet_drop_copied_args(self);
    if (slp_st->schedule_callback != NULL)
        sched_call_schedule_cb(ts, (PyObject *)self, (PyObject *)next);
    if (wd_hook_on(ts))
        wd_leaving(ts);
    pystate_save(ts->tstate, &self->ps, ts->call_sp);
    /* The head of the frame chain lives on the C stack the switch
     * overwrites, and threads that read frames without the GIL
     * (faulthandler's dump_traceback_later, a fatal-error dump) follow it
     * at any moment: until the target's state is restored, the thread
     * state points at no frame. */
    pystate_park(ts->tstate);
    ts->call_sp = NULL;
    ts->current = next;
    ts->pending_decref = drop;
    ts->switches++;
    if (slp_switch(&ts->sw, &next->stack) < 0)
        Py_FatalError("stackless_compat: switch failed after reserving");
    sched_resumed(ts, self);
}

PyObject *
sched_switch(sched_thread *ts, TaskletObject *next, PyObject *drop)
{
    TaskletObject *self = ts->current;
    if (wd_caller(ts) != NULL)
        next = wd_switching(ts, next);
    if (next != self)
        sched_do_switch(ts, next, drop);
    else
        Py_XDECREF(drop);
    return sched_take_tempval(self);
}

PyObject *
sched_take_tempval(TaskletObject *t)
{
    PyObject *v = t->tempval;
    t->tempval = Py_NewRef(Py_None);
    if (Bomb_Check(v))
        return bomb_explode(v);
    return v;
}

/* A throw from another thread cannot switch to its target: it leaves the
 * bomb in the target's tempval.  When the target is running there (its
 * thread let go of the GIL), the bomb waits for its next switch point,
 * which must raise it rather than reuse tempval (that lost the kill).
 * Returns -1 with the exception set, 0 when nothing is pending. */
int
sched_raise_pending(sched_thread *ts)
{
    TaskletObject *cur = ts->current;
    if (!Bomb_Check(cur->tempval))
        return 0;
    Py_XDECREF(sched_take_tempval(cur));    /* a bomb: NULL, raised */
    return -1;
}

/* The one idle loop: the current tasklet `cur` cannot go on (it blocks on
 * a channel, parks, pauses in run(), or ends) and may be the last runnable
 * one.  In order: parked tasklets other threads threw into (the inbox); the
 * hub's waits while tasklets are parked (the idle hook polls, GIL
 * released); the wakeup target (the innermost run() caller, or main), when
 * it may take over; other Python threads, which may still hand this one
 * work (docs/design.md, "The scheduler", blocking).  `ending`: cur is
 * ending, and the wakeup target takes over whenever it is not waiting.
 * Returns IDLE_RUN when something is runnable (cur->next, or cur itself
 * when its own wait completed meanwhile, see ts->parking), IDLE_REVIVE
 * when the wakeup target should be revived, IDLE_NONE when nothing could
 * ever run (a deadlock), IDLE_ERROR with an exception. */
enum { IDLE_ERROR = -1, IDLE_RUN, IDLE_REVIVE, IDLE_NONE };

static int
revivable(sched_thread *ts, TaskletObject *cur, TaskletObject *w, int ending)
{
    if (ending)
        return !tasklet_waiting(w);
    /* run(threadblock=True) with a timeout waits for other threads before
     * its caller returns */
    return w != cur && !(w->flags & TF_IN_RING) && !tasklet_waiting(w) &&
           !(w == wd_caller(ts) && wd_threadblock(ts) &&
             other_threads_alive(ts));
}

static int
sched_idle(sched_thread *ts, TaskletObject *cur, int ending)
{
    for (;;) {
        drain_inbox(ts);
        /* A blocking tasklet is still the current one while the scheduler
         * waits below; if its wait completed meanwhile (another thread sent,
         * the hub fired), it just goes on. */
        if ((ts->parking && !tasklet_waiting(cur)) || cur->next != cur)
            return IDLE_RUN;
        /* While tasklets wait in the hub, wait for the hub: run() goes on
         * while waits can still complete. */
        if (hub_ops != NULL && hub_has_work(ts)) {
            int r = hub_ops->idle(ts);
            if (r < 0)
                return IDLE_ERROR;
            if (r > 0)
                continue;
        }
        if (revivable(ts, cur, wakeup_target(ts), ending))
            return IDLE_REVIVE;
        if (!other_threads_alive(ts))
            return IDLE_NONE;
        if (sched_wait_threads(ts) < 0)
            return IDLE_ERROR;
    }
}

/* The tasklet to run when the current one leaves the ring: the next one,
 * itself when its wait completed while the scheduler waited, or the
 * revived wakeup target (a bomb the blocking tasklet carries, from
 * send_exception, moves to it).  Returns NULL with an exception
 * (RuntimeError for a deadlock), having changed nothing. */
static TaskletObject *
pick_after_leave(sched_thread *ts)
{
    TaskletObject *cur = ts->current, *w;
    switch (sched_idle(ts, cur, 0)) {
    case IDLE_RUN:
        if (ts->parking && !tasklet_waiting(cur))
            return cur;
        return cur->next;
    case IDLE_REVIVE:
        w = wakeup_target(ts);
        if (Bomb_Check(cur->tempval) && cur->blocked > 0) {
            Py_SETREF(w->tempval, cur->tempval);
            cur->tempval = Py_NewRef(Py_None);
        }
        make_runnable_after(ts, cur, w);
        return w;
    case IDLE_NONE:
        PyErr_SetString(PyExc_RuntimeError,
                        "Deadlock: the last runnable tasklet cannot be blocked.");
        return NULL;
    default:
        return NULL;
    }
}

PyObject *
sched_park(sched_thread *ts, sched_abort_fn abort, void *arg)
{
    TaskletObject *cur = ts->current, *next;
    /* parked from here on: every way out below goes through park_leave() */
    cur->flags |= TF_PARKED;
    cur->abort_fn = abort;
    cur->abort_arg = arg;
    ts->nparked++;
    if (cur->flags & TF_BLOCK_TRAP) {
        park_leave(ts, cur, 1);
        PyErr_SetString(PyExc_RuntimeError,
                        "this tasklet does not like to be blocked.");
        return NULL;
    }
    if (sched_raise_pending(ts) < 0 || sched_check_switch(ts) < 0) {
        park_leave(ts, cur, 1);
        return NULL;
    }
    Py_SETREF(cur->tempval, Py_NewRef(Py_None));
    ts->parking = 1;
    next = pick_after_leave(ts);
    ts->parking = 0;
    /* The idle hook may have woken cur itself along with others: cur is
     * still in the ring and runs on. */
    if (next != NULL && !(cur->flags & TF_PARKED))
        next = cur;
    if (next == NULL || next == cur) {
        if (cur->flags & TF_PARKED)
            park_leave(ts, cur, 1);
        if (next == NULL)
            return NULL;
        return sched_take_tempval(cur);
    }
    /* The ring's reference to cur becomes the park reference: a parked
     * tasklet stays alive whoever else lets go of it. */
    ring_remove(ts, cur);
    return sched_switch(ts, next, NULL);
}

int
sched_unpark(TaskletObject *t, PyObject *value)
{
    sched_thread *ts = t->ts;
    assert(ts != NULL && ts == sched_peek());
    if (!(t->flags & TF_PARKED)) {
        Py_XDECREF(value);
        return -1;
    }
    park_leave(ts, t, 0);
    if (Bomb_Check(t->tempval)) {
        /* another thread threw into it meanwhile (its abort is queued in
         * the inbox): the exception wins over the wait's result */
        Py_XDECREF(value);
    }
    else {
        Py_XSETREF(t->tempval, value ? value : Py_NewRef(Py_None));
    }
    if (!(t->flags & TF_IN_RING)) {
        /* the park reference becomes the ring's */
        ring_append(ts, t);
        Py_DECREF(t);
    }
    return 0;
}

int
sched_throw_pending(TaskletObject *t)
{
    return !t->blocked && Bomb_Check(t->tempval);
}

/* schedule() and schedule_remove(). */
PyObject *
sched_schedule(sched_thread *ts, PyObject *retval, int remove)
{
    TaskletObject *cur = ts->current, *next;
    if (retval == NULL)
        retval = (PyObject *)cur;
    if (sched_raise_pending(ts) < 0)
        return NULL;
    if (ts->xt.inbox != NULL && PyList_GET_SIZE(ts->xt.inbox) > 0)
        drain_inbox(ts);
    if (hub_has_work(ts) && hub_ops != NULL &&
        ++ts->poll_countdown >= 64) {
        /* tasklets that only schedule() must not starve the hub's waits */
        ts->poll_countdown = 0;
        hub_ops->poll(ts);
    }
    if (!remove && cur->next == cur && !wd_soft_due(ts)) {
        /* Nobody else to run: no switch at all. */
        return Py_NewRef(retval);
    }
    if (sched_check_switch(ts) < 0)
        return NULL;
    if (remove) {
        next = pick_after_leave(ts);
        if (next == NULL)
            return NULL;
    }
    else if (cur->next == cur) {
        if (!wd_soft_due(ts))
            return Py_NewRef(retval);
        next = cur;             /* a soft interrupt revives run() */
    }
    else {
        next = cur->next;
    }
    Py_SETREF(cur->tempval, Py_NewRef(retval));
    if (remove)
        return sched_switch(ts, next, (PyObject *)ring_remove(ts, cur));
    return sched_switch(ts, next, NULL);
}

TaskletObject *
sched_block_pick(sched_thread *ts)
{
    TaskletObject *next;
    ts->parking = 1;
    next = pick_after_leave(ts);
    ts->parking = 0;
    return next;
}

PyObject *
sched_run(sched_thread *ts, double timeout, int threadblock, int soft,
          int ignore_nesting, int totaltimeout)
{
    TaskletObject *cur = ts->current, *next;
    PyObject *res;
    int armed = 0;

    if (sched_raise_pending(ts) < 0)
        return NULL;
    if (cur->next == cur && !(timeout > 0 && threadblock) &&
        !hub_has_work(ts))
        Py_RETURN_NONE;
    if (sched_check_switch(ts) < 0)
        return NULL;
    /* Only the outermost run() with a timeout is the interrupt watchdog;
     * inner ones behave as timeout=0, as in Stackless. */
    if (timeout > 0 && wd_caller(ts) == NULL) {
        if (wd_arm(ts, cur, timeout, soft, ignore_nesting, totaltimeout,
                   threadblock) < 0)
            return NULL;
        armed = 1;
        set_interrupt_slot(ts, cur);
    }
    if (cur->next == cur) {
        /* nothing runnable yet: wait for the hub's waits (and, with
         * threadblock, for other threads) */
        next = pick_after_leave(ts);
        if (next == NULL || next == cur) {
            if (armed) {
                wd_disarm(ts);
                set_interrupt_slot(ts, NULL);
            }
            if (next == NULL)
                return NULL;
            Py_RETURN_NONE;
        }
    }
    if (PyList_Append(ts->watchdogs, (PyObject *)cur) < 0) {
        if (armed) {
            wd_disarm(ts);
            set_interrupt_slot(ts, NULL);
        }
        return NULL;
    }
    cur->flags |= TF_WATCHDOG;
    next = cur->next;
    Py_SETREF(cur->tempval, Py_NewRef(Py_None));
    res = sched_switch(ts, next, (PyObject *)ring_remove(ts, cur));
    if (cur->flags & TF_WATCHDOG)
        revive_watchdog(ts, cur);   /* woken by hand: insert(), run(),
                                     * throw(), kill() */
    if (armed) {
        wd_disarm(ts);
        set_interrupt_slot(ts, NULL);
    }
    if (res == NULL)
        return NULL;
    if (Tasklet_Check(res))
        return res;             /* the interrupted tasklet */
    Py_DECREF(res);
    Py_RETURN_NONE;
}

/* throw(), raise_exception(), kill(); `bomb` is stolen.  With
 * return_here, the target is queued just before the caller, so that the
 * caller runs again as soon as the target yields or ends (finalizers). */
static PyObject *
sched_throw_impl(TaskletObject *t, PyObject *bomb, int pending, int is_kill,
                 int return_here)
{
    sched_thread *ts = sched_get();
    TaskletObject *cur;

    if (ts == NULL) {
        Py_DECREF(bomb);
        return NULL;
    }
    cur = ts->current;
    if (tasklet_ts(t) == NULL) {
        Py_DECREF(bomb);
        if (is_kill && !tasklet_alive(t))
            Py_RETURN_NONE;
        if (is_kill && tasklet_started(t) && !(t->flags & TF_MAIN)) {
            /* Its thread is gone: nothing can run it; drop its frames
             * (as Stackless does for a tasklet whose thread ended). */
            sched_forget(t);
            pystate_discard(&t->ps);
            slp_stack_reset(&t->stack);
            Py_RETURN_NONE;
        }
        PyErr_SetString(PyExc_RuntimeError, "tasklet has no thread");
        return NULL;
    }
    if (!tasklet_alive(t)) {
        Py_DECREF(bomb);
        if (is_kill)
            Py_RETURN_NONE;
        PyErr_SetString(PyExc_RuntimeError,
                        "You cannot throw to a dead tasklet");
        return NULL;
    }
    if (tasklet_ts(t) != ts) {
        /* Another thread's tasklet: make it runnable there with the bomb
         * and wake that thread; never switch here (docs/design.md,
         * "The scheduler", threads). */
        sched_thread *tts = t->ts;
        if (t->flags & TF_PARKED) {
            /* its watcher belongs to that thread: abort it there */
            if ((tts->xt.inbox == NULL && (tts->xt.inbox = PyList_New(0)) == NULL) ||
                PyList_Append(tts->xt.inbox, (PyObject *)t) < 0) {
                Py_DECREF(bomb);
                return NULL;
            }
        }
        Py_SETREF(t->tempval, bomb);
        /* A channel waiter leaves its channel now, also when it is the
         * current tasklet there, waiting for the hub or for other threads
         * (in the ring): left on the channel, a sender would replace the
         * bomb with its value.  Its thread sees it unblocked and goes on
         * in it. */
        if (!(t->flags & TF_PARKED) &&
            (t->blocked || !(t->flags & TF_IN_RING)))
            make_runnable_after(tts, tts->current, t);
        sched_wake(tts);
        Py_RETURN_NONE;
    }
    if (t == cur)
        return bomb_explode(bomb);
    if (!pending && sched_check_switch(ts) < 0) {
        Py_DECREF(bomb);
        return NULL;
    }
    Py_SETREF(t->tempval, bomb);
    /* A run() caller thrown into stays in the watchdog list until its run()
     * resumes with the bomb; only then do the run() callers nested in it go
     * back to the run queue (sched_run), at its end as seen from it, as
     * Stackless's run() pops them when it resumes. */
    if (return_here && (t->flags & TF_IN_RING)) {
        Py_INCREF(t);
        Py_DECREF(ring_remove(ts, t));
        ring_insert_after(ts, cur->prev, t);
        Py_DECREF(t);
    }
    else if (!(t->flags & TF_IN_RING)) {
        TaskletObject *pos = (pending || return_here) ? cur->prev : cur;
        if ((t->flags & TF_WATCHDOG) && !tasklet_waiting(t))
            ring_insert_after(ts, pos, t);
        else
            make_runnable_after(ts, pos, t);
    }
    if (pending)
        Py_RETURN_NONE;
    return sched_switch(ts, t, NULL);
}

PyObject *
sched_throw(TaskletObject *t, PyObject *bomb, int pending, int is_kill)
{
    return sched_throw_impl(t, bomb, pending, is_kill, 0);
}

/* Kill a suspended tasklet so that its finally blocks run, and come back
 * right after (finalizers, interpreter exit).  Returns 0 or -1. */
int
tasklet_finalize_kill(TaskletObject *t)
{
    PyObject *bomb, *res;
    bomb = bomb_new(slp_st->TaskletExit, NULL, NULL);
    if (bomb == NULL)
        return -1;
    res = sched_throw_impl(t, bomb, 0, 1, 1);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

/* ------------------------------------------------------------------------
 * A tasklet's life on the C stack: sched_entry() runs on the thread's base
 * when the tasklet is first switched to, and ends with slp_exit().
 */
static void all_link(sched_thread *ts, TaskletObject *t)
{
    t->all_prev = NULL;
    t->all_next = ts->all;
    if (ts->all != NULL)
        ts->all->all_prev = t;
    ts->all = t;
}

static void all_unlink(sched_thread *ts, TaskletObject *t)
{
    if (t->all_prev != NULL)
        t->all_prev->all_next = t->all_next;
    else if (ts->all == t)
        ts->all = t->all_next;
    if (t->all_next != NULL)
        t->all_next->all_prev = t->all_prev;
    t->all_next = t->all_prev = NULL;
}

static PyObject *
make_runtime_bomb(const char *msg)
{
    PyObject *s = PyUnicode_FromString(msg), *b;
    if (s == NULL)
        return NULL;
    b = bomb_new(PyExc_RuntimeError, s, NULL);
    Py_DECREF(s);
    return b;
}

/* An exception escaped tasklet t: decide where it goes (as Stackless does).
 * Returns a bomb for the watchdog, or NULL when the error is done with.
 * *to_main is set for SystemExit. */
static SLP_NOINLINE PyObject *
uncaught_error(sched_thread *ts, int *to_main)
{
    PyObject *handler;
    if (PyErr_ExceptionMatches(slp_st->TaskletExit)) {
        PyErr_Clear();
        return NULL;
    }
    if (PyErr_ExceptionMatches(PyExc_SystemExit)) {
        if (ts->thread_id != slp_main_thread_ident) {
            PyErr_Clear();
            return NULL;
        }
        *to_main = 1;
        return bomb_from_error();
    }
    handler = slp_st->error_handler;
    if (handler != NULL) {
        PyObject *typ, *val, *tb, *res;
        PyErr_Fetch(&typ, &val, &tb);
        PyErr_NormalizeException(&typ, &val, &tb);
        Py_INCREF(handler);
        res = PyObject_CallFunctionObjArgs(handler, typ,
                                           val ? val : Py_None,
                                           tb ? tb : Py_None, NULL);
        Py_DECREF(handler);
        Py_XDECREF(typ);
        Py_XDECREF(val);
        Py_XDECREF(tb);
        if (res != NULL) {
            Py_DECREF(res);
            return NULL;
        }
    }
    return bomb_from_error();
}

/* A tasklet ends and nothing else is runnable: wait for the hub while
 * tasklets are parked.  Returns 1 when something became runnable.  An error
 * of the wait (KeyboardInterrupt) goes to main as a bomb. */
static int
end_wait_error(sched_thread *ts, TaskletObject *t)
{
    PyObject *bomb = bomb_from_error();
    if (bomb == NULL) {
        PyErr_Clear();
        return t->next != t;
    }
    Py_SETREF(ts->main->tempval, bomb);
    if (!(ts->main->flags & TF_IN_RING))
        make_runnable_after(ts, t, ts->main);
    return 1;
}

static int
sched_end_wait(sched_thread *ts, TaskletObject *t)
{
    int r = sched_idle(ts, t, 1);
    if (r == IDLE_ERROR)
        return end_wait_error(ts, t);
    return r == IDLE_RUN;
}

static SLP_NOINLINE SLP_NORETURN void
sched_end(sched_thread *ts, TaskletObject *t, PyObject *result)
{
    PyObject *bomb = NULL;
    TaskletObject *next, *w;
    int to_main = 0;

    if (wd_hook_on(ts))
        wd_leaving(ts);
    if (result == NULL)
        bomb = uncaught_error(ts, &to_main);
    else
        Py_DECREF(result);
    if (bomb == NULL && PyErr_Occurred()) {
        /* Could not even pack the error (out of memory). */
        PyErr_WriteUnraisable((PyObject *)t);
    }
    /* may run Python code; the trace functions go after the callback */
    pystate_finish_release_keep_trace(ts->tstate);
    if (PyErr_Occurred())
        PyErr_WriteUnraisable((PyObject *)t);

    /* From here on no Python code runs until the next tasklet does. */
    if (bomb != NULL) {
        w = to_main ? ts->main : wakeup_target(ts);
        Py_SETREF(w->tempval, bomb);
        if (!(w->flags & TF_IN_RING))
            make_runnable_after(ts, t, w);
        next = w;
    }
    else if (t->next != t || sched_end_wait(ts, t)) {
        next = t->next;
    }
    else {
        w = wakeup_target(ts);
        if (tasklet_waiting(w)) {
            PyObject *b = make_runtime_bomb(
                w->blocked < 0
                    ? "the main tasklet is receiving without a sender available."
                    : "the main tasklet is sending without a receiver available.");
            if (b == NULL) {
                PyErr_Clear();
                b = Py_NewRef(Py_None);
            }
            Py_SETREF(w->tempval, b);
        }
        else if (w->flags & TF_IN_RING) {
            Py_FatalError("stackless_compat: run queue corrupted");
        }
        make_runnable_after(ts, t, w);
        next = w;
    }
    if (wd_caller(ts) != NULL)
        next = wd_switching(ts, next);
    all_unlink(ts, t);
    pystate_finish_free(ts->tstate, &t->ps);
    t->flags &= ~TF_SETUP;
    ts->pending_decref = (PyObject *)ring_remove(ts, t);
    /* the callback runs while t is still current, as in Stackless (its
     * trace function is the thread's, next's is next's own) */
    if (slp_st->schedule_callback != NULL)
        sched_call_schedule_cb(ts, (PyObject *)t, (PyObject *)next);
    pystate_release_trace(ts->tstate);      /* may run Python code */
    if (PyErr_Occurred())
        PyErr_WriteUnraisable((PyObject *)t);
    ts->current = next;
    pystate_park(ts->tstate);               /* as in a switch */
    slp_exit(&ts->sw, &next->stack);
}

/* Call the tasklet's function with the arguments it owns (borrowed here:
 * references held only by this C frame would be invisible to the garbage
 * collector). */
static PyObject *
call_bound(TaskletObject *t)
{
    PyObject *args = t->args;
    if (t->func == NULL || args == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the tasklet was not bound to a function");
        return NULL;
    }
    if (t->kwargs == NULL)
        return PyObject_Vectorcall(t->func, &PyTuple_GET_ITEM(args, 0),
                                   PyTuple_GET_SIZE(args), NULL);
    return PyObject_VectorcallDict(t->func, &PyTuple_GET_ITEM(args, 0),
                                   PyTuple_GET_SIZE(args), t->kwargs);
}

/* The bottom of every tasklet's C stack; its frame is part of every
 * suspended tasklet's saved slice, so it stays small. */
static void
sched_entry(slp_thread *sw)
{
    sched_thread *ts = (sched_thread *)((char *)sw -
                                        offsetof(sched_thread, sw));
    TaskletObject *t = ts->current;
    PyObject *tv, *result;

    pystate_start(ts->tstate, &t->ps, t->func, t->context);
    Py_CLEAR(t->context);
    Py_CLEAR(ts->pending_decref);
    if (wd_caller(ts) != NULL)
        wd_resumed(ts);
    all_link(ts, t);
    t->flags &= ~TF_SETUP;
    tv = t->tempval;
    t->tempval = Py_NewRef(Py_None);
    if (pyframe_is_resumer(t->func)) {
        /* Unpickled frames: they continue where they stopped (a bomb is
         * raised in the innermost one). */
        result = pyframe_resume(t->func, tv);
    }
    else if (Bomb_Check(tv)) {
        /* Killed or thrown into before it started: raise in the bootstrap
         * frame, before any of its code runs. */
        result = bomb_explode(tv);
    }
    else {
        Py_DECREF(tv);
        result = call_bound(t);
    }
    Py_CLEAR(t->args);
    Py_CLEAR(t->kwargs);
    sched_end(ts, t, result);
}

/* ------------------------------------------------------------------------
 * Interpreter exit / thread end: kill every suspended tasklet of this
 * thread with TaskletExit so that its finally blocks run -- except those
 * drop(t) drops (returns 1 for) -- then empty the run queue.
 */
int
sched_kill_all(sched_thread *ts, int (*drop)(TaskletObject *t))
{
    int round;
    for (round = 0; round < 10; round++) {
        TaskletObject *t;
        PyObject *victims = PyList_New(0);
        Py_ssize_t i;
        if (victims == NULL)
            return -1;
        for (t = ts->all; t != NULL; t = t->all_next) {
            if (t != ts->current && !(t->flags & TF_MAIN) &&
                PyList_Append(victims, (PyObject *)t) < 0) {
                Py_DECREF(victims);
                return -1;
            }
        }
        if (PyList_GET_SIZE(victims) == 0) {
            Py_DECREF(victims);
            break;
        }
        for (i = 0; i < PyList_GET_SIZE(victims); i++) {
            t = (TaskletObject *)PyList_GET_ITEM(victims, i);
            if (tasklet_started(t) && t != ts->current &&
                (drop == NULL || !drop(t)) &&
                tasklet_finalize_kill(t) < 0)
                PyErr_WriteUnraisable((PyObject *)t);
        }
        Py_DECREF(victims);
    }
    /* Tasklets that never started are simply dropped from the queue. */
    while (ts->current->next != ts->current) {
        TaskletObject *t = ts->current->next;
        t->flags &= ~TF_SETUP;
        Py_CLEAR(t->args);
        Py_CLEAR(t->kwargs);
        Py_DECREF(ring_remove(ts, t));
    }
    return 0;
}

/* A suspended tasklet that cannot be killed is being deallocated. */
void
sched_forget(TaskletObject *t)
{
    if (tasklet_ts(t) != NULL)
        all_unlink(t->ts, t);
}

sched_thread *
sched_peek(void)
{
    return sched_tls;
}
