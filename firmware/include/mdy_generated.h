/*
 * mdy_generated.h: what the code generator emits for one planned model, as the
 * device main loop (firmware/src/device/) sees it. The definitions come from
 * the generated model source (codegen) or, in tests, from a hand-written one.
 */
#ifndef MDY_GENERATED_H
#define MDY_GENERATED_H

#include "medyate.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The planned model: ops, tensors, trainable layers, arena plan. */
extern const mdy_model mdy_generated_model;
/* The arena, mdy_generated_model.arena_size bytes, aligned to at least 8. */
extern uint8_t mdy_generated_arena[];
/* A short model name for the device info message (NUL-terminated). */
extern const char mdy_generated_name[];

#ifdef __cplusplus
}
#endif
#endif /* MDY_GENERATED_H */
