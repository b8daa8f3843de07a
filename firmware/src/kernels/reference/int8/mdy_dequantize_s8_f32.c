/* Dequantize at the model's output boundary: y = (x - zero) * scale (ONNX
 * DequantizeLinear; the difference is exact in fp32, one rounding in the product). */
#include "medyate.h"

void mdy_dequantize_s8_f32(int32_t n, const int8_t *x, float scale, int32_t zero, float *y)
{
    int32_t i;
    for (i = 0; i < n; ++i)
        y[i] = (float)((int32_t)x[i] - zero) * scale;
}
