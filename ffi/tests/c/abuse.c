/*
 * abuse: calls every graft function with NULL, invalid and wrong-typed arguments and checks
 * that each returns the documented error code (and a message) instead of crashing.
 *
 * usage: abuse MODEL ADAPTER DATA.jsonl
 * Exit 0 when every check passed; prints each failed check.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graft.h"

static int failures = 0, checks = 0;

static void expect(const char *what, graft_status got, graft_status want) {
    checks++;
    const char *msg = graft_last_error();
    if (got != want) {
        failures++;
        printf("FAIL %s: got %s, want %s (%s)\n", what, graft_status_name(got), graft_status_name(want), msg);
    } else if (want != GRAFT_OK && (msg == NULL || msg[0] == '\0')) {
        failures++;
        printf("FAIL %s: %s without a message\n", what, graft_status_name(got));
    }
}

#define EXPECT(call, want) expect(#call, (call), (want))

static bool stop_now(const char *p, size_t n, void *u) {
    (void)p;
    (void)n;
    (*(int *)u)++;
    return false;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL ADAPTER DATA.jsonl\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    int32_t toks[64];
    char buf[256];
    size_t n = 0;
    uint32_t u = 0;
    int32_t i32 = 0;
    void *garbage = (void *)(uintptr_t)0x1234;

    /* Static strings. */
    checks++;
    if (graft_version() == NULL || strlen(graft_version()) == 0) failures++, printf("FAIL graft_version\n");
    checks++;
    if (strcmp(graft_status_name(-7), "unknown status") != 0 || strcmp(graft_status_name(0), "GRAFT_OK") != 0)
        failures++, printf("FAIL graft_status_name\n");
    checks++;
    if (graft_last_error() == NULL) failures++, printf("FAIL graft_last_error NULL\n");

    /* Model open. */
    graft_model *model = (graft_model *)garbage;
    graft_model_params mp = graft_model_params_default();
    EXPECT(graft_model_open(NULL, &mp, &model), GRAFT_ERR_NULL_ARG);
    checks++;
    if (model != NULL) failures++, printf("FAIL graft_model_open did not clear *out on error\n");
    EXPECT(graft_model_open(path, &mp, NULL), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_model_open("/nonexistent/model.gguf", NULL, &model), GRAFT_ERR_IO);
    EXPECT(graft_model_open("/etc/hostname", NULL, &model), GRAFT_ERR_MODEL);
    EXPECT(graft_model_open("\xff\xfe", NULL, &model), GRAFT_ERR_INVALID_UTF8);
    mp.threads = 0;
    EXPECT(graft_model_open(path, &mp, &model), GRAFT_ERR_INVALID_ARG);
    mp.threads = 100000;
    EXPECT(graft_model_open(path, &mp, &model), GRAFT_ERR_INVALID_ARG);
    mp.threads = 1;
    EXPECT(graft_model_open(path, &mp, &model), GRAFT_OK);
    if (model == NULL) {
        printf("FAIL: cannot open %s: %s\n", path, graft_last_error());
        return 1;
    }
    EXPECT(graft_model_info(NULL, &i32, &i32), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_model_info((graft_model *)garbage, &i32, NULL), GRAFT_ERR_INVALID_HANDLE);
    EXPECT(graft_model_info(model, NULL, NULL), GRAFT_OK);

    /* Devices. */
    graft_device_properties dev;
    memset(&dev, 0, sizeof dev);
    int32_t n_dev = graft_device_count();
    checks++;
    if (n_dev < 1) failures++, printf("FAIL graft_device_count = %d\n", n_dev);
    EXPECT(graft_device_info(0, &dev), GRAFT_OK);
    checks++;
    if (strcmp(dev.id, "cpu") != 0 || strcmp(dev.device_type, "cpu") != 0)
        failures++, printf("FAIL graft_device_info(0): id %s, type %s\n", dev.id, dev.device_type);
    EXPECT(graft_device_info(n_dev, &dev), GRAFT_ERR_INVALID_ARG);
    EXPECT(graft_device_info(-1, &dev), GRAFT_ERR_INVALID_ARG);
    EXPECT(graft_device_info(0, NULL), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_model_device(NULL, buf, sizeof buf, &n), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_model_device((graft_model *)garbage, buf, sizeof buf, &n), GRAFT_ERR_INVALID_HANDLE);
    EXPECT(graft_model_device(model, buf, sizeof buf, NULL), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_model_device(model, NULL, 0, &n), GRAFT_ERR_BUFFER_TOO_SMALL);
    EXPECT(graft_model_device(model, buf, sizeof buf, &n), GRAFT_OK);
    checks++;
    if (strncmp(buf, "cpu", 3) != 0 || strlen(buf) != n) failures++, printf("FAIL graft_model_device: %s\n", buf);
    graft_model *no_model = (graft_model *)garbage;
    graft_model_params dp = graft_model_params_default();
    dp.threads = 1;
    dp.device_index = 0; /* only with GRAFT_DEVICE_GPU */
    EXPECT(graft_model_open(path, &dp, &no_model), GRAFT_ERR_INVALID_ARG);
    dp.device = 99;
    dp.device_index = -1;
    EXPECT(graft_model_open(path, &dp, &no_model), GRAFT_ERR_INVALID_ARG);

    /* Sessions. */
    graft_session *s = NULL;
    graft_session_params sp = graft_session_params_default();
    EXPECT(graft_session_create(NULL, &sp, &s), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_session_create(model, &sp, NULL), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_session_create((graft_model *)garbage, &sp, &s), GRAFT_ERR_INVALID_HANDLE);
    sp.n_batch = 0;
    EXPECT(graft_session_create(model, &sp, &s), GRAFT_ERR_INVALID_ARG);
    sp = graft_session_params_default();
    sp.n_ctx = 0xFFFFFFFFu;
    EXPECT(graft_session_create(model, &sp, &s), GRAFT_ERR_INVALID_ARG);
    sp = graft_session_params_default();
    sp.temperature = NAN;
    EXPECT(graft_session_create(model, &sp, &s), GRAFT_ERR_INVALID_ARG);
    sp = graft_session_params_default();
    sp.top_p = 1.5f;
    EXPECT(graft_session_create(model, &sp, &s), GRAFT_ERR_INVALID_ARG);
    sp = graft_session_params_default();
    sp.min_p = -0.1f;
    EXPECT(graft_session_create(model, &sp, &s), GRAFT_ERR_INVALID_ARG);
    sp = graft_session_params_default();
    sp.repeat_penalty = 0.0f;
    EXPECT(graft_session_create(model, &sp, &s), GRAFT_ERR_INVALID_ARG);
    sp = graft_session_params_default();
    sp.repeat_last_n = -1;
    EXPECT(graft_session_create(model, &sp, &s), GRAFT_ERR_INVALID_ARG);
    sp = graft_session_params_default();
    sp.n_ctx = 64;
    sp.temperature = 0.0f;
    EXPECT(graft_session_create(model, &sp, &s), GRAFT_OK);

    /* Wrong handle types: a model where a session is expected and the reverse. */
    EXPECT(graft_session_reset((graft_session *)model), GRAFT_ERR_INVALID_HANDLE);
    EXPECT(graft_session_cancel((graft_session *)model), GRAFT_ERR_INVALID_HANDLE);
    EXPECT(graft_session_info((graft_session *)model, &u, &u), GRAFT_ERR_INVALID_HANDLE);
    EXPECT(graft_tokenize((graft_model *)s, "hi", true, true, toks, 64, &n), GRAFT_ERR_INVALID_HANDLE);
    EXPECT(graft_model_close((graft_model *)s), GRAFT_ERR_INVALID_HANDLE);
    EXPECT(graft_session_free((graft_session *)model), GRAFT_ERR_INVALID_HANDLE);
    EXPECT(graft_session_reset(NULL), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_session_cancel(NULL), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_session_info(NULL, &u, &u), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_session_info(s, NULL, NULL), GRAFT_OK);

    /* Tokenize / detokenize. */
    EXPECT(graft_tokenize(NULL, "hi", true, true, toks, 64, &n), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_tokenize(model, NULL, true, true, toks, 64, &n), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_tokenize(model, "hi", true, true, toks, 64, NULL), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_tokenize(model, "caf\xc3", true, true, toks, 64, &n), GRAFT_ERR_INVALID_UTF8);
    EXPECT(graft_tokenize(model, "hello world", true, true, NULL, 0, &n), GRAFT_ERR_BUFFER_TOO_SMALL);
    checks++;
    if (n != 2) failures++, printf("FAIL size query gave %zu tokens, want 2\n", n);
    EXPECT(graft_tokenize(model, "hello world", true, true, toks, 1, &n), GRAFT_ERR_BUFFER_TOO_SMALL);
    EXPECT(graft_tokenize(model, "hello world", true, true, NULL, 5, &n), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_tokenize(model, "hello world", true, true, toks, 64, &n), GRAFT_OK);
    int32_t bad[2] = {-1, 1 << 30};
    EXPECT(graft_detokenize(NULL, toks, 2, false, buf, sizeof buf, &n), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_detokenize(model, NULL, 2, false, buf, sizeof buf, &n), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_detokenize(model, toks, 2, false, buf, sizeof buf, NULL), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_detokenize(model, bad, 1, false, buf, sizeof buf, &n), GRAFT_ERR_INVALID_ARG);
    EXPECT(graft_detokenize(model, bad + 1, 1, false, buf, sizeof buf, &n), GRAFT_ERR_INVALID_ARG);
    EXPECT(graft_detokenize(model, toks, 2, false, buf, 3, &n), GRAFT_ERR_BUFFER_TOO_SMALL);
    EXPECT(graft_detokenize(model, toks, 2, false, NULL, 100, &n), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_detokenize(model, toks, 2, false, buf, sizeof buf, &n), GRAFT_OK);
    checks++;
    if (strcmp(buf, "hello world") != 0) failures++, printf("FAIL detokenize gave '%s'\n", buf);
    EXPECT(graft_detokenize(model, NULL, 0, false, buf, sizeof buf, &n), GRAFT_OK);

    /* Chat template. */
    graft_chat_message good = {"user", "hi"};
    graft_chat_message nullrole = {NULL, "hi"};
    graft_chat_message badutf = {"user", "\xc3\x28"};
    EXPECT(graft_chat_apply(NULL, &good, 1, true, false, buf, sizeof buf, &n), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_chat_apply(model, NULL, 1, true, false, buf, sizeof buf, &n), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_chat_apply(model, &nullrole, 1, true, false, buf, sizeof buf, &n), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_chat_apply(model, &badutf, 1, true, false, buf, sizeof buf, &n), GRAFT_ERR_INVALID_UTF8);
    EXPECT(graft_chat_apply(model, &good, 1, true, false, buf, sizeof buf, NULL), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_chat_apply(model, &good, 1, true, false, buf, 4, &n), GRAFT_ERR_BUFFER_TOO_SMALL);
    EXPECT(graft_chat_apply(model, &good, 1, true, true, buf, sizeof buf, &n), GRAFT_OK);

    /* Generate. */
    graft_generate_params gp = graft_generate_params_default();
    gp.max_tokens = 2;
    graft_generation g;
    const char *stops[2] = {"x", NULL};
    EXPECT(graft_generate(NULL, "hi", &gp, NULL, NULL, &g), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_generate((graft_session *)model, "hi", &gp, NULL, NULL, &g), GRAFT_ERR_INVALID_HANDLE);
    EXPECT(graft_generate(s, NULL, &gp, NULL, NULL, &g), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_generate(s, "\xff", &gp, NULL, NULL, &g), GRAFT_ERR_INVALID_UTF8);
    EXPECT(graft_generate(s, "", &gp, NULL, NULL, &g), GRAFT_ERR_INVALID_ARG);
    gp.stop = NULL;
    gp.n_stop = 1;
    EXPECT(graft_generate(s, "hi", &gp, NULL, NULL, &g), GRAFT_ERR_NULL_ARG);
    gp.stop = stops;
    gp.n_stop = 2;
    EXPECT(graft_generate(s, "hi", &gp, NULL, NULL, &g), GRAFT_ERR_NULL_ARG);
    gp.n_stop = 0;
    char longp[400];
    for (int i = 0; i < 399; i++) longp[i] = i % 2 ? ' ' : 'a';
    longp[399] = '\0';
    EXPECT(graft_generate(s, longp, &gp, NULL, NULL, &g), GRAFT_ERR_CONTEXT_FULL);
    EXPECT(graft_generate_tokens(s, NULL, 3, &gp, NULL, NULL, &g), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_generate_tokens(s, bad, 2, &gp, NULL, NULL, &g), GRAFT_ERR_INVALID_ARG);
    EXPECT(graft_generate_tokens(s, toks, 0, &gp, NULL, NULL, &g), GRAFT_ERR_INVALID_ARG);
    int calls = 0;
    EXPECT(graft_generate(s, "hi", &gp, stop_now, &calls, &g), GRAFT_OK);
    checks++;
    if (calls != 1 || g.stop_reason != GRAFT_STOP_CALLBACK) failures++, printf("FAIL stop from callback\n");
    EXPECT(graft_session_reset(s), GRAFT_OK);
    /* NULL params and out: defaults (128 tokens), here cut short by a 6-token context. */
    graft_session *tiny = NULL;
    sp.n_ctx = 6;
    EXPECT(graft_session_create(model, &sp, &tiny), GRAFT_OK);
    EXPECT(graft_generate(tiny, "hi", NULL, NULL, NULL, NULL), GRAFT_OK);
    EXPECT(graft_session_info(tiny, &u, NULL), GRAFT_OK);
    checks++;
    if (u != 6) failures++, printf("FAIL tiny session holds %u tokens, want 6\n", u);
    EXPECT(graft_session_free(tiny), GRAFT_OK);

    /* Adapters. */
    graft_adapter *a = (graft_adapter *)garbage;
    EXPECT(graft_adapter_load(NULL, argv[2], &a), GRAFT_ERR_NULL_ARG);
    checks++;
    if (a != NULL) failures++, printf("FAIL graft_adapter_load did not clear *out on error\n");
    EXPECT(graft_adapter_load(model, NULL, &a), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_adapter_load(model, argv[2], NULL), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_adapter_load(model, "/nonexistent.gguf", &a), GRAFT_ERR_IO);
    EXPECT(graft_adapter_load(model, path, &a), GRAFT_ERR_ADAPTER); /* a model is not an adapter */
    EXPECT(graft_adapter_load((graft_model *)s, argv[2], &a), GRAFT_ERR_INVALID_HANDLE);
    EXPECT(graft_adapter_load(model, argv[2], &a), GRAFT_OK);
    const graft_adapter *list[2] = {a, (const graft_adapter *)model};
    float scales[2] = {1.0f, NAN};
    EXPECT(graft_session_set_adapters(NULL, list, scales, 1), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_session_set_adapters(s, NULL, scales, 1), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_session_set_adapters(s, list, NULL, 1), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_session_set_adapters(s, list, scales, 2), GRAFT_ERR_INVALID_HANDLE);
    list[1] = a;
    EXPECT(graft_session_set_adapters(s, list, scales, 2), GRAFT_ERR_INVALID_ARG);
    EXPECT(graft_session_set_adapters(s, list, scales, 1), GRAFT_OK);
    EXPECT(graft_session_set_adapters(s, NULL, NULL, 0), GRAFT_OK);
    EXPECT(graft_session_set_adapters(s, list, scales, 1), GRAFT_OK);

    /* Training and evaluation: bad arguments are refused before any work. */
    graft_train_params tp = graft_train_params_default();
    graft_train_result tr;
    graft_eval_result er;
    const char *out = "/tmp/graft-abuse-never-written.gguf";
    EXPECT(graft_train(NULL, argv[3], NULL, out, &tp, NULL, NULL, &tr), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_train((graft_model *)s, argv[3], NULL, out, &tp, NULL, NULL, &tr), GRAFT_ERR_INVALID_HANDLE);
    EXPECT(graft_train(model, NULL, NULL, out, &tp, NULL, NULL, &tr), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_train(model, argv[3], NULL, NULL, &tp, NULL, NULL, &tr), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_train(model, "/nonexistent.jsonl", NULL, out, &tp, NULL, NULL, &tr), GRAFT_ERR_IO);
    EXPECT(graft_train(model, argv[3], "/nonexistent.jsonl", out, &tp, NULL, NULL, &tr), GRAFT_ERR_IO);
    EXPECT(graft_train(model, argv[3], "\xff", out, &tp, NULL, NULL, &tr), GRAFT_ERR_INVALID_UTF8);
    EXPECT(graft_train(model, path, NULL, out, &tp, NULL, NULL, &tr), GRAFT_ERR_TRAIN); /* not JSONL */
    tp.rank = 0;
    EXPECT(graft_train(model, argv[3], NULL, out, &tp, NULL, NULL, &tr), GRAFT_ERR_INVALID_ARG);
    tp = graft_train_params_default();
    tp.optimizer = 7;
    EXPECT(graft_train(model, argv[3], NULL, out, &tp, NULL, NULL, &tr), GRAFT_ERR_INVALID_ARG);
    tp = graft_train_params_default();
    tp.threads = 0;
    EXPECT(graft_train(model, argv[3], NULL, out, &tp, NULL, NULL, &tr), GRAFT_ERR_INVALID_ARG);
    tp = graft_train_params_default();
    tp.lr = NAN;
    EXPECT(graft_train(model, argv[3], NULL, out, &tp, NULL, NULL, &tr), GRAFT_ERR_INVALID_ARG);
    tp = graft_train_params_default();
    tp.targets = "q,nonsense";
    EXPECT(graft_train(model, argv[3], NULL, out, &tp, NULL, NULL, &tr), GRAFT_ERR_INVALID_ARG);
    tp.targets = "q,\xc3";
    EXPECT(graft_train(model, argv[3], NULL, out, &tp, NULL, NULL, &tr), GRAFT_ERR_INVALID_UTF8);
    graft_eval_params ep = graft_eval_params_default();
    EXPECT(graft_eval(NULL, argv[3], NULL, NULL, 0, &ep, NULL, NULL, &er), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_eval(model, NULL, NULL, NULL, 0, &ep, NULL, NULL, &er), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_eval(model, "/nonexistent.jsonl", NULL, NULL, 0, &ep, NULL, NULL, &er), GRAFT_ERR_IO);
    EXPECT(graft_eval(model, argv[3], NULL, NULL, 1, &ep, NULL, NULL, &er), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_eval(model, argv[3], list, NULL, 1, &ep, NULL, NULL, &er), GRAFT_ERR_NULL_ARG);
    EXPECT(graft_eval(model, argv[3], (const graft_adapter *const *)&s, scales, 1, &ep, NULL, NULL, &er),
           GRAFT_ERR_INVALID_HANDLE);
    ep.n_ctx = 1;
    EXPECT(graft_eval(model, argv[3], NULL, NULL, 0, &ep, NULL, NULL, &er), GRAFT_ERR_INVALID_ARG);
    checks++;
    FILE *f = fopen(out, "rb");
    if (f != NULL) fclose(f), failures++, printf("FAIL a refused training run wrote %s\n", out);

    /* Double frees and use after free are detected (the handle is no longer live). */
    EXPECT(graft_adapter_free(a), GRAFT_OK);
    EXPECT(graft_adapter_free(a), GRAFT_ERR_INVALID_HANDLE);
    EXPECT(graft_session_set_adapters(s, list, scales, 1), GRAFT_ERR_INVALID_HANDLE);
    EXPECT(graft_generate(s, "hi", &gp, NULL, NULL, &g), GRAFT_OK); /* still active in s */
    EXPECT(graft_adapter_free(NULL), GRAFT_OK);
    EXPECT(graft_adapter_free((graft_adapter *)garbage), GRAFT_ERR_INVALID_HANDLE);
    EXPECT(graft_model_close(model), GRAFT_OK);
    EXPECT(graft_model_close(model), GRAFT_ERR_INVALID_HANDLE);
    EXPECT(graft_tokenize(model, "hi", true, true, toks, 64, &n), GRAFT_ERR_INVALID_HANDLE);
    EXPECT(graft_generate(s, "hi", &gp, NULL, NULL, &g), GRAFT_OK); /* the session keeps its model */
    EXPECT(graft_session_free(s), GRAFT_OK);
    EXPECT(graft_session_free(s), GRAFT_ERR_INVALID_HANDLE);
    EXPECT(graft_session_free(NULL), GRAFT_OK);
    EXPECT(graft_model_close(NULL), GRAFT_OK);

    printf("abuse: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
