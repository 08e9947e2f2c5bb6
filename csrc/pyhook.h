/* The watchdog's part of the version layer (pyhook.c): how a C hook gets
 * into a thread's bytecode loop on each supported CPython.  Nothing outside
 * pyhook.c touches the interpreter internals these need.
 *
 * Two services:
 *   - a C trace hook on the calling thread that stands in for the thread's
 *     own trace function (sys.settrace) while it is installed: the hook
 *     gets the thread's trace object as its first argument, so
 *     sys.gettrace() still reports it, and passes every event it does not
 *     want on to the saved function;
 *   - a poke: from any thread, without the GIL, make a function run soon
 *     on a given thread, with the GIL, between two of its instructions.
 */
#ifndef SLP_PYHOOK_H
#define SLP_PYHOOK_H

#include <Python.h>

typedef struct {
    Py_tracefunc func;          /* the thread's own trace function */
    PyObject *obj;              /* owned: its trace object */
    int installed;
} pyhook_saved;

/* Install `hook` as the calling thread's trace function, saving the
 * thread's own one in *saved (which must not be installed).  Returns 0, or
 * -1 with an exception. */
int pyhook_install(Py_tracefunc hook, pyhook_saved *saved);
/* Put the saved trace function back (no-op when not installed), if `hook`
 * is still the thread's trace function (CPython drops a trace function that
 * raised).  Never raises. */
void pyhook_uninstall(Py_tracefunc hook, pyhook_saved *saved);
/* 1 if `hook` is still the calling thread's trace function (sys.settrace()
 * replaces it), 0 otherwise. */
int pyhook_is_installed(Py_tracefunc hook, pyhook_saved *saved);
/* Pass an event the hook received on to the saved trace function. */
int pyhook_chain(pyhook_saved *saved, PyObject *obj, PyFrameObject *frame,
                 int what, PyObject *arg);
/* Ask for an opcode event at every instruction of `frame` (on=1) or stop
 * (on=0); calling thread.  Returns 0, or -1 (exception cleared) when this
 * CPython cannot deliver them to a C hook (see pyhook_opcode_events). */
int pyhook_trace_opcodes(PyFrameObject *frame, int on);
/* 1 where a C hook can get opcode events (3.11: needed, a loop that jumps
 * to its own line has no line events there); 0 where it cannot (3.12+,
 * whose line events include every backward jump). */
int pyhook_opcode_events(void);

/* Make fn(arg) run on thread `tstate` (not the caller's) with the GIL held,
 * between two instructions, as soon as that thread runs Python code.  fn
 * must not switch tasklets (it runs inside CPython's pending-call
 * machinery); it may run on another thread than asked, once in a while,
 * and must then check and ask again.  Callable without the GIL from any
 * thread that has no Python thread state (the watchdog's timer); returns 0,
 * or -1 if the request could not be queued (try again later). */
int pyhook_poke(PyThreadState *tstate, int (*fn)(void *), void *arg);
/* The interpreter is shutting down: no poke may be started any more. */
int pyhook_finalizing(void);

#endif /* SLP_PYHOOK_H */
