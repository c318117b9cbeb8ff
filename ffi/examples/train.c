/*
 * train: fine-tune a LoRA adapter from C with a progress callback, then chat with it.
 *
 * usage: train MODEL DATA.jsonl OUT.gguf [MAX_STEPS=4] [CANCEL_AT_STEP=0] [TEST.jsonl]
 *
 * Tiny settings (rank 4, seq 64, batch 2 x 2) so it runs in seconds; with the environment
 * variable GRAFT_TRAIN_TINY set, smaller still (rank 2, batch 1 x 1: for memory checkers,
 * which run ~50x slower). The callback prints
 * "step S/T loss L" lines and returns false at CANCEL_AT_STEP (0: never): graft_train then
 * returns GRAFT_ERR_CANCELLED and writes no adapter. Otherwise the adapter is loaded and the
 * program prints the greedy answer (as `graft run --chat --temp 0 -n 16 --lora OUT.gguf`)
 * to "What is the capital of France?" on a line starting with "answer: ". With TEST.jsonl it
 * also evaluates base and adapter on its first 2 examples ("eval base|adapter: loss ...").
 */
#include <stdio.h>
#include <stdlib.h>

#include "graft.h"

typedef struct {
    uint64_t cancel_at;
    uint64_t last_step;
} progress_state;

static bool on_progress(const graft_train_progress *p, void *user_data) {
    progress_state *st = user_data;
    st->last_step = p->step;
    printf("step %llu/%llu loss %.4f\n", (unsigned long long)p->step, (unsigned long long)p->total_steps, p->loss);
    fflush(stdout);
    return st->cancel_at == 0 || p->step < st->cancel_at;
}

static bool print_piece(const char *piece, size_t len, void *user_data) {
    (void)user_data;
    fwrite(piece, 1, len, stdout);
    return true;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL DATA OUT [MAX_STEPS] [CANCEL_AT_STEP] [TEST]\n", argv[0]);
        return 2;
    }
    int rc = 1;
    graft_model *model = NULL;
    graft_session *session = NULL;
    graft_adapter *adapter = NULL;
    char *prompt = NULL;

    graft_model_params mp = graft_model_params_default();
    mp.threads = 1;
    if (graft_model_open(argv[1], &mp, &model) != GRAFT_OK) goto done;

    graft_train_params tp = graft_train_params_default();
    tp.rank = 4;
    tp.alpha = 8.0f;
    tp.dropout = 0.1f;
    tp.lr = 1e-3f;
    tp.epochs = 1;
    tp.batch = 2;
    tp.grad_accum = 2;
    tp.seq = 64;
    tp.warmup = 1.0;
    tp.threads = 1;
    if (getenv("GRAFT_TRAIN_TINY") != NULL) {
        tp.rank = 2;
        tp.alpha = 4.0f;
        tp.batch = 1;
        tp.grad_accum = 1;
        tp.seq = 64;
    }
    tp.max_steps = argc > 4 ? (uint64_t)atoi(argv[4]) : 4;
    progress_state st = {argc > 5 ? (uint64_t)atoi(argv[5]) : 0, 0};
    graft_train_result res;
    graft_status s = graft_train(model, argv[2], NULL, argv[3], &tp, on_progress, &st, &res);
    if (s == GRAFT_ERR_CANCELLED) {
        printf("cancelled after step %llu: %s\n", (unsigned long long)st.last_step, graft_last_error());
        rc = 0;
        goto done;
    }
    if (s != GRAFT_OK) goto done;
    printf("trained %llu steps, final loss %.4f, %.0f tok/s\n", (unsigned long long)res.steps, res.final_loss,
           res.tokens_per_sec);

    /* Chat with the new adapter. */
    if (graft_adapter_load(model, argv[3], &adapter) != GRAFT_OK) goto done;
    graft_session_params sp = graft_session_params_default();
    sp.temperature = 0.0f;
    sp.n_ctx = 512;
    if (graft_session_create(model, &sp, &session) != GRAFT_OK) goto done;
    const graft_adapter *active[1] = {adapter};
    float scale[1] = {1.0f};
    if (graft_session_set_adapters(session, active, scale, 1) != GRAFT_OK) goto done;
    graft_chat_message msg = {"user", "What is the capital of France?"};
    size_t len = 0;
    if (graft_chat_apply(model, &msg, 1, true, false, NULL, 0, &len) != GRAFT_ERR_BUFFER_TOO_SMALL) goto done;
    prompt = malloc(len + 1);
    if (prompt == NULL || graft_chat_apply(model, &msg, 1, true, false, prompt, len + 1, &len) != GRAFT_OK) goto done;
    graft_generate_params gp = graft_generate_params_default();
    gp.max_tokens = 16;
    printf("answer: ");
    if (graft_generate(session, prompt, &gp, print_piece, NULL, NULL) != GRAFT_OK) goto done;
    printf("\n");

    if (argc > 6) {
        graft_eval_params ep = graft_eval_params_default();
        ep.limit = 2;
        ep.extra_tokens = 4;
        ep.n_ctx = 512;
        graft_eval_result base, tuned;
        if (graft_eval(model, argv[6], NULL, NULL, 0, &ep, NULL, NULL, &base) != GRAFT_OK) goto done;
        if (graft_eval(model, argv[6], active, scale, 1, &ep, NULL, NULL, &tuned) != GRAFT_OK) goto done;
        printf("eval base: loss %.4f ppl %.3f over %llu tokens\n", base.loss, base.ppl,
               (unsigned long long)base.scored_tokens);
        printf("eval adapter: loss %.4f ppl %.3f over %llu tokens\n", tuned.loss, tuned.ppl,
               (unsigned long long)tuned.scored_tokens);
    }
    rc = 0;

done:
    if (rc != 0) fprintf(stderr, "train: %s\n", graft_last_error());
    free(prompt);
    graft_session_free(session);
    graft_adapter_free(adapter);
    graft_model_close(model);
    return rc;
}
