/*
 * test-ji-api: our own version of the platform's test tool. It drives libji.so through the
 * ev_sdk ji_* ABI exactly as the judge does, and prints each JSON result and the time per call.
 *
 *   test-ji-api -f FUNC -i INPUT [-a ARGS] [-r REPEAT] [-o OUTFILE] [-n N] [-b BATCH]
 *
 * FUNC: frame (1), buffer (2), file (3), video (4), loop (5: create/destroy N times),
 *       image (4.x ji_calc_image, -b frames per call), async (4.x ji_calc_image_asyn: queue
 *       every frame, then wait for every callback, like the platform's -f 2), threads (5
 *       threads, own predictors), shared (5 threads sharing one predictor), version.
 * INPUT: a file, a comma-separated list, or a folder (its .bmp/.ppm/.jpg/.png files).
 * frame/image decode BMP (24/32-bit, uncompressed) and PPM (P6) themselves: no OpenCV.
 * The config comes from $EV_SDK_CONFIG (or the platform default path).
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ji.h"

typedef struct {
    int rows, cols, channels, step;
    unsigned char *data; /* BGR or BGRA, rows `step` bytes apart */
} Image;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static unsigned char *read_file(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(*len > 0 ? (size_t)*len : 1);
    if (buf && fread(buf, 1, (size_t)*len, f) != (size_t)*len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static uint32_t le32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

/* Uncompressed 24/32-bit BMP or binary PPM into a BGR(A) image with a padded stride
 * (rows aligned to 8 bytes plus 8, so the library must honour `step`). */
static int load_image(const char *path, Image *img) {
    long len = 0;
    unsigned char *buf = read_file(path, &len);
    if (!buf) return -1;
    int ok = -1;
    if (len > 54 && buf[0] == 'B' && buf[1] == 'M') {
        uint32_t off = le32(buf + 10);
        int32_t w = (int32_t)le32(buf + 18), h = (int32_t)le32(buf + 22);
        int bpp = buf[28] | buf[29] << 8;
        uint32_t comp = le32(buf + 30);
        int flip = h > 0;
        if (h < 0) h = -h;
        if ((bpp == 24 || bpp == 32) && (comp == 0 || comp == 3) && w > 0 && h > 0) {
            int ch = bpp / 8;
            long src_step = ((long)w * ch + 3) & ~3L;
            if ((long)off + src_step * h <= len) {
                img->rows = h;
                img->cols = w;
                img->channels = ch;
                img->step = ((w * ch + 7) & ~7) + 8;
                img->data = calloc((size_t)img->step * h, 1);
                for (int y = 0; y < h; y++) {
                    const unsigned char *src = buf + off + src_step * (flip ? h - 1 - y : y);
                    memcpy(img->data + (size_t)img->step * y, src, (size_t)w * ch);
                }
                ok = 0;
            }
        }
    } else if (len > 2 && buf[0] == 'P' && buf[1] == '6') {
        int w, h, maxv, n = 0;
        if (sscanf((const char *)buf, "P6 %d %d %d%n", &w, &h, &maxv, &n) == 3 && maxv == 255 &&
            w > 0 && h > 0 && n + 1 + (long)w * h * 3 <= len) {
            const unsigned char *src = buf + n + 1;
            img->rows = h;
            img->cols = w;
            img->channels = 3;
            img->step = w * 3 + 8;
            img->data = calloc((size_t)img->step * h, 1);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    for (int c = 0; c < 3; c++) /* RGB -> BGR */
                        img->data[(size_t)img->step * y + x * 3 + c] = src[((size_t)y * w + x) * 3 + 2 - c];
            ok = 0;
        }
    }
    free(buf);
    return ok;
}

static int has_ext(const char *name, const char *const *exts) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    for (; *exts; exts++)
        if (strcmp(dot + 1, *exts) == 0) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Expands INPUT into a sorted list of paths. */
static char **list_inputs(const char *input, int *count) {
    static const char *const exts[] = {"bmp", "ppm", "jpg", "jpeg", "png", "webp", NULL};
    char **out = NULL;
    int n = 0, cap = 0;
    char *copy = strdup(input);
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        DIR *d = opendir(tok);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d))) {
                if (e->d_name[0] == '.' || !has_ext(e->d_name, exts)) continue;
                if (n == cap) out = realloc(out, sizeof(char *) * (cap = cap ? cap * 2 : 16));
                size_t sz = strlen(tok) + strlen(e->d_name) + 2;
                out[n] = malloc(sz);
                snprintf(out[n++], sz, "%s/%s", tok, e->d_name);
            }
            closedir(d);
        } else {
            if (n == cap) out = realloc(out, sizeof(char *) * (cap = cap ? cap * 2 : 16));
            out[n++] = strdup(tok);
        }
    }
    free(copy);
    if (n > 1) qsort(out, (size_t)n, sizeof(char *), cmp_str);
    *count = n;
    return out;
}

typedef struct {
    const char *func, *args, *outfile;
    char **inputs;
    int ninputs, repeat, loops, batch;
    int failures; /* calls that returned non-zero */
    int alarms, normals;
} Options;

static void report(const char *what, const char *path, int rc, int code, const char *json, double ms) {
    printf("%s %s rc=%d code=%d time=%.3fms\n%s\n", what, path, rc, code, ms, json ? json : "(null)");
}

static int run_one(void *pred, const char *func, const char *path, Options *o, int quiet) {
    int rc = -1;
    double t0 = now_ms();
    JI_EVENT ev = {-2, NULL};
    if (strcmp(func, "frame") == 0) {
        Image img;
        if (load_image(path, &img) != 0) {
            fprintf(stderr, "cannot read %s as BMP/PPM\n", path);
            o->failures++;
            return -1;
        }
        JI_CV_FRAME in = {img.rows, img.cols, img.channels == 4 ? JI_CV_8UC4 : JI_CV_8UC3, img.data, img.step};
        JI_CV_FRAME out = {0, 0, 0, NULL, 0};
        t0 = now_ms();
        rc = ji_calc_frame(pred, &in, o->args, &out, &ev);
        if (rc == 0) {
            /* The output frame must be an unmodified copy of the input. */
            int row = img.cols * img.channels;
            for (int y = 0; y < img.rows; y++)
                if (out.rows != img.rows || memcmp((unsigned char *)out.data + (size_t)out.step * y,
                                                   img.data + (size_t)img.step * y, (size_t)row) != 0) {
                    fprintf(stderr, "outFrame differs from the input at row %d\n", y);
                    rc = -100;
                    break;
                }
        }
        free(img.data);
    } else if (strcmp(func, "buffer") == 0) {
        long len = 0;
        unsigned char *buf = read_file(path, &len);
        if (!buf) {
            fprintf(stderr, "cannot read %s\n", path);
            o->failures++;
            return -1;
        }
        t0 = now_ms();
        rc = ji_calc_buffer(pred, buf, (int)len, o->args, o->outfile, &ev);
        free(buf);
    } else if (strcmp(func, "file") == 0) {
        rc = ji_calc_file(pred, path, o->args, o->outfile, &ev);
    } else if (strcmp(func, "video") == 0) {
        rc = ji_calc_video_file(pred, path, o->args, o->outfile, NULL);
    }
    double ms = now_ms() - t0;
    if (!quiet) report(func, path, rc, ev.code, ev.json, ms);
    if (rc != 0) o->failures++;
    else if (ev.code == JISDK_CODE_ALARM) o->alarms++;
    else if (ev.code == JISDK_CODE_NORMAL) o->normals++;
    return rc;
}

/* 4.x: ji_calc_image on batches of up to o->batch frames. */
static int run_image(void *pred, Options *o) {
    int bs = o->batch > 0 ? o->batch : 1;
    for (int start = 0; start < o->ninputs; start += bs) {
        int n = o->ninputs - start < bs ? o->ninputs - start : bs;
        JiImageInfo infos[64];
        Image imgs[64];
        if (n > 64) n = 64;
        int loaded = 0;
        for (int i = 0; i < n; i++) {
            if (load_image(o->inputs[start + i], &imgs[i]) != 0 || imgs[i].channels != 3) {
                fprintf(stderr, "cannot read %s as 24-bit BMP/PPM\n", o->inputs[start + i]);
                break;
            }
            loaded++;
            /* Packed rows as the reference test builds them: stride in pixels = cols. */
            unsigned char *packed = malloc((size_t)imgs[i].rows * imgs[i].cols * 3);
            for (int y = 0; y < imgs[i].rows; y++)
                memcpy(packed + (size_t)y * imgs[i].cols * 3, imgs[i].data + (size_t)y * imgs[i].step, (size_t)imgs[i].cols * 3);
            free(imgs[i].data);
            imgs[i].data = packed;
            JiImageInfo info;
            memset(&info, 0, sizeof info);
            info.nWidth = (unsigned)imgs[i].cols;
            info.nHeight = (unsigned)imgs[i].rows;
            info.nWidthStride = (unsigned)imgs[i].cols;
            info.nHeightStride = (unsigned)imgs[i].rows;
            info.pData = packed;
            info.nDataLen = (unsigned)(imgs[i].rows * imgs[i].cols); /* a pixel count, as the reference test */
            info.nFormat = JI_IMAGE_TYPE_BGR;
            info.nDataType = JI_UNSIGNED_CHAR;
            info.nFrameNo = (unsigned)(start + i);
            infos[i] = info;
        }
        if (loaded < n) {
            for (int i = 0; i < loaded; i++) free(imgs[i].data);
            o->failures++;
            return -1;
        }
        JiImageInfo *outs = NULL;
        unsigned int nout = 0;
        JiEvent ev = {-2, NULL};
        double t0 = now_ms();
        JiErrorCode rc = ji_calc_image(pred, infos, (unsigned)n, o->args, &outs, &nout, &ev);
        double ms = now_ms() - t0;
        char label[64];
        snprintf(label, sizeof label, "image[%d..%d]", start, start + n - 1);
        report(label, o->inputs[start], rc, ev.code, ev.json, ms);
        if (rc == 0 && (nout != (unsigned)n || memcmp(outs[0].pData, imgs[0].data, (size_t)imgs[0].cols * 3) != 0)) {
            fprintf(stderr, "pOutFrames does not hold copies of the inputs\n");
            rc = -100;
        }
        if (rc != 0) o->failures++;
        else if (ev.code == JISDK_CODE_ALARM) o->alarms++;
        else o->normals++;
        for (int i = 0; i < n; i++) free(imgs[i].data);
    }
    return 0;
}

/* 4.x asynchronous mode: one request per frame, the frame freed as soon as the call returns;
 * the callback prints the result, frees it (ji_free_async_result: C has no `delete`) and
 * counts; the main thread waits until every queued request has had its callback. */
typedef struct {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    Options *o;
    int done;
} AsyncState;

typedef struct {
    AsyncState *state;
    const char *path;
    int index;
    double t0;
} AsyncRequest;

static void on_async_result(JiData *output, void *user) {
    AsyncRequest *req = user;
    AsyncState *st = req->state;
    pthread_mutex_lock(&st->mutex);
    char label[64];
    snprintf(label, sizeof label, "async[%d]", req->index);
    report(label, req->path, 0, output->event.code, output->event.json, now_ms() - req->t0);
    if (output->event.code == JISDK_CODE_FAILED) st->o->failures++;
    else if (output->event.code == JISDK_CODE_ALARM) st->o->alarms++;
    else st->o->normals++;
    st->done++;
    pthread_cond_signal(&st->cond);
    pthread_mutex_unlock(&st->mutex);
    ji_free_async_result(output);
    free(req);
}

static int run_async(void *pred, Options *o) {
    AsyncState st;
    pthread_mutex_init(&st.mutex, NULL);
    pthread_cond_init(&st.cond, NULL);
    st.o = o;
    st.done = 0;
    int rc = ji_set_callback(pred, on_async_result);
    if (rc != 0) {
        printf("ji_set_callback rc=%d\n", rc);
        o->failures++;
        return -1;
    }
    int queued = 0;
    for (int r = 0; r < o->repeat; r++) {
        for (int i = 0; i < o->ninputs; i++) {
            Image img;
            if (load_image(o->inputs[i], &img) != 0 || img.channels != 3) {
                fprintf(stderr, "cannot read %s as 24-bit BMP/PPM\n", o->inputs[i]);
                o->failures++;
                continue;
            }
            /* Packed rows as the reference test builds them (stride in pixels = cols). */
            unsigned char *packed = malloc((size_t)img.rows * img.cols * 3);
            for (int y = 0; y < img.rows; y++)
                memcpy(packed + (size_t)y * img.cols * 3, img.data + (size_t)y * img.step, (size_t)img.cols * 3);
            free(img.data);
            JiImageInfo info;
            memset(&info, 0, sizeof info);
            info.nWidth = (unsigned)img.cols;
            info.nHeight = (unsigned)img.rows;
            info.nWidthStride = (unsigned)img.cols;
            info.nHeightStride = (unsigned)img.rows;
            info.pData = packed;
            info.nDataLen = (unsigned)(img.rows * img.cols);
            info.nFormat = JI_IMAGE_TYPE_BGR;
            info.nDataType = JI_UNSIGNED_CHAR;
            info.nFrameNo = (unsigned)queued;
            AsyncRequest *req = malloc(sizeof *req);
            *req = (AsyncRequest){&st, o->inputs[i], queued, now_ms()};
            rc = ji_calc_image_asyn(pred, &info, 1, o->args, req);
            free(packed); /* the library copied the frame */
            if (rc != 0) {
                printf("async[%d] %s rc=%d (no callback)\n", queued, o->inputs[i], rc);
                o->failures++;
                free(req);
            } else {
                queued++;
            }
        }
    }
    pthread_mutex_lock(&st.mutex);
    while (st.done < queued) pthread_cond_wait(&st.cond, &st.mutex);
    int done = st.done;
    pthread_mutex_unlock(&st.mutex);
    printf("async: requests=%d callbacks=%d\n", queued, done);
    pthread_cond_destroy(&st.cond);
    pthread_mutex_destroy(&st.mutex);
    return 0;
}

typedef struct {
    Options *o;
    void *shared;
    int failures, alarms, normals;
} ThreadArg;

static void *thread_main(void *p) {
    ThreadArg *t = p;
    Options local = *t->o;
    local.failures = local.alarms = local.normals = 0;
    void *pred = t->shared ? t->shared : ji_create_predictor(JISDK_PREDICTOR_DEFAULT);
    if (!pred) {
        t->failures = 1;
        return NULL;
    }
    for (int r = 0; r < local.repeat; r++)
        for (int i = 0; i < local.ninputs; i++) run_one(pred, "file", local.inputs[i], &local, 1);
    if (!t->shared) ji_destroy_predictor(pred);
    t->failures = local.failures;
    t->alarms = local.alarms;
    t->normals = local.normals;
    return NULL;
}

static int run_threads(Options *o, int shared) {
    enum { N = 5 };
    pthread_t th[N];
    ThreadArg args[N];
    void *pred = shared ? ji_create_predictor(JISDK_PREDICTOR_DEFAULT) : NULL;
    if (shared && !pred) {
        o->failures++;
        return 1;
    }
    double t0 = now_ms();
    for (int i = 0; i < N; i++) {
        args[i] = (ThreadArg){o, pred, 0, 0, 0};
        pthread_create(&th[i], NULL, thread_main, &args[i]);
    }
    int failures = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        failures += args[i].failures;
        o->alarms += args[i].alarms;
        o->normals += args[i].normals;
    }
    o->failures += failures;
    printf("threads=%d shared=%d calls=%d failures=%d time=%.3fms\n", N, shared, N * o->repeat * o->ninputs, failures,
           now_ms() - t0);
    ji_destroy_predictor(pred);
    return failures;
}

static void usage(void) {
    fprintf(stderr,
            "usage: test-ji-api -f frame|buffer|file|video|loop|image|async|threads|shared|version -i INPUT\n"
            "                   [-a ARGS] [-r REPEAT] [-o OUTFILE] [-n LOOPS] [-b BATCH]\n");
}

int main(int argc, char **argv) {
    Options o = {NULL, NULL, NULL, NULL, 0, 1, 10, 1, 0, 0, 0};
    const char *input = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v || a[0] != '-' || strlen(a) != 2) {
            usage();
            return 2;
        }
        i++;
        switch (a[1]) {
        case 'f': o.func = v; break;
        case 'i': input = v; break;
        case 'a': o.args = v; break;
        case 'o': o.outfile = v; break;
        case 'r': o.repeat = atoi(v); break;
        case 'n': o.loops = atoi(v); break;
        case 'b': o.batch = atoi(v); break;
        default: usage(); return 2;
        }
    }
    static const char *const numbered[] = {NULL, "frame", "buffer", "file", "video", "loop"};
    if (o.func && o.func[0] >= '1' && o.func[0] <= '5' && o.func[1] == 0) o.func = numbered[o.func[0] - '0'];
    if (!o.func) {
        usage();
        return 2;
    }
    ji_init(argc, argv);
    if (strcmp(o.func, "version") == 0) {
        char version[512];
        int rc = ji_get_version(version);
        printf("version rc=%d\n%s\n", rc, version);
        return rc == 0 ? 0 : 1;
    }
    if (!input) {
        usage();
        return 2;
    }
    o.inputs = list_inputs(input, &o.ninputs);
    int status = 0;
    if (strcmp(o.func, "loop") == 0) {
        double t0 = now_ms();
        for (int i = 0; i < o.loops; i++) {
            void *pred = ji_create_predictor(JISDK_PREDICTOR_DEFAULT);
            if (!pred) {
                fprintf(stderr, "ji_create_predictor failed: %s\n", evsdk_last_error());
                status = 1;
                break;
            }
            run_one(pred, "file", o.inputs[0], &o, 1);
            ji_destroy_predictor(pred);
        }
        printf("loop=%d failures=%d time=%.3fms\n", o.loops, o.failures, now_ms() - t0);
        if (o.failures) status = 1;
    } else if (strcmp(o.func, "threads") == 0 || strcmp(o.func, "shared") == 0) {
        run_threads(&o, strcmp(o.func, "shared") == 0);
    } else {
        void *pred = ji_create_predictor(JISDK_PREDICTOR_DEFAULT);
        if (!pred) {
            fprintf(stderr, "ji_create_predictor failed: %s\n", evsdk_last_error());
            status = 1;
        } else {
            double t0 = now_ms();
            if (strcmp(o.func, "image") == 0) {
                for (int r = 0; r < o.repeat; r++) run_image(pred, &o);
            } else if (strcmp(o.func, "async") == 0) {
                run_async(pred, &o);
            } else {
                for (int r = 0; r < o.repeat; r++)
                    for (int i = 0; i < o.ninputs; i++) run_one(pred, o.func, o.inputs[i], &o, 0);
            }
            printf("Total processing time: %.3f ms\n", now_ms() - t0);
            ji_destroy_predictor(pred);
        }
    }
    printf("summary: failures=%d alarms=%d normals=%d\n", o.failures, o.alarms, o.normals);
    /* A failed call is a failure: the exit status says so, as the summary does. */
    if (o.failures) status = 1;
    for (int i = 0; i < o.ninputs; i++) free(o.inputs[i]);
    free(o.inputs);
    ji_reinit();
    return status;
}
