/*
 * leak_handle: opens the model, creates a session over it, loads an adapter, and then, unless
 * the last argument is "free", loses all three handles without freeing them. Built with
 * -fsanitize=address, LeakSanitizer must report the lost handles (tests/sanitizers.rs): graft
 * keeps no plain pointer to a live handle that would make a leaked one look reachable.
 *
 * usage: leak_handle MODEL ADAPTER [free]
 */
#include <stdio.h>
#include <string.h>

#include "graft.h"

static int open_all(const char *path, const char *adapter_path, int free_them) {
    graft_model_params mp = graft_model_params_default();
    mp.threads = 1;
    graft_model *m = NULL;
    graft_session *s = NULL;
    graft_adapter *a = NULL;
    graft_session_params sp = graft_session_params_default();
    sp.n_ctx = 64;
    if (graft_model_open(path, &mp, &m) != GRAFT_OK || graft_session_create(m, &sp, &s) != GRAFT_OK ||
        graft_adapter_load(m, adapter_path, &a) != GRAFT_OK) {
        fprintf(stderr, "leak_handle: %s\n", graft_last_error());
        return 1;
    }
    if (free_them) {
        graft_adapter_free(a);
        graft_session_free(s);
        graft_model_close(m);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL ADAPTER [free]\n", argv[0]);
        return 2;
    }
    int rc = open_all(argv[1], argv[2], argc > 3 && strcmp(argv[3], "free") == 0);
    printf("leak_handle: done\n");
    return rc;
}
