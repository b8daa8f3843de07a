/* Softmax cross-entropy of one sample.
 * loss = logsumexp(logits) - logits[label], computed shifted by the maximum;
 * dlogits = scale * (softmax(logits) - onehot(label)). dlogits may alias
 * logits: the loss is taken before anything is written; NULL: the loss only. A label outside
 * [0, n) (the runtime rejects it first) reads nothing out of bounds: no one-hot
 * term is subtracted and the loss returned is 0. exp and log are mdy_expf and
 * mdy_logf (mdy_math_f32.h), not the C library's: the same bits on every target. */
#include "medyate.h"
#include "mdy_math_f32.h"

float mdy_softmax_xent_f32(int32_t n, const float *logits, int32_t label,
                           float scale, float *dlogits)
{
    float mx, sum = 0.0f, lse, loss, inv;
    int32_t i;
    const int valid = label >= 0 && label < n;
    if (n <= 0)
        return 0.0f;
    mx = logits[0];
    for (i = 1; i < n; ++i)
        if (logits[i] > mx)
            mx = logits[i];
    for (i = 0; i < n; ++i)
        sum += mdy_expf(logits[i] - mx);
    lse = mx + mdy_logf(sum);
    loss = valid ? lse - logits[label] : 0.0f;
    if (!dlogits)
        return loss;
    inv = 1.0f / sum;
    for (i = 0; i < n; ++i)
        dlogits[i] = scale * (mdy_expf(logits[i] - mx) * inv);
    if (valid)
        dlogits[label] -= scale;
    return loss;
}
