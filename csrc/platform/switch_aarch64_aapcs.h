/* AArch64 AAPCS64: the raw switch (see select.h for the contract).
 *
 * Frame (176 bytes, 16-aligned), from sp upwards:
 *   [0]   x29, x30        frame record
 *   [16]  x19 .. x28      callee-saved integer registers
 *   [96]  d8 .. d15       callee-saved low halves of v8..v15
 *   [160] FPCR
 * x19/x20 carry restore/ctx across the move of sp.
 */
__asm__(
    "    .text\n"
    "    .p2align 4\n"
    "    .globl slp_switch_raw\n"
    "    .hidden slp_switch_raw\n"
    "    .type slp_switch_raw, %function\n"
    "slp_switch_raw:\n"
    "    .cfi_startproc\n"
    "    sub sp, sp, #176\n"
    "    .cfi_def_cfa_offset 176\n"
    "    stp x29, x30, [sp, #0]\n"
    "    .cfi_offset x29, -176\n"   /* unwinders find the return address */
    "    .cfi_offset x30, -168\n"   /* here, not in the clobbered x30 */
    "    stp x19, x20, [sp, #16]\n"
    "    stp x21, x22, [sp, #32]\n"
    "    stp x23, x24, [sp, #48]\n"
    "    stp x25, x26, [sp, #64]\n"
    "    stp x27, x28, [sp, #80]\n"
    "    stp d8, d9, [sp, #96]\n"
    "    stp d10, d11, [sp, #112]\n"
    "    stp d12, d13, [sp, #128]\n"
    "    stp d14, d15, [sp, #144]\n"
    "    mrs x9, fpcr\n"
    "    str x9, [sp, #160]\n"
    "    mov x29, sp\n"
    "    mov x19, x1\n"              /* restore */
    "    mov x20, x2\n"              /* ctx */
    "    mov x9, x0\n"
    "    mov x0, x2\n"
    "    mov x1, sp\n"
    "    blr x9\n"                   /* save(ctx, sp) */
    "    cbz x0, 1f\n"
    "    mov sp, x0\n"               /* now on the target's stack */
    "    mov x29, #0\n"
    "    mov x0, x20\n"
    "    mov x1, sp\n"
    "    blr x19\n"                  /* restore(ctx, sp) */
    "    ldr x9, [sp, #160]\n"
    "    msr fpcr, x9\n"
    "    mov x0, #0\n"
    "    b 2f\n"
    "1:\n"
    "    mov x0, #1\n"
    "2:\n"
    "    ldp d14, d15, [sp, #144]\n"
    "    ldp d12, d13, [sp, #128]\n"
    "    ldp d10, d11, [sp, #112]\n"
    "    ldp d8, d9, [sp, #96]\n"
    "    ldp x27, x28, [sp, #80]\n"
    "    ldp x25, x26, [sp, #64]\n"
    "    ldp x23, x24, [sp, #48]\n"
    "    ldp x21, x22, [sp, #32]\n"
    "    ldp x19, x20, [sp, #16]\n"
    "    ldp x29, x30, [sp, #0]\n"
    "    .cfi_restore x29\n"
    "    .cfi_restore x30\n"
    "    add sp, sp, #176\n"
    "    .cfi_def_cfa_offset 0\n"
    "    ret\n"
    "    .cfi_endproc\n"
    "    .size slp_switch_raw, .-slp_switch_raw\n"
    "    .section .note.GNU-stack,\"\",%progbits\n"
    "    .text\n"
);
