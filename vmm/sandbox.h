/*
 * The VMM's sandbox (issue 12, after Firecracker's per-thread filters): once a guest can run, every
 * VMM thread runs under a seccomp-BPF filter for its role (enum vmm_thread_role in util.h) that
 * allows only the system calls that role makes, KVM and userfaultfd ioctls checked by request
 * number. A forbidden call is trapped (SIGSYS): one line on stderr naming the thread's role and the
 * call, then the VMM exits with status 159 (128 + SIGSYS). Also, process-wide: PR_SET_NO_NEW_PRIVS
 * and PR_SET_DUMPABLE 0 (no core dump, no ptrace by other users: guest memory never lands in a
 * dump; guest RAM is MADV_DONTDUMP as well).
 *
 * Order: sandbox_init() early in `vmm run` (before any thread starts; it builds every role's
 * filter so an error shows at once and sets the thread start hook), threads started with
 * vmm_thread_create_role() load their filter before their first instruction of work, and the main
 * thread calls sandbox_enter(VMM_THREAD_LOOP) after setup, just before the event loop runs.
 */
#ifndef VMM_SANDBOX_H
#define VMM_SANDBOX_H

#include "util.h"

enum sandbox_mode {
	SANDBOX_ON,  /* forbidden call: message, then exit 159 (the default) */
	SANDBOX_LOG, /* forbidden call: allowed, logged by the kernel (SECCOMP_RET_LOG) */
	SANDBOX_OFF, /* no filters (NO_NEW_PRIVS and DUMPABLE 0 still set) */
};

/**
 * sandbox_parse_mode() - "on" / "log" / "off" (the --seccomp argument) into *@out.
 * Returns 0 or -EINVAL.
 */
int sandbox_parse_mode(const char *s, enum sandbox_mode *out);

/**
 * sandbox_init() - set PR_SET_NO_NEW_PRIVS and PR_SET_DUMPABLE 0, build the filter of every thread
 * role for @mode (libseccomp, exported to BPF in memory), install the SIGSYS reporter and the
 * thread start hook. Call once, before any VMM thread starts. Returns 0 or -errno (the reason
 * logged).
 */
int sandbox_init(enum sandbox_mode mode);

/**
 * sandbox_enter() - load @role's filter on the calling thread (filters are per thread; threads it
 * starts later inherit it). A no-op with SANDBOX_OFF or before sandbox_init(). Returns 0 or
 * -errno from prctl(PR_SET_SECCOMP).
 */
int sandbox_enter(enum vmm_thread_role role);

/**
 * sandbox_test_violation() - the debug option --seccomp-test=ROLE (README "Sandbox"): right after
 * loading its filter, the first thread of @role makes a system call no role allows (getppid), so a
 * test proves that each role's filter kills the VMM with its message. Call before sandbox_init().
 */
void sandbox_test_violation(enum vmm_thread_role role);

#endif
