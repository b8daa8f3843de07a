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

#endif /* MDY_BLOCKING_H */
