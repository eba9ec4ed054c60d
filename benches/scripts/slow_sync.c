/* An emulated slow-fdatasync device for the sector benchmark (docs/benchmarks-sector.md): every
 * fdatasync, fsync and syncfs of the process does the real call, then sleeps SLOW_SYNC_US
 * microseconds (default 3000), as a drive without power-loss protection spends milliseconds
 * flushing its cache. All contenders (raw, engine, redb, fjall) sync through libc, so each pays
 * the same per sync; one that syncs more often pays more, as on such a drive.
 *
 *   gcc -shared -fPIC -O2 -o /tmp/slow_sync.so benches/scripts/slow_sync.c -ldl
 *   cargo bench -p cellar-benches --bench sector --no-run    # prints the binary's path
 *   LD_PRELOAD=/tmp/slow_sync.so SLOW_SYNC_US=3000 CELLAR_BENCH_DIR=/tmp/cbench \
 *     target/release/deps/sector-HASH --bench
 *
 * Also counts the syncs: at exit a process that synced prints "slow_sync: N syncs" on stderr.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static atomic_ulong syncs;

static void pause_for_sync(void) {
    static long us = -1;
    if (us < 0) {
        const char *s = getenv("SLOW_SYNC_US");
        us = s ? atol(s) : 3000;
    }
    atomic_fetch_add(&syncs, 1);
    struct timespec t = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&t, &t) != 0) {
    }
}

#define WRAP(name)                                                   \
    int name(int fd) {                                               \
        static int (*real)(int);                                     \
        if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, #name);     \
        int rc = real(fd);                                           \
        pause_for_sync();                                            \
        return rc;                                                   \
    }

WRAP(fdatasync)
WRAP(fsync)
WRAP(syncfs)

__attribute__((destructor)) static void report(void) {
    unsigned long n = atomic_load(&syncs);
    if (n > 0) fprintf(stderr, "slow_sync: %lu syncs\n", n);
}
