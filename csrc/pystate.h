/* Per-tasklet interpreter state: what CPython keeps in the thread state but
 * Stackless keeps per tasklet.  This is the version layer: pystate.c (with
 * the other csrc/py*.c files) and compat.h are the only files that know the
 * CPython version or its private structures; everything else calls the
 * functions below.  tests/test_version_layer.py enforces it.
 */
#ifndef SLP_PYSTATE_H
#define SLP_PYSTATE_H

#include <Python.h>

/* What a suspended tasklet keeps of the interpreter's per-thread state.
 * Opaque outside pystate.c, whose version block defines the real layout
 * (checked at compile time to fit); the storage is inline in the tasklet so
 * that creating one costs no extra allocation.  The largest version's
 * layout sets the size: every blocked tasklet pays for it. */
#define PYSTATE_SAVED_WORDS 18
typedef struct pystate_saved {
    void *opaque[PYSTATE_SAVED_WORDS];
} pystate_saved;

/* ImportError unless the running interpreter is the one we were built for. */
int pystate_check_version(void);

/* Cache the data stack chunks CPython allocates for deep calls, so that a
 * tasklet whose small first chunk overflows does not map and unmap memory
 * on every call.  Called once at import. */
void pystate_install_chunk_cache(void);

/* Move the running tasklet's state out of the thread state into s.
 * call_sp, when not NULL, is the end of the argument array of the C call
 * the tasklet is suspended in; if it lies in the top frame's value stack
 * (a call straight from the eval loop), the stack's extent is recorded so
 * that the collector can see the references on it. */
void pystate_save(PyThreadState *ts, pystate_saved *s,
                  PyObject *const *call_sp);

/* Move s back into the thread state (s keeps no references). */
void pystate_restore(PyThreadState *ts, pystate_saved *s);

/* First thing a new tasklet does: give the thread state a fresh frame chain
 * of its own, a small data stack sized for `callable`,
 * recursion depth 0, no handled exception, no tracing, and the context
 * `context` (a new reference is taken; NULL for an empty one).  Cannot
 * fail: without memory for a small first chunk, CPython allocates one. */
void pystate_start(PyThreadState *ts, pystate_saved *s,
                   PyObject *callable, PyObject *context);

/* During the raw stack switch (between pystate_save() and the target's
 * pystate_restore() or pystate_start()): leave the thread state pointing at
 * no frame that lives on the C stack being replaced, so that a reader
 * without the GIL (faulthandler) never follows one. */
void pystate_park(PyThreadState *ts);

/* Last thing a finished tasklet does before it switches away for good:
 * release the references it holds in the thread state (this may run Python
 * code) -- first all but the trace and profile functions, then those (so
 * that the schedule callback at its end still sees them, as in Stackless)
 * -- and free its data stack.  Afterwards the thread state must not be
 * used until another tasklet's state is restored. */
void pystate_finish_release_keep_trace(PyThreadState *ts);
void pystate_release_trace(PyThreadState *ts);
void pystate_finish_free(PyThreadState *ts, pystate_saved *s);

/* Drop the state of a suspended tasklet that will never run again
 * (its frames are abandoned, not finalized). */
void pystate_discard(pystate_saved *s);

/* Does calling f copy its positional arguments into a new frame before
 * any of its code runs (a Python function with CPython's own call)?  The
 * caller's argument array is not used after that. */
int pystate_copies_args(PyObject *f);

/* The top Python frame of a suspended tasklet (new reference), or None. */
PyObject *pystate_frame(PyThreadState *ts, pystate_saved *s);
/* Same for the running tasklet of ts. */
PyObject *pystate_current_frame(PyThreadState *ts);

/* Entry frames below the top minus one (0 for plain Python code);
 * s == NULL means the running tasklet of ts. */
int pystate_nesting_level(PyThreadState *ts, pystate_saved *s);
/* The C-level nesting Stackless would report: like pystate_nesting_level,
 * but not counting Python code entered from a call instruction or a
 * generator resumption (Stackless made those calls without C recursion).
 * With `s` (a suspended tasklet), `ts` is not used and may be NULL. */
int pystate_stackless_nesting(PyThreadState *ts, pystate_saved *s);
int pystate_recursion_depth(PyThreadState *ts, pystate_saved *s);

/* Is the cyclic garbage collector running (finalizers called by it)? */
int pystate_gc_collecting(void);

/* GC support for a suspended tasklet: visit the references its state and
 * its thread-owned frames hold. */
int pystate_traverse(pystate_saved *s, visitproc visit, void *arg);

/* The running tasklet's context (borrowed, may be NULL) and replacing it. */
PyObject *pystate_get_context(PyThreadState *ts);
void pystate_set_context(PyThreadState *ts, PyObject *ctx);


/* sys.settrace()/setprofile() per tasklet: find the C trampolines CPython
 * uses for Python-level trace functions (once, at import). */
int pystate_init_trampolines(void);
/* The Python-level trace (profile=0) or profile (1) function of the running
 * tasklet (s == NULL) or of a suspended one, or None (new reference). */
PyObject *pystate_get_trace(PyThreadState *ts, pystate_saved *s, int profile);
/* Set it; s == NULL: the running tasklet (calling thread only).  fn may be
 * None.  Returns 0 or -1. */
int pystate_set_trace(PyThreadState *ts, pystate_saved *s, int profile,
                      PyObject *fn);


/* Where a suspended tasklet's contextvars context lives (borrowed slot,
 * may hold NULL), for tasklet.context / set_context(). */
PyObject **pystate_context_slot(pystate_saved *s);
/* For pickling (csrc/pyframe.c): the top interpreter frame of a suspended
 * tasklet (NULL if none), and the exception it is handling (borrowed, may
 * be NULL or None). */
void *pystate_saved_top_frame(pystate_saved *s);
PyObject *pystate_saved_handled_exc(PyThreadState *ts, pystate_saved *s);
#endif /* SLP_PYSTATE_H */
