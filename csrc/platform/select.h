/* Picks the one raw switch routine for this ABI.  Each file defines, in
 * assembly, the hidden function
 *
 *   int slp_switch_raw(char *(*save)(void *ctx, char *sp),
 *                      void (*restore)(void *ctx, char *sp),
 *                      void *ctx);
 *
 * which pushes the callee-saved registers (and the floating point control
 * state) on the stack, calls save(ctx, sp) with the resulting stack pointer,
 * and then either
 *   - save returned NULL: pops the registers and returns 1 (no switch), or
 *   - save returned a stack pointer: moves SP there, calls restore(ctx, sp),
 *     pops the registers found at that stack pointer and returns 0.
 * A context that is resumed finds its registers where it pushed them, because
 * restore() has copied its stack back.  restore() may also never return (it
 * starts a new context below the given SP).
 */
#if defined(__x86_64__) && !defined(_WIN32)
#  include "platform/switch_x86_64_sysv.h"
#elif defined(__aarch64__) && !defined(_WIN32)
#  include "platform/switch_aarch64_aapcs.h"
#else
#  error "stackless_compat: no stack switch for this platform (x86-64 SysV and AArch64 are supported)"
#endif
