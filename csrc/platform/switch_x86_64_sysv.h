/* x86-64 System V: the raw switch (see select.h for the contract).
 *
 * Frame, from the return address down:
 *   rbp rbx r12 r13 r14 r15   callee-saved registers (6 pushes)
 *   8 bytes                   MXCSR (low 4) and x87 control word (next 2)
 * At entry rsp = 8 (mod 16); after 6 pushes and 8 bytes it is 16-aligned, so
 * the calls below and a new context's start (save returns a 16-aligned base)
 * both see the ABI's alignment.  r12/r13 carry restore/ctx across the move of
 * rsp: they are registers, not stack, so they survive it.
 */
__asm__(
    "    .text\n"
    "    .p2align 4\n"
    "    .globl slp_switch_raw\n"
    "    .hidden slp_switch_raw\n"
    "    .type slp_switch_raw, @function\n"
    "slp_switch_raw:\n"
    "    .cfi_startproc\n"
    "    pushq %rbp\n"
    "    .cfi_adjust_cfa_offset 8\n"
    "    pushq %rbx\n"
    "    .cfi_adjust_cfa_offset 8\n"
    "    pushq %r12\n"
    "    .cfi_adjust_cfa_offset 8\n"
    "    pushq %r13\n"
    "    .cfi_adjust_cfa_offset 8\n"
    "    pushq %r14\n"
    "    .cfi_adjust_cfa_offset 8\n"
    "    pushq %r15\n"
    "    .cfi_adjust_cfa_offset 8\n"
    "    subq $8, %rsp\n"
    "    .cfi_adjust_cfa_offset 8\n"
    "    stmxcsr (%rsp)\n"
    "    fnstcw 4(%rsp)\n"
    "    movq %rsi, %r12\n"          /* restore */
    "    movq %rdx, %r13\n"          /* ctx */
    "    movq %rdi, %rax\n"
    "    movq %rdx, %rdi\n"
    "    movq %rsp, %rsi\n"
    "    call *%rax\n"               /* save(ctx, sp) */
    "    testq %rax, %rax\n"
    "    jz 1f\n"
    "    movq %rax, %rsp\n"          /* now on the target's stack */
    "    movq %r13, %rdi\n"
    "    movq %rsp, %rsi\n"
    "    call *%r12\n"               /* restore(ctx, sp) */
    /* Reload MXCSR and the x87 control word only when they differ: both
     * loads are slow and the values almost never change. */
    "    subq $8, %rsp\n"
    "    stmxcsr (%rsp)\n"
    "    fnstcw 4(%rsp)\n"
    "    movl (%rsp), %eax\n"
    "    cmpl 8(%rsp), %eax\n"
    "    je 3f\n"
    "    ldmxcsr 8(%rsp)\n"
    "3:\n"
    "    movw 4(%rsp), %ax\n"
    "    cmpw 12(%rsp), %ax\n"
    "    je 4f\n"
    "    fldcw 12(%rsp)\n"
    "4:\n"
    "    addq $8, %rsp\n"
    "    xorl %eax, %eax\n"
    "    jmp 2f\n"
    "1:\n"
    "    movl $1, %eax\n"
    "2:\n"
    "    addq $8, %rsp\n"
    "    .cfi_adjust_cfa_offset -8\n"
    "    popq %r15\n"
    "    .cfi_adjust_cfa_offset -8\n"
    "    popq %r14\n"
    "    .cfi_adjust_cfa_offset -8\n"
    "    popq %r13\n"
    "    .cfi_adjust_cfa_offset -8\n"
    "    popq %r12\n"
    "    .cfi_adjust_cfa_offset -8\n"
    "    popq %rbx\n"
    "    .cfi_adjust_cfa_offset -8\n"
    "    popq %rbp\n"
    "    .cfi_adjust_cfa_offset -8\n"
    "    ret\n"
    "    .cfi_endproc\n"
    "    .size slp_switch_raw, .-slp_switch_raw\n"
    "    .section .note.GNU-stack,\"\",@progbits\n"
    "    .text\n"
);
