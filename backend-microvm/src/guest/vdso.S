/*
 * The micro-VM's vDSO code: clock_gettime, gettimeofday, time and getcpu answered in
 * the guest, from the TSC and the vvar page the VMM writes (see vdso.rs), without a VM
 * exit. Unknown clocks fall back to the real syscall. Source of truth for VDSO_CODE in
 * code.rs (regenerate with `sh assemble.sh`; a test compares). vdso.rs wraps the code
 * in the ELF image glibc and musl look the functions up in (AT_SYSINFO_EHDR).
 *
 * vvar page (at VVAR, read-only for the workload), all u64:
 *   +8 tsc_base  +16 mult  +24 shift  +32 mono_ns  +40 real_ns  +48 boot_ns
 * ns(clock) = base(clock) + (((rdtsc - tsc_base) * mult) >> shift)
 */
        .set    VVAR, 0x7ffffff80000     /* layout.rs: VVAR_VA */
        .section .vdso, "ax"
        .globl  clock_gettime, gettimeofday, time, getcpu
clock_gettime:
        cmp     $0, %edi                /* CLOCK_REALTIME */
        je      1f
        cmp     $5, %edi                /* CLOCK_REALTIME_COARSE */
        je      1f
        cmp     $11, %edi               /* CLOCK_TAI */
        je      1f
        cmp     $1, %edi                /* CLOCK_MONOTONIC */
        je      2f
        cmp     $4, %edi                /* CLOCK_MONOTONIC_RAW */
        je      2f
        cmp     $6, %edi                /* CLOCK_MONOTONIC_COARSE */
        je      2f
        cmp     $7, %edi                /* CLOCK_BOOTTIME */
        je      3f
        mov     $228, %eax              /* anything else: the syscall */
        syscall
        ret
1:      mov     $40, %r9d
        jmp     4f
2:      mov     $32, %r9d
        jmp     4f
3:      mov     $48, %r9d
4:      call    now_ns
        xor     %edx, %edx
        mov     $1000000000, %ecx
        div     %rcx
        mov     %rax, (%rsi)
        mov     %rdx, 8(%rsi)
        xor     %eax, %eax
        ret

gettimeofday:
        test    %rsi, %rsi
        jz      5f
        movq    $0, (%rsi)              /* struct timezone: UTC */
5:      test    %rdi, %rdi
        jz      6f
        mov     $40, %r9d
        call    now_ns
        xor     %edx, %edx
        mov     $1000000000, %ecx
        div     %rcx
        mov     %rax, (%rdi)
        mov     %rdx, %rax
        xor     %edx, %edx
        mov     $1000, %ecx
        div     %rcx
        mov     %rax, 8(%rdi)
6:      xor     %eax, %eax
        ret

time:
        mov     $40, %r9d
        call    now_ns
        xor     %edx, %edx
        mov     $1000000000, %ecx
        div     %rcx
        test    %rdi, %rdi
        jz      7f
        mov     %rax, (%rdi)
7:      ret

getcpu:
        test    %rdi, %rdi
        jz      8f
        movl    $0, (%rdi)
8:      test    %rsi, %rsi
        jz      9f
        movl    $0, (%rsi)
9:      xor     %eax, %eax
        ret

        /* rax = nanoseconds of the clock whose base is at VVAR + r9.
         * Clobbers rcx, rdx, r8. */
now_ns:
        movabs  $VVAR, %r8
        rdtsc
        shl     $32, %rdx
        or      %rdx, %rax
        sub     8(%r8), %rax
        mulq    16(%r8)
        mov     24(%r8), %rcx
        shrd    %cl, %rdx, %rax
        add     (%r8,%r9), %rax
        ret
