/*
 * generate: greedy chat generation from C, the same text as
 *   graft run -m MODEL --chat -p PROMPT --temp 0 -n N_PREDICT -t THREADS
 *
 * usage: generate MODEL PROMPT [N_PREDICT=32] [THREADS=1]
 * Prints the generated text to stdout (streamed), then a newline.
 */
#include <stdio.h>
#include <stdlib.h>

#include "graft.h"

static bool on_piece(const char *piece, size_t len, void *user_data) {
    (void)user_data;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return true; /* false would stop generation */
}

static int fail(const char *what, graft_status st) {
    fprintf(stderr, "generate: %s failed: %s: %s\n", what, graft_status_name(st), graft_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL PROMPT [N_PREDICT] [THREADS]\n", argv[0]);
        return 2;
    }
    int n_predict = argc > 3 ? atoi(argv[3]) : 32;
    int threads = argc > 4 ? atoi(argv[4]) : 1;

    graft_model_params mp = graft_model_params_default();
    mp.threads = (uint32_t)threads;
    graft_model *model = NULL;
    graft_status st = graft_model_open(argv[1], &mp, &model);
    if (st != GRAFT_OK) return fail("graft_model_open", st);

    graft_session_params sp = graft_session_params_default();
    sp.temperature = 0.0f; /* greedy */
    sp.n_ctx = 512;
    graft_session *session = NULL;
    st = graft_session_create(model, &sp, &session);
    if (st != GRAFT_OK) {
        graft_model_close(model);
        return fail("graft_session_create", st);
    }

    /* Format the prompt as a user turn with the model's chat template (size query first). */
    graft_chat_message msg = {"user", argv[2]};
    size_t len = 0;
    st = graft_chat_apply(model, &msg, 1, true, false, NULL, 0, &len);
    char *prompt = st == GRAFT_ERR_BUFFER_TOO_SMALL ? malloc(len + 1) : NULL;
    if (prompt == NULL || graft_chat_apply(model, &msg, 1, true, false, prompt, len + 1, &len) != GRAFT_OK) {
        free(prompt);
        graft_session_free(session);
        graft_model_close(model);
        fprintf(stderr, "generate: chat template failed: %s\n", graft_last_error());
        return 1;
    }

    graft_generate_params gp = graft_generate_params_default();
    gp.max_tokens = n_predict;
    graft_generation g;
    st = graft_generate(session, prompt, &gp, on_piece, NULL, &g);
    free(prompt);
    int rc = 0;
    if (st != GRAFT_OK) {
        rc = fail("graft_generate", st);
    } else {
        printf("\n");
        fprintf(stderr, "prompt %u tokens, generated %u, stop reason %d, %.1f tok/s\n", g.n_prompt_tokens,
                g.n_generated, (int)g.stop_reason, g.decode_tok_s);
    }
    graft_session_free(session);
    graft_model_close(model);
    return rc;
}
