/*
 * Answers: ERROR payloads, the answer type of the request being executed,
 * and the frames sent outside the request/answer pair (PROGRESS, NAK and
 * version errors), which use the small buffer so that the answer buffer keeps
 * the cached answer (mdy_retry.c).
 */
#include "mdy_request.h"

uint16_t mdy_error_payload(uint8_t *p, int code, uint8_t request, const char *text)
{
    uint16_t n = 0;
    mdy_wr16(p + MDY_ERROR_CODE, (uint16_t)(int16_t)code);
    p[MDY_ERROR_REQUEST] = request;
    p[MDY_ERROR_PAD] = 0;
    while (text && text[n] && n < MDY_PROTO_ERROR_TEXT_MAX) {
        p[MDY_ERROR_SIZE + n] = (uint8_t)text[n];
        n++;
    }
    return (uint16_t)(MDY_ERROR_SIZE + n);
}

uint16_t mdy_answer(mdy_device *d, uint8_t type, uint16_t len)
{
    d->answer_type = type;
    return len;
}

uint16_t mdy_ok(mdy_device *d) { return mdy_answer(d, MDY_MSG_OK, MDY_OK_SIZE); }

uint16_t mdy_fail(mdy_device *d, int code, const char *text)
{
    return mdy_answer(d, MDY_MSG_ERROR,
                      mdy_error_payload(mdy_answer_payload(d), code, d->req_type, text));
}

void mdy_send_error(mdy_device *d, uint16_t seq, int code, uint8_t request, const char *text)
{
    mdy_frame_send(d->aux.b, MDY_MSG_ERROR, seq,
                   mdy_error_payload(d->aux.b + MDY_PROTO_HEADER_SIZE, code, request, text));
}

void mdy_send_progress(mdy_device *d, uint32_t done, uint32_t total, float loss_sum,
                       uint32_t correct)
{
    uint8_t *p = d->aux.b + MDY_PROTO_HEADER_SIZE;
    memset(p, 0, MDY_PROGRESS_SIZE);
    p[MDY_PROGRESS_REQUEST] = d->req_type;
    mdy_wr32(p + MDY_PROGRESS_DONE, done);
    mdy_wr32(p + MDY_PROGRESS_TOTAL, total);
    mdy_wr_f32(p + MDY_PROGRESS_LOSS_SUM, loss_sum);
    mdy_wr32(p + MDY_PROGRESS_CORRECT, correct);
    mdy_frame_send(d->aux.b, MDY_MSG_PROGRESS, d->req_seq, MDY_PROGRESS_SIZE);
}
