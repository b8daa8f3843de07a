/* What the register-blocked kernels of this folder share: the blocks are
 * written once with constant sizes and instantiated per size, which needs
 * them inlined and their small loops fully unrolled so that the accumulators
 * live in registers. GCC is told so; any other C99 compiler gets plain static
 * inline functions and the same (correct, slower) code. */
#ifndef MDY_BLOCKING_H
#define MDY_BLOCKING_H

#if defined(__GNUC__) && !defined(__clang__)
#define MDY_AI static inline __attribute__((always_inline))
#define MDY_NOINLINE __attribute__((noinline))
#define MDY_PRAGMA(x) _Pragma(#x)
#define MDY_UNROLL(n) MDY_PRAGMA(GCC unroll n)
#else
#define MDY_AI static inline
#define MDY_NOINLINE
#define MDY_UNROLL(n)
#endif

#include <stdint.h>

/* The outputs o in [0, out) with lo <= o*stride <= hi, as [*o0, *o1): the
 * output rows (or columns) that one tap reads inside the map, or that reach
 * one input row. */
static inline void mdy_stride_span(int32_t lo, int32_t hi, int32_t stride, int32_t out,
                                   int32_t *o0, int32_t *o1)
{
    int32_t a = lo <= 0 ? 0 : (lo + stride - 1) / stride;
    int32_t b = hi < 0 ? 0 : hi / stride + 1;
    if (b > out)
        b = out;
    if (a > b)
        a = b;
    *o0 = a;
    *o1 = b;
}

/* The depthwise input gradients' sliding window from input column iw of a
 * row (stride 1, a kernel 3 wide): n of its up to 6 positions, whose window
 * of output columns, starting at column iw + pad_left - 2, misses *lo
 * columns before the output row and *hi after it (0 or 1 each, the window's
 * compile-time variants). 0: position iw gathers alone (lo would be 2). */
MDY_AI int32_t mdy_slide3_window(int32_t iw, int32_t in_w, int32_t pad_left,
                               int32_t out_w, int32_t *lo, int32_t *hi)
{
    const int32_t base = iw + pad_left - 2;
    int32_t n = in_w - iw < 6 ? in_w - iw : 6;
    while (n > 0 && base + n + 2 - out_w > 1)
        --n;
    *lo = base < 0 ? -base : 0;
    *hi = base + n + 2 - out_w > 0;
    return *lo <= 1 ? n : 0;
}

/* The int8 depthwise gradients' sliding window for a kernel k = 5 or 7 wide
 * (stride 1): from position pos of a row of n_pos, n positions whose window
 * of k - 1 + n columns starts at column base of a row of n_cols, missing *lo
 * columns before that row and *hi after it. Inside the row up to 4; a
 * window that misses columns misses e = (k - 1) / 2 (a "same" padding's):
 * the row's first 4 positions missing e before (and e after too on a row of
 * exactly 4), or its last 4 or fewer missing e after. An interior run stops
 * where the last 4 positions begin, so a row of 8 or more needs windows of
 * 4 at its edges only; a narrower one (the 4- and 7-wide maps of MCUNet's
 * last stages) its last 1 to 3 positions too. 0: position pos goes alone. */
MDY_AI int32_t mdy_wide_window(int32_t k, int32_t pos, int32_t n_pos, int32_t base,
                               int32_t n_cols, int32_t *lo, int32_t *hi)
{
    const int32_t e = (k - 1) / 2;
    int32_t n = n_pos - pos < 4 ? n_pos - pos : 4;
    *lo = base < 0 ? -base : 0;
    *hi = base + n + k - 1 - n_cols > 0 ? base + n + k - 1 - n_cols : 0;
    if (*lo)
        return *lo == e && n == 4 && (!*hi || *hi == e) ? 4 : 0;
    if (*hi == e)
        return n; /* 4, or the row's last 1 to 3 */
    if (pos + 4 < n_pos && pos + 8 > n_pos)
        n = n_pos - 4 - pos; /* leave the last 4 positions to one window */
    *hi = base + n + k - 1 - n_cols > 0;
    return *hi ? 0 : n;
}

#endif /* MDY_BLOCKING_H */
