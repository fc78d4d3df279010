// Test-vector and speed harness for ggufs' ggml quantizers (src/quant/ggml/).
// Links the reference build's own libggml-base.a and calls ggml_quantize_chunk with no
// imatrix: the exact call llama-quantize makes. The input generator is mirrored in
// src/quant/ggml/testdata.rs; keep the two identical (see README.md).
//
//   harness gen   <type> <dist> <nrows> <n_per_row> <seed>   quantized bytes to stdout
//   harness input <dist> <nrows> <n_per_row> <seed>          f32 input (LE) to stdout
//   harness bench <type> <dist> <nrows> <n_per_row> <seed> <reps>
//                 prints "<elements per second, one thread>"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ggml.h"

static uint64_t state;

static uint64_t next_u64(void) {
    state += 0x9E3779B97F4A7C15ULL;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// [0, 1) with 24 random bits: exact in f32.
static float unit(void) { return (float)(next_u64() >> 40) * (1.0f / 16777216.0f); }
static float sym(void) { return unit() * 2.0f - 1.0f; }
// Irwin-Hall(4), scaled to sigma 0.02; every operation is one f32 rounding.
static float gauss(void) {
    float a = unit(), b = unit(), c = unit(), d = unit();
    return (((a + b) + (c + d)) - 2.0f) * 0.034641016f;
}
static float f16_round(float v) { return ggml_fp16_to_fp32(ggml_fp32_to_fp16(v)); }
static float grid(void) { return (float)((int)(unit() * 17.0f) - 8) * 0.25f; }

// One element of distribution `dist`; `sub` is the per-32-block choice of dist 9.
static float element(int dist, int64_t row, int64_t i, int sub) {
    switch (dist) {
    case 0: return gauss();
    case 1: return sym();
    case 2: return 0.0f;
    case 3: return (row % 2 == 0) ? 0.37f : -1.25f;
    case 4: return gauss() * ((row % 2 == 0) ? 1e-36f : 1e-41f);
    case 5: return (row % 2 == 0) ? gauss() * 1e6f : sym() * 60000.0f;
    case 6: {
        float g = gauss();
        return (i % 32 == (row * 7) % 32) ? ((i / 32) % 2 == 0 ? 1.5f : -2.0f) : g;
    }
    case 7: return f16_round(gauss() * 3.0f);
    case 8: return grid();
    case 9:
        switch (sub) {
        case 0: return gauss();
        case 1: return sym();
        case 2: return 0.0f;
        case 3: return 0.5f;
        case 4: return gauss() * 1e-36f;
        case 5: return f16_round(gauss() * 50.0f);
        case 6: { float g = gauss(); return g < 0.0f ? -g : g; }
        default: return grid();
        }
    case 10: {
        // Values llama-quantize would reject after quantizing, still worth matching.
        static const float special[6] = {NAN, INFINITY, -INFINITY, 3e38f, -3e38f, 1e-45f};
        uint64_t k = next_u64() % 16;
        return k < 6 ? special[k] : gauss();
    }
    }
    return 0.0f;
}

static float *make_input(int dist, int64_t nrows, int64_t n, uint64_t seed) {
    float *x = malloc(sizeof(float) * (size_t)(nrows * n));
    state = seed;
    int sub = 0;
    for (int64_t r = 0; r < nrows; r++) {
        for (int64_t i = 0; i < n; i++) {
            if (dist == 9 && i % 32 == 0) sub = (int)(next_u64() % 8);
            x[r * n + i] = element(dist, r, i, sub);
        }
    }
    return x;
}

static enum ggml_type parse_type(const char *s) {
    static const struct { const char *name; enum ggml_type ty; } types[] = {
        {"Q8_0", GGML_TYPE_Q8_0}, {"Q4_0", GGML_TYPE_Q4_0}, {"Q5_0", GGML_TYPE_Q5_0},
        {"Q5_1", GGML_TYPE_Q5_1}, {"Q4_K", GGML_TYPE_Q4_K}, {"Q5_K", GGML_TYPE_Q5_K},
        {"Q6_K", GGML_TYPE_Q6_K},
    };
    for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++)
        if (strcmp(s, types[k].name) == 0) return types[k].ty;
    fprintf(stderr, "unknown type %s\n", s);
    exit(2);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc >= 6 && strcmp(argv[1], "input") == 0) {
        int64_t nrows = atoll(argv[3]), n = atoll(argv[4]);
        float *x = make_input(atoi(argv[2]), nrows, n, strtoull(argv[5], NULL, 10));
        fwrite(x, sizeof(float), (size_t)(nrows * n), stdout);
        return 0;
    }
    int is_gen = argc >= 7 && strcmp(argv[1], "gen") == 0;
    int is_bench = argc >= 8 && strcmp(argv[1], "bench") == 0;
    if (!is_gen && !is_bench) {
        fprintf(stderr, "usage: see harness.c\n");
        return 2;
    }
    enum ggml_type ty = parse_type(argv[2]);
    int dist = atoi(argv[3]);
    int64_t nrows = atoll(argv[4]), n = atoll(argv[5]);
    float *x = make_input(dist, nrows, n, strtoull(argv[6], NULL, 10));
    size_t size = ggml_row_size(ty, n) * (size_t)nrows;
    void *out = malloc(size);
    if (is_gen) {
        ggml_quantize_chunk(ty, x, out, 0, nrows, n, NULL);
        fwrite(out, 1, size, stdout);
        return 0;
    }
    int reps = atoi(argv[7]);
    ggml_quantize_chunk(ty, x, out, 0, nrows, n, NULL); // warm-up
    double t0 = now();
    for (int r = 0; r < reps; r++) ggml_quantize_chunk(ty, x, out, 0, nrows, n, NULL);
    double dt = now() - t0;
    printf("%.0f\n", (double)reps * (double)(nrows * n) / dt);
    return 0;
}
