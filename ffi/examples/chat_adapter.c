/*
 * chat_adapter: one session, hot-swapping LoRA adapters between generations:
 * none -> A at SCALE -> B at SCALE -> A at SCALE/2 -> none. Each turn is greedy and equals
 *   graft run -m MODEL --chat -p PROMPT --temp 0 -n N_PREDICT -t 1 [--lora-scaled FILE SCALE]
 *
 * usage: chat_adapter MODEL ADAPTER_A ADAPTER_B PROMPT [N_PREDICT=16] [SCALE=1]
 * Prints one line per turn: "<label>\t<text>" (labels none, A, B, A/2, none).
 */
#include <stdio.h>
#include <stdlib.h>

#include "graft.h"

typedef struct {
    char *buf;
    size_t len, cap;
} text_buf;

static bool collect(const char *piece, size_t len, void *user_data) {
    text_buf *t = user_data;
    if (t->len + len + 1 > t->cap) {
        size_t cap = (t->len + len + 1) * 2;
        char *p = realloc(t->buf, cap);
        if (p == NULL) return false;
        t->buf = p;
        t->cap = cap;
    }
    for (size_t i = 0; i < len; i++) t->buf[t->len + i] = piece[i];
    t->len += len;
    t->buf[t->len] = '\0';
    return true;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL ADAPTER_A ADAPTER_B PROMPT [N_PREDICT] [SCALE]\n", argv[0]);
        return 2;
    }
    int n_predict = argc > 5 ? atoi(argv[5]) : 16;
    float scale = argc > 6 ? (float)atof(argv[6]) : 1.0f;
    int rc = 1;
    graft_model *model = NULL;
    graft_session *session = NULL;
    graft_adapter *a = NULL, *b = NULL;
    char *prompt = NULL;
    text_buf out = {NULL, 0, 0};

    graft_model_params mp = graft_model_params_default();
    mp.threads = 1;
    if (graft_model_open(argv[1], &mp, &model) != GRAFT_OK) goto done;
    graft_session_params sp = graft_session_params_default();
    sp.temperature = 0.0f;
    sp.n_ctx = 256;
    if (graft_session_create(model, &sp, &session) != GRAFT_OK) goto done;
    if (graft_adapter_load(model, argv[2], &a) != GRAFT_OK) goto done;
    if (graft_adapter_load(model, argv[3], &b) != GRAFT_OK) goto done;

    graft_chat_message msg = {"user", argv[4]};
    size_t len = 0;
    if (graft_chat_apply(model, &msg, 1, true, false, NULL, 0, &len) != GRAFT_ERR_BUFFER_TOO_SMALL) goto done;
    prompt = malloc(len + 1);
    if (prompt == NULL || graft_chat_apply(model, &msg, 1, true, false, prompt, len + 1, &len) != GRAFT_OK) goto done;

    struct {
        const char *label;
        const graft_adapter *adapter;
        float scale;
    } turns[] = {{"none", NULL, 0}, {"A", a, scale}, {"B", b, scale}, {"A/2", a, scale / 2}, {"none", NULL, 0}};
    graft_generate_params gp = graft_generate_params_default();
    gp.max_tokens = n_predict;
    for (size_t i = 0; i < sizeof turns / sizeof turns[0]; i++) {
        size_t n = turns[i].adapter != NULL ? 1 : 0;
        /* Hot swap: the session's cache restarts when the set changes; the model is not reloaded. */
        if (graft_session_set_adapters(session, &turns[i].adapter, &turns[i].scale, n) != GRAFT_OK) goto done;
        if (graft_session_reset(session) != GRAFT_OK) goto done;
        out.len = 0;
        if (out.buf != NULL) out.buf[0] = '\0';
        if (graft_generate(session, prompt, &gp, collect, &out, NULL) != GRAFT_OK) goto done;
        printf("%s\t%s\n", turns[i].label, out.buf != NULL ? out.buf : "");
    }
    rc = 0;

done:
    if (rc != 0) fprintf(stderr, "chat_adapter: %s\n", graft_last_error());
    free(prompt);
    free(out.buf);
    /* Any order works: handles keep what they need alive. */
    graft_adapter_free(a);
    graft_model_close(model);
    graft_adapter_free(b);
    graft_session_free(session);
    return rc;
}
