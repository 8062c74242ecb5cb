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
 *   stub - 0x1000       frame page (user): the fast-call slot at its start (see
 *                       fastcall.rs), return frames at its end
 *   stub + 0x1000       doorbell page (MMIO: any write exits to the VMM; offset 0 is
 *                       a syscall, offset 1 a fast call that the VMM must follow up,
 *                       offset 2 the end of a warming pass)
 *   handler + 0x3000    supervisor data page: +8 work count (runs armed),
 *                       +0x10 return frame (rip, cs, rflags, rsp, ss),
 *                       +0x40 rax, rcx, rdx, rsi, rdi as the flush restores them
 *   handler + 0x4000    work list: runs of page-table entries to rewrite after
 *                       the first, each as its first entry's guest virtual address
 *                       and its length
 *
 * An exception's entry is a single `out` to port EXC_PORT_BASE + vector: the VMM
 * takes every register as it is, CR2 from the vCPU's state, and the frame the CPU
 * pushed on the exception stack (IST1), from its top: ss, rsp, rflags, cs, rip and,
 * for the vectors that have one, the error code. Where the supervisor's code is
 * emulated (PVM, ~2.5 µs an instruction) that is one instruction instead of twelve.
 * The VMM never lets the guest go on after the `out`: it resumes the interrupted code
 * at `resume` (or `resume_flush`) with rsp at the CPU's frame, or the task from its
 * saved context through the stub.
 */
        .code64

/* ------------------------------------------------------------------ stub page */
        .section .stub, "ax"
        .set    SLOT_STATE, -0x1000
        .set    SLOT_AWAKE, -0x1000 + 0x04
        .set    SLOT_NR,    -0x1000 + 0x08
        .set    SLOT_ARGS,  -0x1000 + 0x10
        .set    SLOT_RET,   -0x1000 + 0x40
        .set    SLOT_RSP,   -0x1000 + 0x48
        .set    SLOT_SITE,  -0x1000 + 0x50
        .set    SLOT_USP,   -0x1000 + 0x58
        .set    USTACK,     -0x1000 + 0x800
        .set    POSTED, 1
        .set    DONE, 3
        .set    DONE_FOLLOW, 4
        .set    SLOW, 5
        .set    SPINS, 2048
        .set    USER_FLAGS, 0x240dd5
        /* The fast-call map (fastcall.rs `FAST_MAP`): one bit per syscall number
         * below FAST_MAP_BITS, set where the fast-call thread may answer the call.
         * The VMM writes it in the stub page (user-readable, never user-writable)
         * beyond the code; a call whose bit is clear rings the doorbell at once
         * instead of being posted only to come back SLOW. */
        .set    FAST_MAP, 0xf00
        .set    FAST_MAP_BITS, 512
        /* arch_prctl and its ARCH_SET_FS; USER_TOP as layout.rs has it. */
        .set    SYS_ARCH_PRCTL, 158
        .set    ARCH_SET_FS, 0x1002
        .set    USER_TOP, 0x7ffffff80000
stub:
        /* syscall: rax = number, rcx = return rip, r11 = rflags. */
        jmp     entry                   /* rel32: 5 bytes */
        nop                             /* iretq lands at stub + 6 */
        /* The VMM returns here (stub + 6) after a doorbell, with rsp pointing at a
         * user-return frame it wrote in the frame page. */
        iretq
        /* The VMM resumes here instead when page-table entries must be rewritten
         * by the guest before returning (see `work`): #UD gets us to CPL0. */
flush_entry:
        ud2

        /* The fast call (fastcall.rs): while the VMM's fast-call thread is awake,
         * post the call in the slot and wait for its answer there: no VM exit. The
         * thread answers only calls it can finish at once; everything else, and a
         * post nobody takes in time, goes through the doorbell. Every register but
         * rax, rcx and r11 comes back as it was (rdx from the slot, where it was
         * saved as the third argument). The site (where the call returns to) goes
         * with the post: the thread may offer it for redirection (redirect.rs). */
fast:
        cmpl    $0, stub + SLOT_AWAKE(%rip)
        je      ring
        cmp     $FAST_MAP_BITS, %rax
        jae     ring
        bt      %rax, stub + FAST_MAP(%rip)
        jnc     ring
        mov     %rcx, stub + SLOT_SITE(%rip)
post:
        mov     %rax, stub + SLOT_NR(%rip)
        mov     %rdi, stub + SLOT_ARGS(%rip)
        mov     %rsi, stub + SLOT_ARGS + 8(%rip)
        mov     %rdx, stub + SLOT_ARGS + 16(%rip)
        mov     %r10, stub + SLOT_ARGS + 24(%rip)
        mov     %r8, stub + SLOT_ARGS + 32(%rip)
        mov     %r9, stub + SLOT_ARGS + 40(%rip)
        movl    $POSTED, stub + SLOT_STATE(%rip)
        mov     $SPINS, %eax
1:      cmpl    $POSTED, stub + SLOT_STATE(%rip)
        jne     taken
        pause
        dec     %eax
        jnz     1b
        /* Not taken in time: withdraw it (unless it is being taken now). */
        xor     %edx, %edx
        mov     $POSTED, %eax
        lock cmpxchg %edx, stub + SLOT_STATE(%rip)
        mov     stub + SLOT_ARGS + 16(%rip), %rdx
        jne     taken
        mov     stub + SLOT_NR(%rip), %rax
ring:
        /* The exit path, as after a syscall: rcx = where to return, r11 = flags. */
        movb    %al, stub + 0x1000(%rip)
        ud2                             /* not reached: the VMM returns to rcx */
taken:
        mov     stub + SLOT_STATE(%rip), %eax
        cmp     $DONE, %eax
        jae     answered
        pause
        jmp     taken
answered:
        mov     stub + SLOT_ARGS + 16(%rip), %rdx
        cmp     $DONE_FOLLOW, %eax
        je      follow
        movl    $0, stub + SLOT_STATE(%rip)
        cmp     $DONE, %eax
        mov     stub + SLOT_NR(%rip), %rax
        jne     ring                    /* SLOW: the exit path makes the call */
        mov     stub + SLOT_RET(%rip), %rax
        cmpq    $0, stub + SLOT_SITE(%rip)
        je      ureturn                 /* posted by the user-mode entry */
kreturn:
        /* Back to user mode after a `syscall` with the answer in rax. */
        and     $USER_FLAGS, %r11
        or      $0x202, %r11
        mov     %rsp, stub + SLOT_RSP(%rip)
        lea     stub(%rip), %rsp        /* the top of the frame page */
        pushq   $0x2b                   /* ss: USER_DS */
        pushq   stub + SLOT_RSP(%rip)
        push    %r11
        pushq   $0x33                   /* cs: USER_CS */
        push    %rcx
        iretq
ureturn:
        /* Back to the trampoline from user mode: the flags as they were, a jmp. */
        mov     %rsp, stub + SLOT_USP(%rip)
        lea     stub + USTACK(%rip), %rsp
        push    %r11
        popfq
        mov     stub + SLOT_USP(%rip), %rsp
        jmp     *%rcx
follow:
        /* Answered, but the VMM must see the task before it goes on (a signal came
         * with the call, or a site to redirect): rax holds the answer. */
        movl    $0, stub + SLOT_STATE(%rip)
        mov     stub + SLOT_RET(%rip), %rax
        movb    %al, stub + 0x1001(%rip)
        ud2                             /* not reached: the VMM resumes at stub + 6 */

        /* The user-mode entry (redirect.rs): a redirected syscall site's trampoline
         * jumps here from user mode, with rax = the number, rcx = where to go on (the
         * trampoline's continuation), every other register as at the site; no
         * `syscall`, no privilege change, no `iretq`. r11 gets the flags, as
         * `syscall` leaves them; the call is posted as above, with no site. The user
         * stack is never written: the flags go through a scratch stack in the frame
         * page (no task is switched while rip is in this page). */
uentry:
        mov     %rsp, stub + SLOT_USP(%rip)
        lea     stub + USTACK(%rip), %rsp
        pushfq
        pop     %r11
        mov     stub + SLOT_USP(%rip), %rsp
        cmp     $SYS_ARCH_PRCTL, %rax
        je      uarch
uentry_post:
        cmpl    $0, stub + SLOT_AWAKE(%rip)
        je      ring
        movq    $0, stub + SLOT_SITE(%rip)
        jmp     post

        /* Warming (warm.rs): the VMM runs this in user mode, with no task on the
         * vCPU, in a sandbox started ahead for a warm template: each page touched
         * makes KVM fill its shadow page tables now rather than when the run first
         * touches it. rsi = the list (in the frame page), rcx = its entries, each a
         * page address | (pages - 1) << 1 | write. A read loads a byte; a write adds
         * zero to one atomically: no byte changes. Ends at the doorbell's warm offset
         * (a fault ends it at the handler's exit instead). */
warm:
        jrcxz   9f
1:      mov     (%rsi), %rax
        mov     %eax, %edx
        shr     $1, %edx
        and     $0x7ff, %edx
        inc     %edx                    /* pages */
        mov     %eax, %r8d
        and     $1, %r8d                /* write */
        and     $-4096, %rax
2:      test    %r8d, %r8d
        jnz     3f
        movb    (%rax), %r9b
        jmp     4f
3:      lock addb $0, (%rax)
4:      add     $4096, %rax
        dec     %edx
        jnz     2b
        add     $8, %rsi
        dec     %rcx
        jnz     1b
9:      movb    %al, stub + 0x1002(%rip)
        ud2                             /* not reached: the VMM takes the vCPU back */

        /* `arch_prctl(ARCH_SET_FS, addr)`, which every program makes once at its
         * start to set its thread pointer, answered in the guest: `wrfsbase`
         * (CR4.FSGSBASE is on, so the workload could run it itself; it gains nothing
         * here). The VMM takes a task's FS base from the vCPU whenever it needs it
         * (a switch, clone, fork, a snapshot), never from a copy of its own. The
         * check is the exit path's (`sys_arch_prctl`): an address at or past
         * USER_TOP, and every other code, go through the fast call or the doorbell
         * as before. Nothing is posted, nothing rings: no VM exit. */
entry:
        cmp     $SYS_ARCH_PRCTL, %rax
        jne     fast
        cmp     $ARCH_SET_FS, %rdi
        jne     fast
        movabs  $USER_TOP, %rax
        cmp     %rax, %rsi
        mov     $SYS_ARCH_PRCTL, %eax
        jae     fast
        wrfsbase %rsi
        xor     %eax, %eax
        jmp     kreturn
uarch:
        /* The same from the user-mode entry (rax = the number, r11 = the flags). */
        cmp     $ARCH_SET_FS, %rdi
        jne     uentry_post
        movabs  $USER_TOP, %rax
        cmp     %rax, %rsi
        mov     $SYS_ARCH_PRCTL, %eax
        jae     uentry_post
        wrfsbase %rsi
        xor     %eax, %eax
        jmp     ureturn

/* --------------------------------------------------------------- handler page */
        .section .handler, "ax"
        .set    DATA_COUNT, 0x3008
        .set    DATA_FRAME, 0x3010
        .set    DATA_SAVED, 0x3040
        .set    EXC_PORT_BASE, 0xc0
handler:
        .irp    v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .balign 16
        .if     \v == 6
        jmp     ud_entry
        .else
        out     %al, $(EXC_PORT_BASE + \v) /* exit: the VMM reads the CPU's frame */
        ud2                             /* never reached: the VMM resumes elsewhere */
        .endif
        .endr

        .balign 16
ud_entry:
        /* #UD. With work armed it is the stub's flush_entry: do the work, then
         * return to user mode through the frame the VMM wrote in the data page. */
        cmpq    $0, handler + DATA_COUNT(%rip)
        je      real_ud
        lea     handler + DATA_FRAME(%rip), %rsp
        /* fall through */

        /* The flush: rewrites each armed page-table entry with its own value (KVM
         * notices guest writes to page tables, not the VMM's), then reloads CR3 to
         * flush the TLB, and returns through the frame at rsp. The entries come as
         * runs of adjacent ones; the VMM arms the first in registers (rsi its first
         * entry's address, rcx its length, at least 1) and the others in the work
         * list (rdx its address, rax how many: each run's first entry's address and
         * its length), clears the direction flag, and saves the registers this
         * clobbers in the data page, where they are restored from: every register is
         * the task's own when it goes on, rcx and r11 included (after a syscall they
         * hold its rip and rflags, as `syscall` left them), and the flags come back
         * from the frame. A run is one `rep movsq` onto itself: where the
         * supervisor's code is emulated (PVM, ~2.5 µs an instruction) that is one
         * emulation for the whole run, and the flush takes 19 emulations in all for
         * one run. Also where the VMM resumes the code an exception interrupted (rsp
         * at the frame the CPU pushed, past its error code) after a flush. */
resume_flush:
2:      mov     %rsi, %rdi
        rep movsq
        test    %rax, %rax
        jz      3f
        mov     (%rdx), %rsi
        mov     8(%rdx), %rcx
        add     $16, %rdx
        dec     %rax
        jmp     2b
3:      mov     %cr3, %rax
        mov     %rax, %cr3
        movq    $0, handler + DATA_COUNT(%rip)
        mov     handler + DATA_SAVED(%rip), %rax
        mov     handler + DATA_SAVED + 8(%rip), %rcx
        mov     handler + DATA_SAVED + 16(%rip), %rdx
        mov     handler + DATA_SAVED + 24(%rip), %rsi
        mov     handler + DATA_SAVED + 32(%rip), %rdi
        /* Where the VMM resumes the code an exception interrupted (rsp at the frame
         * the CPU pushed, past its error code). */
resume:
        iretq

real_ud:
        out     %al, $(EXC_PORT_BASE + 6) /* a real #UD */
        ud2
