/*
 * steptrace.c — which code of its own executable a running process executes:
 * single-steps the process's main thread (ptrace) for SECONDS and prints each
 * distinct instruction address inside the executable's code mapping, as a
 * decimal file offset in the executable, sorted (a gold-linked PIE has
 * vaddr == file offset; lld with -z max-page-size moves the code segment's
 * vaddr a page above its offset, so scripts/agent-text-order.sh turns the
 * offsets into virtual addresses with the program headers, then into
 * function sections).
 *
 *   steptrace PID SECONDS
 *
 * Single-stepping costs a few microseconds per instruction, so the process
 * runs 20-50 times slower; it is meant for an idle process, whose timers
 * still fire (late). Needs ptrace permission over PID (root, or
 * kernel.yama.ptrace_scope = 0 and the same user). Other threads are not
 * traced. Exits 1 when PID cannot be attached or has no executable mapping.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CAP (1u << 22) /* distinct addresses kept; an idle agent runs ~20,000 */

static uint64_t *table;
static size_t distinct;

static void add(uint64_t a) {
    if (distinct >= CAP / 2) return; /* full: the rest is not recorded */
    for (uint64_t h = (a * 0x9E3779B97F4A7C15ull) >> 42;; h = (h + 1) & (CAP - 1)) {
        if (table[h] == a) return;
        if (table[h] == 0) { table[h] = a; distinct++; return; }
    }
}

static int cmp(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: steptrace PID SECONDS\n"); return 2; }
    pid_t pid = atoi(argv[1]);
    double seconds = atof(argv[2]);

    /* The executable's executable mappings: [lo, hi) and file offset. */
    char path[64], exe[PATH_MAX], line[PATH_MAX + 128];
    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    ssize_t n = readlink(path, exe, sizeof exe - 1);
    if (n < 0) { perror(path); return 1; }
    exe[n] = 0;
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    FILE *maps = fopen(path, "r");
    if (!maps) { perror(path); return 1; }
    uint64_t lo[8], hi[8], off[8];
    int ranges = 0;
    while (ranges < 8 && fgets(line, sizeof line, maps)) {
        unsigned long long a, b, o;
        char perms[8], file[PATH_MAX];
        file[0] = 0;
        if (sscanf(line, "%llx-%llx %7s %llx %*s %*s %4095[^\n]", &a, &b, perms, &o, file) < 4) continue;
        if (perms[2] != 'x' || strcmp(file, exe) != 0) continue;
        lo[ranges] = a; hi[ranges] = b; off[ranges] = o; ranges++;
    }
    fclose(maps);
    if (ranges == 0) { fprintf(stderr, "steptrace: no executable mapping of %s in %d\n", exe, pid); return 1; }

    table = calloc(CAP, sizeof *table);
    if (!table) { perror("calloc"); return 1; }
    if (ptrace(PTRACE_ATTACH, pid, 0, 0) < 0) { perror("ptrace(PTRACE_ATTACH)"); return 1; }
    int status;
    if (waitpid(pid, &status, 0) < 0) { perror("waitpid"); return 1; }

    double end = mono() + seconds;
    long steps = 0;
    int deliver = 0;
    for (;;) {
        if ((steps & 1023) == 0 && mono() > end) break;
        if (ptrace(PTRACE_SINGLESTEP, pid, 0, (void *)(long)deliver) < 0) { perror("ptrace(PTRACE_SINGLESTEP)"); break; }
        deliver = 0;
        if (waitpid(pid, &status, 0) < 0 || WIFEXITED(status) || WIFSIGNALED(status)) {
            fprintf(stderr, "steptrace: process %d ended\n", pid);
            break;
        }
        /* A signal other than the step's own trap goes on to the process. */
        if (WIFSTOPPED(status) && WSTOPSIG(status) != SIGTRAP) deliver = WSTOPSIG(status);
        struct user_regs_struct regs;
        if (ptrace(PTRACE_GETREGS, pid, 0, &regs) < 0) continue;
        steps++;
        for (int i = 0; i < ranges; i++)
            if (regs.rip >= lo[i] && regs.rip < hi[i]) { add(regs.rip - lo[i] + off[i]); break; }
    }
    ptrace(PTRACE_DETACH, pid, 0, (void *)(long)deliver);

    uint64_t *out = malloc((distinct ? distinct : 1) * sizeof *out);
    size_t k = 0;
    for (size_t i = 0; i < CAP; i++) if (table[i]) out[k++] = table[i];
    qsort(out, k, sizeof *out, cmp);
    for (size_t i = 0; i < k; i++) printf("%llu\n", (unsigned long long)out[i]);
    fprintf(stderr, "steptrace: steps=%ld distinct=%zu seconds=%.0f\n", steps, distinct, seconds);
    return 0;
}
