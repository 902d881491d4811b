/* Older glibc symbol versions for libji.so, so that the portable build (made against Debian 11's
 * glibc 2.31, README "Install") also loads on glibc 2.28 (RHEL 8, libtorch_cpu.so's own floor).
 * build.rs links libji.so with -Wl,--wrap=exp,--wrap=gettid: every reference to those two
 * becomes one to the __wrap_ functions below. Nothing else in libji.so needs a glibc newer
 * than 2.28 (tools/floors.tsv; test_harness/install_check.sh checks it). */
#define _GNU_SOURCE
#include <math.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

/* glibc 2.29 gave exp a new version (exp@GLIBC_2.29) that drops the SVID error handling; the
 * original exp@GLIBC_2.2.5 computes the same values (it differs only in errno / matherr on
 * overflow and underflow) and exists in every x86_64 glibc. */
__asm__(".symver exp, exp@GLIBC_2.2.5");

double __wrap_exp(double x) { return exp(x); }

/* gettid() is a glibc 2.30 function; the system call has always been there. */
pid_t __wrap_gettid(void) { return (pid_t)syscall(SYS_gettid); }
