/* Build: gcc -O2 -shared -fPIC -o /tmp/avx2only.so bench/avx2only.c
   Run:   SUPPORTDESK_CPU_FLAGS_HIDDEN="avx512* amx* avx_vnni" LD_PRELOAD=/tmp/avx2only.so .venv/bin/python bench/first_run.py */
/* LD_PRELOAD shim: makes CPUID report an AVX2-only x86-64 CPU (no AVX-512, AVX-VNNI, AMX) to
   this process, using the kernel's CPUID faulting (flag cpuid_fault). For benchmarks only. */
#define _GNU_SOURCE
#include <signal.h>
#include <ucontext.h>
#include <asm/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cpuid.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

static struct sigaction previous;

static void on_segv(int sig, siginfo_t *si, void *ctx) {
    ucontext_t *uc = (ucontext_t *)ctx;
    unsigned char *rip = (unsigned char *)uc->uc_mcontext.gregs[REG_RIP];
    if (rip[0] == 0x0f && rip[1] == 0xa2) {
        unsigned leaf = (unsigned)uc->uc_mcontext.gregs[REG_RAX];
        unsigned sub = (unsigned)uc->uc_mcontext.gregs[REG_RCX];
        unsigned a, b, c, d;
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
        __cpuid_count(leaf, sub, a, b, c, d);
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
        if (leaf == 7 && sub == 0) {
            b &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
            c &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
            d &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
        } else if (leaf == 7 && sub == 1) {
            a &= ~((1u << 4) | (1u << 5));
        }
        uc->uc_mcontext.gregs[REG_RAX] = a;
        uc->uc_mcontext.gregs[REG_RBX] = b;
        uc->uc_mcontext.gregs[REG_RCX] = c;
        uc->uc_mcontext.gregs[REG_RDX] = d;
        uc->uc_mcontext.gregs[REG_RIP] += 2;
        return;
    }
    sigaction(SIGSEGV, &previous, NULL);
    raise(SIGSEGV);
}

__attribute__((constructor)) static void install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous);
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
        perror("avx2only: CPUID faulting unavailable");
        exit(3);
    }
}
