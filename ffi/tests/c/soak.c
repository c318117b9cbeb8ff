/*
 * soak: the C ABI under concurrent load. THREADS threads (default 8) share one model for
 * SECONDS seconds (default 30). Each thread loops: create a session with random sampling
 * settings, hot-swap adapters at random scales (graft_session_set_adapters), generate a few
 * tokens, tokenize / detokenize / apply the chat template on the shared model, free the
 * session; it also loads and frees adapters of its own (sometimes while they are active), and
 * replaces adapters in a shared pool that other threads are using at the same moment.
 *
 * Cross-thread traffic, all of it allowed by graft.h:
 * - cancel: from inside their token callbacks, some threads call graft_session_cancel on the
 *   sessions other threads are generating with (stop reason GRAFT_STOP_CANCELLED there), and
 *   raise another thread's stop flag, which that thread's callback reads and answers with
 *   false (GRAFT_STOP_CALLBACK);
 * - busy: a thread inside its token callback (so its session is certainly in use) posts its
 *   session; another thread calls graft_generate / set_adapters / reset / info on it and must
 *   get GRAFT_ERR_BUSY; every thread also re-enters its own session from its callback
 *   (GRAFT_ERR_BUSY as well);
 * - stale handles: a pooled adapter may be freed by one thread while another passes it to
 *   set_adapters (GRAFT_OK before the free, GRAFT_ERR_INVALID_HANDLE after), and a cancel may
 *   reach a session its owner has just freed (GRAFT_ERR_INVALID_HANDLE).
 * Any other status is a failure (printed with graft_last_error).
 *
 * Memory: every few seconds the main thread parks the workers between two iterations (each
 * has freed its session and its own adapter; the model and the shared pool stay), samples
 * VmRSS and RssAnon from /proc/self/status and, with glibc, the bytes malloc has handed out
 * and not had back (mallinfo2: uordblks + hblkhd over all arenas), prints them and lets the
 * workers go on. The first third of the run is warm-up.
 * - The leak check is on the heap in use at these quiet points: its median over the last third
 *   may exceed its median over the middle third by at most max(4 MB, 5%). With every session
 *   freed it is the model, the pool and whatever graft keeps between calls; what a leak leaves
 *   behind adds to it. (Sampled while the threads run it swings by ±80 MB with the sessions
 *   alive at that moment.)
 * - RSS gets a looser bound, max(20 MB, 25%): it also moves with malloc's own high-water marks
 *   (glibc raises its mmap and trim thresholds as large blocks are freed, and eight threads
 *   spread over up to 16 arenas), which in a 30 s run on a loaded 2-core machine still climb
 *   (a 600 s run is flat from 60 s); the bound is for what malloc does not see (mmaps).
 * Without mallinfo2 (not glibc, or glibc < 2.33) RSS gets the bound max(20 MB, 10%).
 * SOAK_RSS_CHECK=0 turns both checks off (under ASan, whose quarantine holds freed memory on
 * purpose); the samples are still printed. Under ThreadSanitizer mallinfo2 reports glibc's
 * allocator, which TSan's replaces, so only the RSS bound means anything there.
 *
 * usage: soak MODEL ADAPTER_A ADAPTER_B [SECONDS=30] [THREADS=8]
 * Exit 0 when every call returned an expected status, every kind of cross-thread event
 * happened (runs of 10 s and more) and RSS stayed flat; 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
#define HAVE_MALLINFO2 1
#else
#define HAVE_MALLINFO2 0
#endif

#include "graft.h"

#define MAX_THREADS 64
#define POOL 2
#define MASK(s) (1u << (unsigned)(s))

static const char *adapter_paths[2];
static graft_model *model;
static int n_threads = 8;
static atomic_int stop;
/* Raised by the main thread to sample memory with every worker parked between iterations. */
static atomic_int pause_req, parked;

/* Sessions currently in use, one slot per thread (for cross-thread cancels). */
static _Atomic(graft_session *) slots[MAX_THREADS];
/* Stop flags a thread's callback reads (raised by other threads). */
static atomic_int stop_flag[MAX_THREADS];
/* Adapters shared by all threads; replaced while in use. */
static _Atomic(graft_adapter *) pool[POOL];

/* One cross-thread "use a busy session" request at a time. */
enum { REQ_IDLE, REQ_FILLING, REQ_POSTED, REQ_TAKEN, REQ_DONE };
static atomic_int req_state;
static graft_session *req_target;
static graft_status req_result[4];

static atomic_long n_failures, n_sessions, n_generations, n_tokens, n_swaps, n_own_loads, n_pool_swaps,
    n_stale_adapter, n_cancel_calls, n_cancel_stale, n_stop_cancelled, n_stop_callback, n_stop_max, n_stop_eog,
    n_stop_other, n_busy_cross, n_busy_unserved, n_busy_reentrant, n_text_calls;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* xorshift64*: per-thread random numbers (rand() is not thread-safe). */
static uint32_t rnd(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (uint32_t)((*s * 0x2545F4914F6CDD1DULL) >> 32);
}

static float rnd_scale(uint64_t *s) { return (float)((int)(rnd(s) % 401) - 200) / 100.0f; /* [-2, 2] */ }

/* Records a failure unless `st` is one of the statuses in `allowed`. */
static int expect(int t, const char *what, graft_status st, unsigned allowed) {
    if (MASK(st) & allowed) return 1;
    long n = atomic_fetch_add(&n_failures, 1);
    if (n < 20)
        printf("FAIL thread %d: %s: %s: %s\n", t, what, graft_status_name(st), graft_last_error());
    fflush(stdout);
    return 0;
}

/* Serves a posted busy request: every call on the posted session must be GRAFT_ERR_BUSY. */
static void serve_request(int t) {
    int want = REQ_POSTED;
    (void)t; /* the poster waits inside post_request and never gets here with its own request */
    if (atomic_load(&req_state) != REQ_POSTED) return;
    if (!atomic_compare_exchange_strong(&req_state, &want, REQ_TAKEN)) return;
    graft_session *s = req_target;
    uint32_t n_past = 0;
    req_result[0] = graft_generate(s, "hello", NULL, NULL, NULL, NULL);
    req_result[1] = graft_session_set_adapters(s, NULL, NULL, 0);
    req_result[2] = graft_session_reset(s);
    req_result[3] = graft_session_info(s, &n_past, NULL);
    atomic_store(&req_state, REQ_DONE);
}

/* Called from inside a token callback, so `s` is in use: another thread must be refused. */
static void post_request(int t, graft_session *s) {
    int want = REQ_IDLE;
    if (!atomic_compare_exchange_strong(&req_state, &want, REQ_FILLING)) return;
    req_target = s;
    atomic_store(&req_state, REQ_POSTED);
    double deadline = now_s() + 0.5;
    for (;;) {
        int st = atomic_load(&req_state);
        if (st == REQ_DONE) break;
        if (st == REQ_POSTED && now_s() > deadline) {
            int posted = REQ_POSTED;
            if (atomic_compare_exchange_strong(&req_state, &posted, REQ_IDLE)) {
                atomic_fetch_add(&n_busy_unserved, 1);
                return;
            }
        }
        sleep_us(100);
    }
    static const char *what[4] = {"cross-thread graft_generate on a busy session",
                                  "cross-thread graft_session_set_adapters on a busy session",
                                  "cross-thread graft_session_reset on a busy session",
                                  "cross-thread graft_session_info on a busy session"};
    int ok = 1;
    for (int i = 0; i < 4; i++) ok &= expect(t, what[i], req_result[i], MASK(GRAFT_ERR_BUSY));
    if (ok) atomic_fetch_add(&n_busy_cross, 1);
    atomic_store(&req_state, REQ_IDLE);
}

struct gen_ctx {
    int t;
    graft_session *s;
    uint64_t *rng;
    int pieces;
    int canceller, poster;
};

static bool on_piece(const char *piece, size_t len, void *user_data) {
    struct gen_ctx *g = user_data;
    int t = g->t;
    if (piece == NULL || strlen(piece) != len) {
        atomic_fetch_add(&n_failures, 1);
        printf("FAIL thread %d: callback piece is not NUL-terminated at len\n", t);
    }
    g->pieces++;
    atomic_fetch_add(&n_tokens, 1);
    serve_request(t);
    uint32_t r = rnd(g->rng);
    if (g->canceller && r % 3 == 0) {
        /* Cancel whatever another thread is generating with right now. */
        int j = (int)(rnd(g->rng) % (uint32_t)n_threads);
        graft_session *other = j == t ? NULL : atomic_load(&slots[j]);
        if (other != NULL) {
            graft_status st = graft_session_cancel(other);
            /* The owner may have freed it a moment ago. */
            if (expect(t, "graft_session_cancel (other thread)", st, MASK(GRAFT_OK) | MASK(GRAFT_ERR_INVALID_HANDLE))) {
                atomic_fetch_add(st == GRAFT_OK ? &n_cancel_calls : &n_cancel_stale, 1);
            }
        }
        j = (int)(rnd(g->rng) % (uint32_t)n_threads);
        if (j != t) atomic_store(&stop_flag[j], 1);
    }
    if (g->poster && g->pieces == 1 && r % 4 == 1) post_request(t, g->s);
    if (r % 16 == 5) {
        /* Re-entering the session this callback runs inside of. */
        const graft_adapter *none = NULL;
        float one = 1.0f;
        int ok = expect(t, "re-entrant graft_generate", graft_generate(g->s, "x", NULL, NULL, NULL, NULL),
                        MASK(GRAFT_ERR_BUSY));
        ok &= expect(t, "re-entrant graft_session_set_adapters", graft_session_set_adapters(g->s, &none, &one, 0),
                     MASK(GRAFT_ERR_BUSY));
        ok &= expect(t, "re-entrant graft_session_reset", graft_session_reset(g->s), MASK(GRAFT_ERR_BUSY));
        if (ok) atomic_fetch_add(&n_busy_reentrant, 1);
    }
    /* Another thread asked this one to stop. */
    return atomic_exchange(&stop_flag[t], 0) == 0;
}

static const char *prompts[] = {
    "Hi",
    "What is the capital of France?",
    "<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n",
    "Count: 1, 2, 3,",
    "Ünïcödé ✓ text",
};
#define N_PROMPTS (sizeof prompts / sizeof prompts[0])

static void text_calls(int t, uint64_t *rng) {
    const char *p = prompts[rnd(rng) % N_PROMPTS];
    int32_t ids[256];
    size_t n = 0, len = 0;
    char buf[1024];
    expect(t, "graft_tokenize", graft_tokenize(model, p, true, true, ids, 256, &n), MASK(GRAFT_OK));
    expect(t, "graft_detokenize", graft_detokenize(model, ids, n, true, buf, sizeof buf, &len), MASK(GRAFT_OK));
    graft_chat_message msgs[2] = {{"user", p}, {"assistant", "Sure."}};
    expect(t, "graft_chat_apply", graft_chat_apply(model, msgs, 1 + rnd(rng) % 2, true, false, buf, sizeof buf, &len),
           MASK(GRAFT_OK));
    atomic_fetch_add(&n_text_calls, 1);
}

static void generate_once(int t, graft_session *s, uint64_t *rng, int canceller, int poster) {
    uint32_t n_past = 0, n_ctx = 0;
    if (!expect(t, "graft_session_info", graft_session_info(s, &n_past, &n_ctx), MASK(GRAFT_OK))) return;
    if (n_past + 96 > n_ctx) expect(t, "graft_session_reset", graft_session_reset(s), MASK(GRAFT_OK));
    graft_generate_params gp = graft_generate_params_default();
    gp.max_tokens = 1 + (int32_t)(rnd(rng) % 6);
    const char *stops[1] = {"\n\n"};
    if (rnd(rng) % 2) {
        gp.stop = stops;
        gp.n_stop = 1;
    }
    struct gen_ctx g = {t, s, rng, 0, canceller, poster};
    graft_generation out;
    memset(&out, 0xAB, sizeof out);
    graft_status st;
    const char *p = prompts[rnd(rng) % N_PROMPTS];
    if (rnd(rng) % 3 == 0) {
        int32_t ids[128];
        size_t n = 0;
        if (!expect(t, "graft_tokenize", graft_tokenize(model, p, true, true, ids, 128, &n), MASK(GRAFT_OK))) return;
        st = graft_generate_tokens(s, ids, n, &gp, on_piece, &g, &out);
    } else {
        st = graft_generate(s, p, &gp, on_piece, &g, &out);
    }
    if (!expect(t, "graft_generate", st, MASK(GRAFT_OK))) return;
    atomic_fetch_add(&n_generations, 1);
    if (out.n_generated > (uint32_t)gp.max_tokens) {
        atomic_fetch_add(&n_failures, 1);
        printf("FAIL thread %d: %u tokens generated, max_tokens %d\n", t, out.n_generated, gp.max_tokens);
    }
    switch (out.stop_reason) {
    case GRAFT_STOP_CANCELLED: atomic_fetch_add(&n_stop_cancelled, 1); break;
    case GRAFT_STOP_CALLBACK: atomic_fetch_add(&n_stop_callback, 1); break;
    case GRAFT_STOP_MAX_TOKENS: atomic_fetch_add(&n_stop_max, 1); break;
    case GRAFT_STOP_END_OF_GENERATION: atomic_fetch_add(&n_stop_eog, 1); break;
    case GRAFT_STOP_STOP_STRING:
    case GRAFT_STOP_CONTEXT_FULL: atomic_fetch_add(&n_stop_other, 1); break;
    default:
        atomic_fetch_add(&n_failures, 1);
        printf("FAIL thread %d: stop reason %d\n", t, (int)out.stop_reason);
    }
}

/* Hot swap: 0..3 adapters from the shared pool and this thread's own, at random scales. */
static void swap_adapters(int t, graft_session *s, graft_adapter *mine, uint64_t *rng) {
    const graft_adapter *list[3];
    float scales[3];
    size_t n = 0;
    int from_pool = 0;
    uint32_t k = rnd(rng) % 4;
    for (uint32_t i = 0; i < k && n < 3; i++) {
        uint32_t which = rnd(rng) % (POOL + 1);
        const graft_adapter *a = which < POOL ? atomic_load(&pool[which]) : mine;
        if (a == NULL) continue;
        from_pool |= which < POOL;
        list[n] = a;
        scales[n++] = rnd_scale(rng);
    }
    graft_status st = graft_session_set_adapters(s, n ? list : NULL, n ? scales : NULL, n);
    /* A pooled adapter may have been replaced and freed by another thread in between. */
    unsigned allowed = MASK(GRAFT_OK) | (from_pool ? MASK(GRAFT_ERR_INVALID_HANDLE) : 0);
    if (expect(t, "graft_session_set_adapters", st, allowed))
        atomic_fetch_add(st == GRAFT_OK ? &n_swaps : &n_stale_adapter, 1);
}

static void *worker(void *arg) {
    int t = (int)(intptr_t)arg;
    uint64_t rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(t + 1);
    int canceller = t % 4 == 1, poster = t % 4 == 2;
    graft_adapter *mine = NULL;
    while (!atomic_load(&stop)) {
        if (atomic_load(&pause_req)) {
            /* Park with nothing of this thread's own alive, until the sample is taken. */
            if (mine != NULL) {
                expect(t, "graft_adapter_free (own, before a memory sample)", graft_adapter_free(mine), MASK(GRAFT_OK));
                mine = NULL;
            }
            atomic_fetch_add(&parked, 1);
            while (atomic_load(&pause_req) && !atomic_load(&stop)) sleep_us(200);
            atomic_fetch_sub(&parked, 1);
            continue;
        }
        serve_request(t);
        graft_session_params sp = graft_session_params_default();
        sp.n_ctx = 256;
        static const uint32_t batches[3] = {8, 32, 512}; /* 8: prompts take several batches */
        sp.n_batch = batches[rnd(&rng) % 3];
        sp.seed = rnd(&rng);
        sp.temperature = rnd(&rng) % 2 ? 0.0f : 0.8f;
        graft_session *s = NULL;
        if (!expect(t, "graft_session_create", graft_session_create(model, &sp, &s), MASK(GRAFT_OK))) {
            sleep_us(10000);
            continue;
        }
        atomic_fetch_add(&n_sessions, 1);
        atomic_store(&slots[t], s);
        int steps = 1 + (int)(rnd(&rng) % 4);
        for (int k = 0; k < steps && !atomic_load(&stop); k++) {
            switch (rnd(&rng) % 4) {
            case 0:
                swap_adapters(t, s, mine, &rng);
                generate_once(t, s, &rng, canceller, poster);
                break;
            case 1:
            case 2: generate_once(t, s, &rng, canceller, poster); break;
            default: text_calls(t, &rng);
            }
            serve_request(t);
            if (mine != NULL && rnd(&rng) % 8 == 0) {
                /* Free this thread's adapter, perhaps while it is active in `s`. */
                expect(t, "graft_adapter_free (own)", graft_adapter_free(mine), MASK(GRAFT_OK));
                mine = NULL;
            }
        }
        atomic_store(&slots[t], NULL);
        expect(t, "graft_session_free", graft_session_free(s), MASK(GRAFT_OK));
        uint32_t r = rnd(&rng);
        if (mine == NULL && r % 4 == 0) {
            if (expect(t, "graft_adapter_load (own)", graft_adapter_load(model, adapter_paths[r % 2], &mine),
                       MASK(GRAFT_OK)))
                atomic_fetch_add(&n_own_loads, 1);
        }
        if (r % 8 == 3) {
            /* Replace a pooled adapter that other threads may be using right now. */
            graft_adapter *fresh = NULL;
            /* Slot i always holds a copy of adapter i % 2, so the memory samples (taken with
             * only the model and the pool alive) compare like with like. */
            uint32_t slot = (r >> 4) % POOL;
            if (expect(t, "graft_adapter_load (pool)", graft_adapter_load(model, adapter_paths[slot % 2], &fresh),
                       MASK(GRAFT_OK))) {
                graft_adapter *old = atomic_exchange(&pool[slot], fresh);
                expect(t, "graft_adapter_free (pool)", graft_adapter_free(old), MASK(GRAFT_OK));
                atomic_fetch_add(&n_pool_swaps, 1);
            }
        }
    }
    expect(t, "graft_adapter_free (own, at exit)", graft_adapter_free(mine), MASK(GRAFT_OK));
    return NULL;
}

/* VmRSS and RssAnon of this process in kB (0 when unreadable). */
static void rss_kb(long *vm, long *anon) {
    *vm = *anon = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) *vm = atol(line + 6);
        if (strncmp(line, "RssAnon:", 8) == 0) *anon = atol(line + 8);
    }
    fclose(f);
}

/* Bytes malloc has handed out and not had back, in kB (all arenas and mmapped blocks); -1
 * where mallinfo2 is not available. */
static long heap_in_use_kb(void) {
#if HAVE_MALLINFO2
    struct mallinfo2 mi = mallinfo2();
    return (long)((mi.uordblks + mi.hblkhd) / 1024);
#else
    return -1;
#endif
}

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* The median of `n` values (sorts them); 0 when there are none. */
static long median(long *v, int n) {
    if (n == 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_long);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Compares the median of the samples `v` (kB, taken at times `at`) over the last third of
 * the run with their median over the middle third, prints both, and returns 0 (and sets *rc
 * to 1) when the growth exceeds max(`min_mb` MB, `pct`% of the middle) and `check` is on. */
static int flat(int *rc, int check, const char *what, const double *at, const long *v, int n, double seconds,
                long min_mb, long pct) {
    enum { MAX_HALF = 50000 };
    static long mid[MAX_HALF], end[MAX_HALF];
    int n_mid = 0, n_end = 0;
    long mid_max = 0, end_max = 0;
    for (int i = 0; i < n && n_mid < MAX_HALF && n_end < MAX_HALF; i++) {
        if (at[i] >= seconds / 3 && at[i] < 2 * seconds / 3) {
            mid[n_mid++] = v[i];
            if (v[i] > mid_max) mid_max = v[i];
        } else if (at[i] >= 2 * seconds / 3) {
            end[n_end++] = v[i];
            if (v[i] > end_max) end_max = v[i];
        }
    }
    long mid_med = median(mid, n_mid), end_med = median(end, n_end);
    long slack = mid_med * pct / 100 > min_mb * 1024 ? mid_med * pct / 100 : min_mb * 1024;
    printf("%s: middle third median %.1f MB (max %.1f), last third median %.1f MB (max %.1f), growth %+.1f MB "
           "(allowed %.1f MB)%s\n",
           what, mid_med / 1024.0, mid_max / 1024.0, end_med / 1024.0, end_max / 1024.0,
           (end_med - mid_med) / 1024.0, slack / 1024.0, check ? "" : " [check off]");
    if (check && n_mid > 0 && n_end > 0 && end_med - mid_med > slack) {
        *rc = 1;
        return 0;
    }
    return 1;
}

static void print_status_totals(void) {
    printf("sessions %ld, generations %ld, tokens %ld, text calls %ld\n", atomic_load(&n_sessions),
           atomic_load(&n_generations), atomic_load(&n_tokens), atomic_load(&n_text_calls));
    printf("hot swaps %ld (stale pooled adapter refused %ld), own adapter loads %ld, pool replacements %ld\n",
           atomic_load(&n_swaps), atomic_load(&n_stale_adapter), atomic_load(&n_own_loads),
           atomic_load(&n_pool_swaps));
    printf("cross-thread cancels %ld (stale %ld); stops: cancelled %ld, callback %ld, max_tokens %ld, eog %ld, "
           "other %ld\n",
           atomic_load(&n_cancel_calls), atomic_load(&n_cancel_stale), atomic_load(&n_stop_cancelled),
           atomic_load(&n_stop_callback), atomic_load(&n_stop_max), atomic_load(&n_stop_eog),
           atomic_load(&n_stop_other));
    printf("busy: cross-thread %ld (unserved %ld), re-entrant %ld\n", atomic_load(&n_busy_cross),
           atomic_load(&n_busy_unserved), atomic_load(&n_busy_reentrant));
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL ADAPTER_A ADAPTER_B [SECONDS=30] [THREADS=8]\n", argv[0]);
        return 2;
    }
    adapter_paths[0] = argv[2];
    adapter_paths[1] = argv[3];
    double seconds = argc > 4 ? atof(argv[4]) : 30.0;
    n_threads = argc > 5 ? atoi(argv[5]) : 8;
    if (n_threads < 2 || n_threads > MAX_THREADS || !(seconds > 0)) {
        fprintf(stderr, "soak: need 2..%d threads and a positive duration\n", MAX_THREADS);
        return 2;
    }
    const char *check_env = getenv("SOAK_RSS_CHECK");
    int rss_check = check_env == NULL || strcmp(check_env, "0") != 0;
    setvbuf(stdout, NULL, _IOLBF, 0);

    graft_model_params mp = graft_model_params_default();
    mp.threads = 2; /* one pool worker: concurrent sessions contend for it */
    graft_status st = graft_model_open(argv[1], &mp, &model);
    if (st != GRAFT_OK) {
        fprintf(stderr, "soak: graft_model_open: %s: %s\n", graft_status_name(st), graft_last_error());
        return 1;
    }
    for (int i = 0; i < POOL; i++) {
        graft_adapter *a = NULL;
        st = graft_adapter_load(model, adapter_paths[i % 2], &a);
        if (st != GRAFT_OK) {
            fprintf(stderr, "soak: graft_adapter_load: %s: %s\n", graft_status_name(st), graft_last_error());
            return 1;
        }
        atomic_store(&pool[i], a);
    }

    printf("soak: %d threads, %.0f s\n", n_threads, seconds);
    pthread_t th[MAX_THREADS];
    double t0 = now_s();
    for (int t = 0; t < n_threads; t++) {
        if (pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t) != 0) {
            fprintf(stderr, "soak: pthread_create failed\n");
            return 1;
        }
    }
    /* Sample RSS every `interval` seconds. */
    double interval = seconds / 20;
    interval = interval < 1 ? 1 : interval > 5 ? 5 : interval;
    enum { MAX_SAMPLES = 100000 };
    static double at[MAX_SAMPLES];
    static long vm[MAX_SAMPLES], heap[MAX_SAMPLES];
    int n_samples = 0;
    for (double next = t0 + interval;;) {
        double now = now_s();
        if (next > t0 + seconds) next = t0 + seconds;
        if (next > now) sleep_us((long)((next - now) * 1e6));
        /* Park every worker (a generation is a few tokens; give them 30 s on a loaded machine). */
        atomic_store(&pause_req, 1);
        double deadline = now_s() + 30;
        while (atomic_load(&parked) < n_threads && now_s() < deadline) sleep_us(500);
        int quiet = atomic_load(&parked) == n_threads;
        long v, anon;
        rss_kb(&v, &anon);
        long h = heap_in_use_kb();
        atomic_store(&pause_req, 0);
        /* The next sample an interval after the workers were let go, not after the last one
         * was due: parking can take longer than an interval on a loaded machine. */
        next = now_s() + interval;
        if (!quiet) {
            printf("FAIL: the workers did not all park within 30 s for a memory sample\n");
            atomic_fetch_add(&n_failures, 1);
        }
        double el = now_s() - t0;
        if (n_samples < MAX_SAMPLES) {
            at[n_samples] = el;
            heap[n_samples] = h;
            vm[n_samples++] = v;
        }
        printf("rss t=%6.1fs VmRSS %7.1f MB RssAnon %7.1f MB heap in use %7.1f MB generations %ld failures %ld\n",
               el, v / 1024.0, anon / 1024.0, h / 1024.0, atomic_load(&n_generations), atomic_load(&n_failures));
        if (el >= seconds) break;
    }
    atomic_store(&stop, 1);
    for (int t = 0; t < n_threads; t++) pthread_join(th[t], NULL);
    for (int i = 0; i < POOL; i++) {
        st = graft_adapter_free(atomic_exchange(&pool[i], NULL));
        expect(-1, "graft_adapter_free (pool, at exit)", st, MASK(GRAFT_OK));
    }
    expect(-1, "graft_model_close", graft_model_close(model), MASK(GRAFT_OK));
    printf("ran %.1f s\n", now_s() - t0);
    print_status_totals();

    int rc = 0;
    long failures = atomic_load(&n_failures);
    if (failures) {
        printf("FAIL: %ld unexpected statuses\n", failures);
        rc = 1;
    }
    if (seconds >= 10) {
        /* Each kind of traffic must have happened, or the soak proved less than it claims. */
        struct {
            const char *what;
            long n;
        } need[] = {
            {"generations", atomic_load(&n_generations)},
            {"hot swaps", atomic_load(&n_swaps)},
            {"pool replacements", atomic_load(&n_pool_swaps)},
            {"cross-thread cancels", atomic_load(&n_cancel_calls)},
            {"generations cancelled", atomic_load(&n_stop_cancelled)},
            {"generations stopped by a flag from another thread", atomic_load(&n_stop_callback)},
            {"cross-thread busy checks", atomic_load(&n_busy_cross)},
            {"re-entrant busy checks", atomic_load(&n_busy_reentrant)},
        };
        for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
            if (need[i].n == 0) {
                printf("FAIL: no %s happened\n", need[i].what);
                rc = 1;
            }
        }
    }
    /* The median of the last third against that of the middle third (the first third is
     * warm-up): a leak moves the median, one odd sample does not. */
    if (HAVE_MALLINFO2) {
        if (!flat(&rc, rss_check, "heap in use", at, heap, n_samples, seconds, 4, 5)) {
            printf("FAIL: the heap in use grew after warm-up\n");
        }
        if (!flat(&rc, rss_check, "VmRSS", at, vm, n_samples, seconds, 20, 25)) {
            printf("FAIL: RSS grew after warm-up\n");
        }
    } else if (!flat(&rc, rss_check, "VmRSS", at, vm, n_samples, seconds, 20, 10)) {
        printf("FAIL: RSS grew after warm-up\n");
    }
    printf(rc == 0 ? "soak: OK\n" : "soak: FAILED\n");
    return rc;
}
