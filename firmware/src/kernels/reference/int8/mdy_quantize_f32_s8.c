/* Quantize at the model's input boundary: y = clamp(rint(x / scale) + zero),
 * as ONNX QuantizeLinear computes it (fp32 division, round half to even in the
 * default rounding mode), so the engine and onnxruntime agree bit for bit. */
#include <math.h>

#include "medyate.h"

void mdy_quantize_f32_s8(int32_t n, const float *x, float scale, int32_t zero, int8_t *y)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        float v = rintf(x[i] / scale) + (float)zero;
        /* written so that NaN saturates low instead of an undefined conversion */
        v = !(v >= -128.0f) ? -128.0f : v > 127.0f ? 127.0f : v;
        y[i] = (int8_t)v;
    }
}
