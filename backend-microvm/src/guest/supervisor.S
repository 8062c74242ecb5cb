/*
 * The guest supervisor of the hybrid-sandbox micro-VM: the only code that runs in
 * the guest outside the workload. Source of truth for the bytes in code.rs
 * (regenerate with `sh assemble.sh`; the `supervisor_bytes_match_source` test checks).
 *
 * Two pages, each assembled at offset 0:
 *   stub     mapped user-accessible at STUB_VA; LSTAR points at its start. On PVM the
 *            LSTAR handler runs with user privilege, on VT-x/AMD-V at CPL0: the stub
 *            only writes the doorbell and irets, so it is correct in both.
 *   handler  mapped supervisor-only at HANDLER_VA; one 16-byte entry per CPU
 *            exception vector (0..31), every gate on IST1, all at CPL0.
 *
 * Relative layout the code relies on (see layout.rs):
 *   stub + 0x1000       doorbell page (MMIO: any write exits to the VMM)
 *   handler + 0x3000    supervisor data page: +0 cr2, +8 work count,
 *                       +0x10 return frame (rip, cs, rflags, rsp, ss)
 *   handler + 0x4000    work list: guest virtual addresses of page-table entries
 *
 * Exception stack (IST1) when the VMM sees the exception exit, from its top:
 *   ss, rsp, rflags, cs, rip, error code, vector, saved rax.
 */
        .code64

/* ------------------------------------------------------------------ stub page */
        .section .stub, "ax"
stub:
        /* syscall: rax = number. The write exits to the VMM, which answers in rax
         * and points rsp at a user-return frame it wrote in the frame page. */
        movb    %al, stub + 0x1000(%rip)
        iretq
        /* The VMM resumes here instead when page-table entries must be rewritten
         * by the guest before returning (see `work`): #UD gets us to CPL0. */
flush_entry:
        ud2

/* --------------------------------------------------------------- handler page */
        .section .handler, "ax"
        .set    DATA_CR2,   0x3000
        .set    DATA_COUNT, 0x3008
        .set    DATA_FRAME, 0x3010
        .set    WORK_LIST,  0x4000
        .set    EXC_PORT,   0xe9
handler:
        .irp    v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .balign 16
        .if     \v == 6
        jmp     ud_entry
        .elseif (\v == 8) || (\v == 10) || (\v == 11) || (\v == 12) || (\v == 13) || (\v == 14) || (\v == 17) || (\v == 21) || (\v == 29) || (\v == 30)
        pushq   $\v                     /* the CPU pushed an error code */
        jmp     common
        .else
        pushq   $0                      /* no error code: push a zero one */
        pushq   $\v
        jmp     common
        .endif
        .endr

        .balign 16
ud_entry:
        /* #UD. With work armed it is the stub's flush_entry: do the work, then
         * return to user mode through the frame the VMM wrote in the data page.
         * Every general register is the task's own, as the VMM set it: a task set
         * aside in the middle of user code (a kick, a fault) resumes with all of
         * them, rcx and r11 included (after a syscall they already hold its rip and
         * rflags, as `syscall` left them). */
        cmpq    $0, handler + DATA_COUNT(%rip)
        je      1f
        call    work
        lea     handler + DATA_FRAME(%rip), %rsp
        iretq
1:      pushq   $0
        pushq   $6
        /* fall through */
common:
        push    %rax
        mov     %cr2, %rax
        mov     %rax, handler + DATA_CR2(%rip)
        out     %al, $EXC_PORT          /* exit: the VMM reads this frame */
        cmpq    $0, handler + DATA_COUNT(%rip)
        je      2f
        call    work
2:      pop     %rax
        add     $16, %rsp               /* vector, error code */
        iretq

        /* Rewrites each listed page-table entry with its own value (KVM notices
         * guest writes to page tables, not the VMM's), then reloads CR3 to flush
         * the TLB. Preserves every register. */
work:
        push    %rax
        push    %rcx
        push    %rdx
        lea     handler + WORK_LIST(%rip), %rdx
        mov     handler + DATA_COUNT(%rip), %rcx
3:      mov     (%rdx), %rax
        orq     $0, (%rax)
        add     $8, %rdx
        loop    3b
        mov     %cr3, %rax
        mov     %rax, %cr3
        movq    $0, handler + DATA_COUNT(%rip)
        pop     %rdx
        pop     %rcx
        pop     %rax
        ret
