/* Frames of suspended tasklets, read out for pickling and rebuilt for
 * resumption (the frame-resumption trampoline).  The interface is
 * version-neutral; pyframe.c is part of the version layer (it knows the
 * interpreter's frame layout).
 *
 * Python-level entry points (attributes of the _stackless module):
 *
 *   _frames_of(t, null)        the frame chain of a suspended tasklet,
 *                              outermost first (see pyframe.c)
 *   _top_stack(t, depth, null) the first `depth` value stack entries of its
 *                              top frame
 *   _resumer(frames, pending, exc, null)
 *                              a callable that, bound to a fresh tasklet,
 *                              continues the frames where they stopped
 *   _frame_layout              what the format depends on (a version tag)
 *
 * `null` is the object that stands for an empty (NULL) slot.
 */
#ifndef SLP_PYFRAME_H
#define SLP_PYFRAME_H

#include <Python.h>
#include "pystate.h"

int pyframe_module_init(PyObject *module);

/* Is o a resumer (bound to a tasklet by unpickling)? */
int pyframe_is_resumer(PyObject *o);

/* Run a resumer as the body of the tasklet it is bound to; `tv` (stolen)
 * is the tasklet's tempval when it started: a bomb is raised in the
 * innermost frame, any other value is the result of the operation it was
 * suspended in (unless the resumer performs that operation itself). */
PyObject *pyframe_resume(PyObject *resumer, PyObject *tv);


#endif /* SLP_PYFRAME_H */
