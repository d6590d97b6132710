/*
 * Compiled per-frame pixel sums of the edge's feature passes (vmafdistill.features._pixstats).
 *
 * The same integer sums as the numpy pass in frame_numpy.py (_frame_pass, _histogram,
 * temporal_features, edge.pipeline.cut_histograms), computed in one pass over each frame
 * instead of a dozen numpy passes with temporaries. Every sum except the Sobel magnitudes is an
 * exact integer, so both implementations give identical values; the Sobel magnitudes are summed
 * in float64 in another order than numpy's pairwise sum (measured up to ~2e-15 relative; the
 * torch twin's contract is 1e-12). The GIL is released while a frame is processed, so the
 * decode thread runs meanwhile.
 *
 * Inputs are 2-D buffers of uint8 ('B') or uint16 ('H') code values with unit element stride
 * along rows (any row stride). Plain C99 and the CPython buffer API: no numpy headers, so the
 * module builds without numpy installed. Optional: the package falls back to numpy without it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

#if defined(_MSC_VER)
#define restrict __restrict
#endif

/* The format string without a byte-order prefix that means this machine's order; NULL for a
 * foreign one ('>' or '!' here, '<' on a big-endian machine). */
static const char *native_format(const char *f) {
    const uint16_t one = 1;
    const int little = *(const uint8_t *)&one == 1;
    if (f[0] == '=' || f[0] == '@') return f + 1;
    if (f[0] == '<') return little ? f + 1 : NULL;
    if (f[0] == '>' || f[0] == '!') return little ? NULL : f + 1;
    return f;
}

typedef struct {
    const char *base;
    Py_ssize_t h, w, row_stride;
    int wide; /* 0: uint8, 1: uint16 */
} plane;

/* Fill *p from a held Py_buffer; 0 on success, -1 with a Python exception set. */
static int as_plane(Py_buffer *v, const char *name, plane *p) {
    if (v->ndim != 2) {
        PyErr_Format(PyExc_ValueError, "%s must be a 2-D plane, got %d dimensions", name,
                     v->ndim);
        return -1;
    }
    const char *f = native_format(v->format ? v->format : "B");
    if (f && strcmp(f, "B") == 0 && v->itemsize == 1) {
        p->wide = 0;
    } else if (f && strcmp(f, "H") == 0 && v->itemsize == 2) {
        p->wide = 1;
    } else {
        PyErr_Format(PyExc_TypeError, "%s must hold uint8 or uint16 code values, got format %s",
                     name, v->format ? v->format : "B");
        return -1;
    }
    /* Rows are read as base + i * row_stride: any row stride works (negative for a flipped
     * view, 0 for a broadcast one); the samples within a row must be contiguous. */
    if (v->strides[1] != v->itemsize) {
        PyErr_Format(PyExc_ValueError, "%s rows must be contiguous", name);
        return -1;
    }
    p->base = (const char *)v->buf;
    p->h = v->shape[0];
    p->w = v->shape[1];
    p->row_stride = v->strides[0];
    return 0;
}

static int get_plane(PyObject *obj, const char *name, Py_buffer *v, plane *p) {
    if (PyObject_GetBuffer(obj, v, PyBUF_RECORDS_RO) < 0) return -1;
    if (as_plane(v, name, p) < 0) {
        PyBuffer_Release(v);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Histograms                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* Counts of every code value of rows/columns 0, step, 2 step, ... into hist (nbins int64).
 * Returns the largest sample seen when it is >= nbins (an error for the caller), else -1. */
/* Rows between two flushes of 32-bit sub-histogram counters: a row adds at most
 * ceil(n / 4) + 3 to one counter (n samples per row read), so no counter can wrap. */
static Py_ssize_t flush_rows(Py_ssize_t n) {
    Py_ssize_t per_row = n / 4 + 4;
    Py_ssize_t rows = (Py_ssize_t)(UINT32_MAX / (uint64_t)per_row);
    return rows < 1 ? 1 : rows > 4096 ? 4096 : rows;
}

/* A step beyond the plane reads only sample (0, 0) whatever its size; capped so that index
 * arithmetic such as j + 3 * step cannot overflow. */
static Py_ssize_t cap_step(const plane *p, Py_ssize_t step) {
    Py_ssize_t most = p->h > p->w ? p->h : p->w;
    if (most < 1) most = 1;
    return step > most ? most : step;
}

static long histogram(const plane *p, Py_ssize_t step, int64_t *hist, Py_ssize_t nbins) {
    memset(hist, 0, (size_t)nbins * sizeof(int64_t));
    step = cap_step(p, step);
    const Py_ssize_t flush = flush_rows((p->w + step - 1) / step);
    if (!p->wide) { /* nbins >= 256: every uint8 sample has a bin */
        /* Four interleaved sub-histograms: runs of equal values do not stall on one counter.
         * The 32-bit counters are flushed often enough that none can wrap (flush_rows). */
        uint32_t sub[4][256];
        memset(sub, 0, sizeof(sub));
        Py_ssize_t rows = 0;
        for (Py_ssize_t i = 0; i < p->h; i += step) {
            const uint8_t *r = (const uint8_t *)(p->base + i * p->row_stride);
            Py_ssize_t j = 0;
            for (; j + 3 * step < p->w; j += 4 * step) {
                sub[0][r[j]]++;
                sub[1][r[j + step]]++;
                sub[2][r[j + 2 * step]]++;
                sub[3][r[j + 3 * step]]++;
            }
            for (; j < p->w; j += step) sub[0][r[j]]++;
            if (++rows % flush == 0 || i + step >= p->h) {
                for (int c = 0; c < 256; c++)
                    hist[c] += (int64_t)sub[0][c] + sub[1][c] + sub[2][c] + sub[3][c];
                memset(sub, 0, sizeof(sub));
            }
        }
        return -1;
    }
    /* 16-bit samples: the largest sample first (a branch-free pass), so the counting loop
     * needs no range check; then four interleaved 32-bit sub-histograms, as above, when they
     * fit in 64 KB (up to 12 bits), else one. */
    long top = 0;
    for (Py_ssize_t i = 0; i < p->h; i += step) {
        const uint16_t *r = (const uint16_t *)(p->base + i * p->row_stride);
        uint16_t m = 0;
        for (Py_ssize_t j = 0; j < p->w; j += step) m = r[j] > m ? r[j] : m;
        if (m > top) top = m;
    }
    if (top >= nbins) return top;
    uint32_t *sub = nbins <= 4096 ? PyMem_RawCalloc(4 * (size_t)nbins, sizeof(uint32_t)) : NULL;
    if (!sub) { /* wide histograms (or no memory): one int64 counter per code */
        for (Py_ssize_t i = 0; i < p->h; i += step) {
            const uint16_t *r = (const uint16_t *)(p->base + i * p->row_stride);
            for (Py_ssize_t j = 0; j < p->w; j += step) hist[r[j]]++;
        }
        return -1;
    }
    uint32_t *s0 = sub, *s1 = sub + nbins, *s2 = sub + 2 * nbins, *s3 = sub + 3 * nbins;
    Py_ssize_t rows = 0;
    for (Py_ssize_t i = 0; i < p->h; i += step) {
        const uint16_t *r = (const uint16_t *)(p->base + i * p->row_stride);
        Py_ssize_t j = 0;
        for (; j + 3 * step < p->w; j += 4 * step) {
            s0[r[j]]++;
            s1[r[j + step]]++;
            s2[r[j + 2 * step]]++;
            s3[r[j + 3 * step]]++;
        }
        for (; j < p->w; j += step) s0[r[j]]++;
        if (++rows % flush == 0 || i + step >= p->h) {
            for (Py_ssize_t c = 0; c < nbins; c++)
                hist[c] += (int64_t)s0[c] + s1[c] + s2[c] + s3[c];
            memset(sub, 0, 4 * (size_t)nbins * sizeof(uint32_t));
        }
    }
    PyMem_RawFree(sub);
    return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* The full per-frame pass                                                                   */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    double sobel;
    int64_t sobel_sq, edges, lap_sum, lap_sq, blk_boundary, blk_all, td_abs, td_sq;
} frame_sums;

/* The row kernels below are plain loops that the compiler vectorizes. On x86-64 GCC and
 * Clang also build an AVX2 copy of each, picked at load time on CPUs that have it (the
 * portable baseline is SSE2, which has no 32-bit multiply); the results are the same integers
 * either way, and the same float64 roots summed in the same order. The copies need glibc's
 * ifunc (not musl, macOS or Windows: there the baseline copy alone is built). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && defined(__GLIBC__)
#define KERNEL static NOINLINE __attribute__((target_clones("avx2", "default")))
#else
#define KERNEL static NOINLINE
#endif

/* Σ sqrt(m[j]) over a row in float64 with eight partial sums (a single running sum is one long
 * dependency chain; eight can run side by side in SIMD registers). */
#define DEFINE_ROOT_SUM(NAME, ACC)                                                             \
    KERNEL double NAME(const ACC *m, Py_ssize_t n) {                                           \
        double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                              \
        Py_ssize_t j = 0;                                                                      \
        for (; j + 8 <= n; j += 8)                                                             \
            for (int k = 0; k < 8; k++) acc[k] += sqrt((double)m[j + k]);                      \
        double s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) +                                   \
                   ((acc[4] + acc[5]) + (acc[6] + acc[7]));                                    \
        for (; j < n; j++) s += sqrt((double)m[j]);                                            \
        return s;                                                                              \
    }

/* Rows are walked in blocks of BLK samples whose partial sums fit the narrow accumulator S
 * (int32 for 8-bit samples: a block of 1024 squared Laplacians is <= 1024 * 1020**2 < 2**31);
 * each block's sums are added to int64 totals. D holds a difference or a Sobel/Laplacian
 * response (int16 for 8-bit samples: |g| <= 4 * 255), M a squared magnitude. */

/* Sobel squared magnitudes (into m) and 4-neighbour Laplacians of the n = W-2 interior pixels
 * of the row r1 (r0 above, r2 below); adds their sums to s[0..3] = Σm, #{m > thr}, ΣL, ΣL². */
#define DEFINE_SOBEL_ROW(NAME, T, D, M, S, BLK)                                                \
    KERNEL void NAME(const T *restrict r0, const T *restrict r1, const T *restrict r2,         \
                     Py_ssize_t n, M thr, M *restrict m, int64_t *restrict s) {                \
        for (Py_ssize_t j0 = 0; j0 < n; j0 += (BLK)) {                                           \
            const Py_ssize_t j1 = j0 + (BLK) < n ? j0 + (BLK) : n;                                 \
            S sq = 0, edges = 0, lsum = 0, lsq = 0;                                            \
            for (Py_ssize_t j = j0; j < j1; j++) { /* pixel j + 1 */                           \
                D gx = (D)((D)(r0[j + 2] - r0[j]) + 2 * (D)(r1[j + 2] - r1[j]) +               \
                           (D)(r2[j + 2] - r2[j]));                                            \
                D gy = (D)((D)(r2[j] - r0[j]) + 2 * (D)(r2[j + 1] - r0[j + 1]) +               \
                           (D)(r2[j + 2] - r0[j + 2]));                                        \
                M mj = (M)gx * gx + (M)gy * gy;                                                \
                m[j] = mj;                                                                     \
                sq += (S)mj;                                                                   \
                edges += mj > thr;                                                             \
                D lap = (D)((D)(r0[j + 1] + r2[j + 1]) + (D)(r1[j] + r1[j + 2]) -              \
                            4 * (D)r1[j + 1]);                                                 \
                lsum += lap;                                                                   \
                lsq += (S)((M)lap * lap);                                                      \
            }                                                                                  \
            s[0] += sq;                                                                        \
            s[1] += edges;                                                                     \
            s[2] += lsum;                                                                      \
            s[3] += lsq;                                                                       \
        }                                                                                      \
    }

/* Σ|a[j] - b[j]| over n samples (horizontal steps: b = a + 1; vertical: the next row). */
#define DEFINE_ABS_DIFF_ROW(NAME, T, D, S, BLK)                                                \
    KERNEL int64_t NAME(const T *restrict a, const T *restrict b, Py_ssize_t n) {              \
        int64_t total = 0;                                                                     \
        for (Py_ssize_t j0 = 0; j0 < n; j0 += (BLK)) {                                           \
            const Py_ssize_t j1 = j0 + (BLK) < n ? j0 + (BLK) : n;                                 \
            S s = 0;                                                                           \
            for (Py_ssize_t j = j0; j < j1; j++) {                                             \
                D d = (D)((D)a[j] - (D)b[j]);                                                  \
                s += d < 0 ? -d : d;                                                           \
            }                                                                                  \
            total += s;                                                                        \
        }                                                                                      \
        return total;                                                                          \
    }

/* Σ|a - b| and Σ(a - b)² over n samples (the frame-pair sums). */
#define DEFINE_DIFF_ROW(NAME, T, D, M, S, BLK)                                                 \
    KERNEL void NAME(const T *restrict a, const T *restrict b, Py_ssize_t n,                   \
                     int64_t *restrict out) {                                                  \
        for (Py_ssize_t j0 = 0; j0 < n; j0 += (BLK)) {                                           \
            const Py_ssize_t j1 = j0 + (BLK) < n ? j0 + (BLK) : n;                                 \
            S sa = 0, sq = 0;                                                                  \
            for (Py_ssize_t j = j0; j < j1; j++) {                                             \
                D d = (D)((D)a[j] - (D)b[j]);                                                  \
                sa += d < 0 ? -d : d;                                                          \
                sq += (S)((M)d * d);                                                           \
            }                                                                                  \
            out[0] += sa;                                                                      \
            out[1] += sq;                                                                      \
        }                                                                                      \
    }

/* The whole pass over one frame, one template per sample type. ACC holds a squared Sobel
 * magnitude (<= 32 maxv**2): int32 for 8-bit samples, int64 for 16-bit ones. ``mbuf`` holds
 * one row of squared magnitudes. */
#define DEFINE_FRAME_PASS(NAME, T, D, ACC, S, BLK, TD_D, TD_M, TD_S, SFX)                     \
    DEFINE_ROOT_SUM(root_sum_##SFX, ACC)                                                       \
    DEFINE_SOBEL_ROW(sobel_row_##SFX, T, D, ACC, S, BLK)                                       \
    DEFINE_ABS_DIFF_ROW(abs_diff_row_##SFX, T, D, S, BLK)                                      \
    DEFINE_DIFF_ROW(diff_row_##SFX, T, TD_D, TD_M, TD_S, BLK)                                  \
    static void NAME(const plane *p, const plane *prev, int64_t thr_sq, Py_ssize_t bs,         \
                     ACC *mbuf, frame_sums *o) {                                               \
        const Py_ssize_t h = p->h, w = p->w;                                                   \
        /* a threshold at or above every possible magnitude counts no edge */                  \
        const int64_t top = (int64_t)32 * 65535 * 65535;                                       \
        /* a negative threshold counts every pixel, as numpy's comparison does */              \
        if (thr_sq < 0) thr_sq = -1;                                                           \
        const int no_edges = thr_sq >= top || (sizeof(ACC) == 4 && thr_sq >= INT32_MAX);       \
        const ACC thr = no_edges ? 0 : (ACC)thr_sq;                                            \
        double sobel = 0.0;                                                                    \
        int64_t s[4] = {0, 0, 0, 0}, td[2] = {0, 0}, b_sum = 0, all_sum = 0;                   \
        for (Py_ssize_t i = 1; i + 1 < h; i++) {                                               \
            const T *r0 = (const T *)(p->base + (i - 1) * p->row_stride);                      \
            sobel_row_##SFX(r0, (const T *)(p->base + i * p->row_stride),                      \
                            (const T *)(p->base + (i + 1) * p->row_stride), w - 2, thr, mbuf,  \
                            s);                                                                \
            sobel += root_sum_##SFX(mbuf, w - 2);                                              \
        }                                                                                      \
        for (Py_ssize_t i = 0; i < h; i++) {                                                   \
            const T *r = (const T *)(p->base + i * p->row_stride);                             \
            all_sum += abs_diff_row_##SFX(r + 1, r, w - 1);                                    \
            for (Py_ssize_t j = bs - 1; j + 1 < w; j += bs) {                                  \
                ACC d = (ACC)r[j + 1] - r[j];                                                  \
                b_sum += d < 0 ? -d : d;                                                       \
            }                                                                                  \
            if (i + 1 < h) {                                                                   \
                int64_t v = abs_diff_row_##SFX((const T *)(p->base + (i + 1) * p->row_stride), \
                                               r, w);                                          \
                all_sum += v;                                                                  \
                if (i % bs == bs - 1) b_sum += v;                                              \
            }                                                                                  \
            if (prev)                                                                          \
                diff_row_##SFX(r, (const T *)(prev->base + i * prev->row_stride), w, td);      \
        }                                                                                      \
        o->sobel = sobel;                                                                      \
        o->sobel_sq = s[0];                                                                    \
        o->edges = no_edges ? 0 : s[1];                                                        \
        o->lap_sum = s[2];                                                                     \
        o->lap_sq = s[3];                                                                      \
        o->blk_boundary = b_sum;                                                               \
        o->blk_all = all_sum;                                                                  \
        o->td_abs = td[0];                                                                     \
        o->td_sq = td[1];                                                                      \
    }

/* 8-bit samples: int16 responses, int32 squares and block sums. Up to 12 bits (checked by the
 * histogram before the pass): int16 responses (|g| <= 4 * 4095), int32 squared magnitudes
 * (<= 32 * 4095**2), int64 sums. Above: int64 throughout. The frame-pair differences take
 * ``prev`` as given (its range is the caller's check): int32 for 16-bit samples. */
DEFINE_FRAME_PASS(frame_pass_u8, uint8_t, int16_t, int32_t, int32_t, 1024,
                  int16_t, int32_t, int32_t, u8)
DEFINE_FRAME_PASS(frame_pass_u12, uint16_t, int16_t, int32_t, int64_t, 1048576,
                  int32_t, int64_t, int64_t, u12)
DEFINE_FRAME_PASS(frame_pass_u16, uint16_t, int64_t, int64_t, int64_t, 1048576,
                  int64_t, int64_t, int64_t, u16)

/* Writable, C-contiguous int64 buffer of exactly n entries (the histogram output). */
static int get_hist_out(PyObject *obj, Py_ssize_t n, Py_buffer *v) {
    if (PyObject_GetBuffer(obj, v, PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    const char *f = native_format(v->format ? v->format : "B");
    int ok = f && v->itemsize == 8 && (strcmp(f, "q") == 0 || strcmp(f, "l") == 0) &&
             v->len == n * 8;
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "hist must be a contiguous int64 buffer of %zd entries", n);
        PyBuffer_Release(v);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(frame_sums_doc,
"frame_sums(frame, prev, bit_depth, thr_sq, block_size, hist) -> tuple\n\n"
"Integer sums of one (H, W) uint8/uint16 plane (H, W >= 3), as frame_numpy._frame_pass:\n"
"(sobel_sum, sobel_sq, edges, lap_sum, lap_sq, blk_boundary, blk_inner, td_abs, td_sq).\n"
"prev: the previous plane or None (then td_* are 0). hist: int64 buffer of 2**bit_depth\n"
"entries, filled with the frame's code-value counts. ValueError if a sample is >= 2**bit_depth.");

static PyObject *py_frame_sums(PyObject *self, PyObject *args) {
    PyObject *fobj, *pobj, *hobj;
    int bit_depth;
    long long thr_sq;
    Py_ssize_t bs;
    if (!PyArg_ParseTuple(args, "OOiLnO", &fobj, &pobj, &bit_depth, &thr_sq, &bs, &hobj))
        return NULL;
    if (bit_depth < 8 || bit_depth > 16) {
        PyErr_Format(PyExc_ValueError, "bit_depth must be in 8..16, got %d", bit_depth);
        return NULL;
    }
    if (bs < 2) {
        PyErr_SetString(PyExc_ValueError, "block_size must be >= 2");
        return NULL;
    }
    Py_buffer fv, pv, hv;
    plane f, pr;
    int have_prev = pobj != Py_None;
    if (get_plane(fobj, "frame", &fv, &f) < 0) return NULL;
    if (have_prev && get_plane(pobj, "prev", &pv, &pr) < 0) {
        PyBuffer_Release(&fv);
        return NULL;
    }
    Py_ssize_t nbins = (Py_ssize_t)1 << bit_depth;
    PyObject *result = NULL;
    if (get_hist_out(hobj, nbins, &hv) < 0) goto done;
    if (f.h < 3 || f.w < 3) {
        PyErr_Format(PyExc_ValueError, "frames must be at least 3x3, got %zdx%zd", f.h, f.w);
        goto done_h;
    }
    if (have_prev && (pr.h != f.h || pr.w != f.w || pr.wide != f.wide)) {
        PyErr_SetString(PyExc_ValueError, "prev must have the frame's shape and dtype");
        goto done_h;
    }
    frame_sums o;
    long worst;
    void *mbuf = PyMem_RawMalloc((size_t)f.w * sizeof(int64_t));
    if (!mbuf) {
        PyErr_NoMemory();
        goto done_h;
    }
    Py_BEGIN_ALLOW_THREADS
    worst = histogram(&f, 1, (int64_t *)hv.buf, nbins);
    if (worst < 0) {
        if (f.wide && bit_depth <= 12)
            frame_pass_u12(&f, have_prev ? &pr : NULL, (int64_t)thr_sq, bs, mbuf, &o);
        else if (f.wide)
            frame_pass_u16(&f, have_prev ? &pr : NULL, (int64_t)thr_sq, bs, mbuf, &o);
        else
            frame_pass_u8(&f, have_prev ? &pr : NULL, (int64_t)thr_sq, bs, mbuf, &o);
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(mbuf);
    if (worst >= 0) {
        PyErr_Format(PyExc_ValueError, "sample value %ld exceeds the %zd maximum", worst,
                     nbins - 1);
        goto done_h;
    }
    result = Py_BuildValue("dLLLLLLLL", o.sobel, (long long)o.sobel_sq, (long long)o.edges,
                           (long long)o.lap_sum, (long long)o.lap_sq,
                           (long long)o.blk_boundary, (long long)(o.blk_all - o.blk_boundary),
                           (long long)o.td_abs, (long long)o.td_sq);
done_h:
    PyBuffer_Release(&hv);
done:
    if (have_prev) PyBuffer_Release(&pv);
    PyBuffer_Release(&fv);
    return result;
}

PyDoc_STRVAR(histogram_doc,
"histogram(frame, step, bit_depth, hist) -> None\n\n"
"Code-value counts of frame[::step, ::step] (uint8/uint16, 2-D) into hist (int64, 2**bit_depth\n"
"entries). ValueError if a sample is >= 2**bit_depth.");

static PyObject *py_histogram(PyObject *self, PyObject *args) {
    PyObject *fobj, *hobj;
    Py_ssize_t step;
    int bit_depth;
    if (!PyArg_ParseTuple(args, "OniO", &fobj, &step, &bit_depth, &hobj)) return NULL;
    if (step < 1 || bit_depth < 8 || bit_depth > 16) {
        PyErr_SetString(PyExc_ValueError, "need step >= 1 and bit_depth in 8..16");
        return NULL;
    }
    Py_buffer fv, hv;
    plane f;
    if (get_plane(fobj, "frame", &fv, &f) < 0) return NULL;
    Py_ssize_t nbins = (Py_ssize_t)1 << bit_depth;
    if (get_hist_out(hobj, nbins, &hv) < 0) {
        PyBuffer_Release(&fv);
        return NULL;
    }
    long worst;
    Py_BEGIN_ALLOW_THREADS
    worst = histogram(&f, step, (int64_t *)hv.buf, nbins);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&hv);
    PyBuffer_Release(&fv);
    if (worst >= 0) {
        PyErr_Format(PyExc_ValueError, "sample value %ld exceeds %zd (bit depth %d)", worst,
                     nbins - 1, bit_depth);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Σd, Σd², Σ|d| of d = a - b over rows and columns 0, step, ...: per row in S (int32 for
 * 8-bit samples while a row's sums fit: checked by the caller through ``row_ok``), added up
 * in int64. */
#define DEFINE_DIFF_SUMS(NAME, T, D, S)                                                        \
    KERNEL void NAME(const plane *a, const plane *b, Py_ssize_t step, int64_t *s1,             \
                     int64_t *s2, int64_t *sabs) {                                             \
        int64_t t1 = 0, t2 = 0, ta = 0;                                                        \
        for (Py_ssize_t i = 0; i < a->h; i += step) {                                          \
            const T *r = (const T *)(a->base + i * a->row_stride);                             \
            const T *q = (const T *)(b->base + i * b->row_stride);                             \
            S r1 = 0, r2 = 0, ra = 0;                                                          \
            for (Py_ssize_t j = 0; j < a->w; j += step) {                                      \
                D d = (D)((D)r[j] - (D)q[j]);                                                  \
                r1 += d;                                                                       \
                r2 += (S)d * d;                                                                \
                ra += d < 0 ? -d : d;                                                          \
            }                                                                                  \
            t1 += r1;                                                                          \
            t2 += r2;                                                                          \
            ta += ra;                                                                          \
        }                                                                                      \
        *s1 = t1;                                                                              \
        *s2 = t2;                                                                              \
        *sabs = ta;                                                                            \
    }

DEFINE_DIFF_SUMS(diff_sums_u8_narrow, uint8_t, int16_t, int32_t)
DEFINE_DIFF_SUMS(diff_sums_u8, uint8_t, int32_t, int64_t)
DEFINE_DIFF_SUMS(diff_sums_u16, uint16_t, int64_t, int64_t)

PyDoc_STRVAR(diff_sums_doc,
"diff_sums(frame, prev, step) -> (sum, sum_sq, sum_abs)\n\n"
"Exact sums of d, d**2 and |d| for d = frame - prev over rows and columns 0, step, ... of two\n"
"equal-shape uint8/uint16 planes (the temporal features' frame-pair sums).");

static PyObject *py_diff_sums(PyObject *self, PyObject *args) {
    PyObject *fobj, *pobj;
    Py_ssize_t step;
    if (!PyArg_ParseTuple(args, "OOn", &fobj, &pobj, &step)) return NULL;
    if (step < 1) {
        PyErr_SetString(PyExc_ValueError, "step must be >= 1");
        return NULL;
    }
    Py_buffer fv, pv;
    plane f, pr;
    if (get_plane(fobj, "frame", &fv, &f) < 0) return NULL;
    if (get_plane(pobj, "prev", &pv, &pr) < 0) {
        PyBuffer_Release(&fv);
        return NULL;
    }
    PyObject *result = NULL;
    step = cap_step(&f, step);
    if (pr.h != f.h || pr.w != f.w || pr.wide != f.wide) {
        PyErr_SetString(PyExc_ValueError, "prev must have the frame's shape and dtype");
    } else {
        int64_t s1, s2, sa;
        Py_BEGIN_ALLOW_THREADS
        /* a row of n 8-bit differences sums to <= n * 255**2 in int32 below 33000 samples */
        if (f.wide)
            diff_sums_u16(&f, &pr, step, &s1, &s2, &sa);
        else if ((f.w + step - 1) / step < 33000)
            diff_sums_u8_narrow(&f, &pr, step, &s1, &s2, &sa);
        else
            diff_sums_u8(&f, &pr, step, &s1, &s2, &sa);
        Py_END_ALLOW_THREADS
        result = Py_BuildValue("LLL", (long long)s1, (long long)s2, (long long)sa);
    }
    PyBuffer_Release(&pv);
    PyBuffer_Release(&fv);
    return result;
}

static PyMethodDef methods[] = {
    {"frame_sums", py_frame_sums, METH_VARARGS, frame_sums_doc},
    {"histogram", py_histogram, METH_VARARGS, histogram_doc},
    {"diff_sums", py_diff_sums, METH_VARARGS, diff_sums_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_pixstats",
    "Compiled per-frame pixel sums of the edge's feature passes (see frame_numpy.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__pixstats(void) { return PyModule_Create(&module); }
