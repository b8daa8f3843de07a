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

#endif /* MDY_BLOCKING_H */
