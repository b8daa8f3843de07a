/*
 * Retry cache: the host repeats a request (same seq, same CRC) when its answer
 * was lost. The device answers the repeat from the answer buffer without
 * running it again, so a retried RUN_EPOCH does not train twice and a retried
 * SAMPLE_CHUNK is never applied twice (docs/PROTOCOL.md, section 2). Only the
 * last request is kept: the host has one request outstanding at a time.
 */
#include "mdy_device.h"

int mdy_retry_hit(const mdy_retry *r, uint16_t seq, uint32_t crc)
{
    return r->valid && r->seq == seq && r->crc == crc;
}

void mdy_retry_forget(mdy_retry *r) { r->valid = 0; }

void mdy_retry_keep(mdy_retry *r, uint16_t seq, uint32_t crc, uint8_t type, uint16_t len)
{
    r->seq = seq;
    r->crc = crc;
    r->type = type;
    r->len = len;
    r->valid = 1;
}
