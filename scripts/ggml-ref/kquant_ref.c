// Tiny harness around ggml's reference quantizers (src/ggml-quants.c), used only by
// scripts/gen-golden-blocks.py when GGML_SRC points at a ggml checkout.
// Usage: kquant_ref TYPE < floats.f32 > blocks.bin   (TYPE: q2_k q3_k q4_k q5_k q6_k q8_k q8_1)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void quantize_row_q2_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q3_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q4_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q5_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q6_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q8_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q8_1_ref(const float *x, void *y, int64_t k);

// Stubs for the few ggml.c symbols ggml-quants.c references (never reached by the _ref paths).
void ggml_abort(const char *file, int line, const char *fmt, ...) {
    fprintf(stderr, "ggml_abort %s:%d %s\n", file, line, fmt);
    abort();
}
size_t ggml_row_size(int type, int64_t ne) { (void)type; (void)ne; abort(); }
const char *ggml_type_name(int type) { (void)type; return "?"; }
size_t ggml_type_size(int type) { (void)type; abort(); }

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    static float x[1 << 20];
    size_t n = fread(x, 4, 1 << 20, stdin);
    struct { const char *name; void (*f)(const float *, void *, int64_t); int qk, size; } t[] = {
        {"q2_k", quantize_row_q2_K_ref, 256, 84},  {"q3_k", quantize_row_q3_K_ref, 256, 110},
        {"q4_k", quantize_row_q4_K_ref, 256, 144}, {"q5_k", quantize_row_q5_K_ref, 256, 176},
        {"q6_k", quantize_row_q6_K_ref, 256, 210}, {"q8_k", quantize_row_q8_K_ref, 256, 292},
        {"q8_1", quantize_row_q8_1_ref, 32, 36},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (strcmp(argv[1], t[i].name) != 0) continue;
        if (n % t[i].qk) return 3;
        size_t bytes = n / t[i].qk * t[i].size;
        void *y = calloc(bytes, 1);
        t[i].f(x, y, (int64_t)n);
        fwrite(y, 1, bytes, stdout);
        return 0;
    }
    return 4;
}
