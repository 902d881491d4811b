/* Two builds of libji.so in one process, call by call: which is faster end to end?
 *
 * This VM's speed drifts by ±10% from minute to minute, so two builds timed one after the
 * other cannot show a 3% change. Here both builds are loaded side by side (dlopen with
 * RTLD_LOCAL: each has its own Rust statics and handle; they share one libtorch) and every
 * image goes through both, in alternating order, so drift hits them alike. Each handle is
 * made from the same config and must give the same JSON for every file (checked).
 *
 * Usage: ab_bench [--rounds N] [--gap-ms MS] CONFIG LIB_A LIB_B FILE...
 *   --rounds  timed rounds over the files (default 20; one untimed round comes first)
 *   --gap-ms  sleep this long before every call (default 0: calls back to back); on this VM a
 *             gap of 30 ms makes every call several ms slower (BENCHMARKS.md)
 * Prints mean, median, 95th percentile and maximum ms per call for each build, B/A of the means over all calls and the
 * range of B/A over the rounds. Built and run by `make ab-bench A=... B=...`.
 * Copy the build under test first (cp target/release/libji.so /tmp/libji_a.so): a path that is
 * the same file for A and B is loaded once and both "builds" are the same one.
 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int (*init_fn)(const char *, void **);
typedef int (*process_fn)(void *, const unsigned char *, size_t, const char *, char **);
typedef void (*free_fn)(char *);
typedef void (*release_fn)(void *);
typedef const char *(*error_fn)(void);

struct build {
    const char *path;
    void *lib, *handle;
    process_fn process;
    free_fn free_string;
    release_fn release;
    error_fn last_error;
    double *ms;
};

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *sym(struct build *b, const char *name) {
    void *p = dlsym(b->lib, name);
    if (!p) {
        fprintf(stderr, "%s: no symbol %s\n", b->path, name);
        exit(1);
    }
    return p;
}

static void open_build(struct build *b, const char *config, size_t calls) {
    b->lib = dlopen(b->path, RTLD_NOW | RTLD_LOCAL);
    if (!b->lib) {
        fprintf(stderr, "%s\n", dlerror());
        exit(1);
    }
    init_fn init = (init_fn)sym(b, "evsdk_init");
    b->process = (process_fn)sym(b, "evsdk_process_image");
    b->free_string = (free_fn)sym(b, "evsdk_free_string");
    b->release = (release_fn)sym(b, "evsdk_release");
    b->last_error = (error_fn)sym(b, "evsdk_last_error");
    if (init(config, &b->handle) != 0) {
        fprintf(stderr, "%s: evsdk_init: %s\n", b->path, b->last_error());
        exit(1);
    }
    b->ms = calloc(calls ? calls : 1, sizeof(double));
    if (!b->ms) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
}

/* One call; returns its JSON (caller frees with free()) and its time in ms. */
static char *call(struct build *b, const unsigned char *data, size_t len, double *ms) {
    char *out = NULL;
    double t0 = now_ms();
    int rc = b->process(b->handle, data, len, NULL, &out);
    *ms = now_ms() - t0;
    if (rc != 0) {
        fprintf(stderr, "%s: evsdk_process_image: %d %s\n", b->path, rc, b->last_error());
        exit(1);
    }
    char *copy = strdup(out);
    b->free_string(out);
    return copy;
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

int main(int argc, char **argv) {
    int rounds = 20;
    double gap_ms = 0;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (i + 1 >= argc) break;
        if (strcmp(argv[i], "--rounds") == 0) rounds = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--gap-ms") == 0) gap_ms = atof(argv[i + 1]);
        else break;
    }
    if (argc - i < 4 || rounds < 1) {
        fprintf(stderr, "usage: ab_bench [--rounds N] [--gap-ms MS] CONFIG LIB_A LIB_B FILE...\n");
        return 2;
    }
    const char *config = argv[i];
    int nfiles = argc - i - 3;
    char **files = argv + i + 3;
    unsigned char **data = calloc((size_t)nfiles, sizeof *data);
    size_t *len = calloc((size_t)nfiles, sizeof *len);
    for (int f = 0; f < nfiles; f++) data[f] = read_file(files[f], &len[f]);

    size_t calls = (size_t)rounds * (size_t)nfiles;
    struct build b[2] = {{.path = argv[i + 1]}, {.path = argv[i + 2]}};
    open_build(&b[0], config, calls);
    open_build(&b[1], config, calls);
    if (b[0].lib == b[1].lib)
        fprintf(stderr, "note: %s and %s are the same library (copy one of them)\n", b[0].path,
                b[1].path);

    double *round_ms[2] = {calloc((size_t)rounds, sizeof(double)), calloc((size_t)rounds, sizeof(double))};
    struct timespec gap = {(time_t)(gap_ms / 1e3), (long)((gap_ms - 1e3 * (time_t)(gap_ms / 1e3)) * 1e6)};
    for (int r = 0; r <= rounds; r++) {
        for (int f = 0; f < nfiles; f++) {
            char *json[2];
            for (int k = 0; k < 2; k++) {
                int v = (r + f + k) & 1; /* alternate which build goes first */
                if (gap_ms > 0) nanosleep(&gap, NULL);
                double ms;
                json[v] = call(&b[v], data[f], len[f], &ms);
                if (r > 0) {
                    b[v].ms[(size_t)(r - 1) * nfiles + f] = ms;
                    round_ms[v][r - 1] += ms;
                }
            }
            if (strcmp(json[0], json[1]) != 0) {
                fprintf(stderr, "%s: the builds disagree:\n  A %s\n  B %s\n", files[f], json[0], json[1]);
                return 1;
            }
            free(json[0]);
            free(json[1]);
        }
    }
    double sum[2] = {0, 0};
    for (int v = 0; v < 2; v++) {
        for (size_t c = 0; c < calls; c++) sum[v] += b[v].ms[c];
        qsort(b[v].ms, calls, sizeof(double), cmp_double);
        printf("%s %s: mean %.3f ms, median %.3f ms, p95 %.3f ms, max %.3f ms per call\n",
               v ? "B" : "A", b[v].path, sum[v] / calls, b[v].ms[calls / 2],
               b[v].ms[calls * 95 / 100], b[v].ms[calls - 1]);
    }
    double lo = 1e9, hi = 0;
    for (int r = 0; r < rounds; r++) {
        double q = round_ms[1][r] / round_ms[0][r];
        lo = q < lo ? q : lo;
        hi = q > hi ? q : hi;
    }
    printf("B/A %.3f (rounds %.3f-%.3f; %d rounds x %d files, gap %.0f ms)\n", sum[1] / sum[0], lo, hi,
           rounds, nfiles, gap_ms);
    for (int v = 0; v < 2; v++) {
        b[v].release(b[v].handle);
        free(b[v].ms);
        free(round_ms[v]);
    }
    for (int f = 0; f < nfiles; f++) free(data[f]);
    free(data);
    free(len);
    return 0;
}
