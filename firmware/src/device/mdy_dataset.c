/*
 * Dataset image reader (format: docs/PROTOCOL.md, writer:
 * host/medyate/protocol/dataset_image.py). The image is used in place; this
 * only checks that every part lies where the header says, so a stale or
 * foreign memory region is refused instead of trained on.
 */
#include "mdy_device.h"

#include <string.h>

static int part_ok(uint32_t off, uint64_t size, uint32_t total)
{
    return off >= MDY_DATASET_HEADER_SIZE && off % MDY_DATASET_ALIGN == 0 &&
           (uint64_t)off + size <= total;
}

int mdy_dataset_open(mdy_dataset *ds, const uint8_t *img, uint32_t avail)
{
    const uint8_t *h = img;
    uint32_t total, s, k;
    uint64_t sample;

    memset(ds, 0, sizeof(*ds));
    if (!img || avail < MDY_DATASET_HEADER_SIZE)
        return MDY_PERR_NO_DATASET;
    if (memcmp(h + MDY_DATASET_HEADER_MAGIC, MDY_DATASET_MAGIC, 4) != 0 ||
        mdy_rd16(h + MDY_DATASET_HEADER_VERSION) != MDY_DATASET_VERSION ||
        mdy_rd16(h + MDY_DATASET_HEADER_HEADER_SIZE) != MDY_DATASET_HEADER_SIZE)
        return MDY_PERR_NO_DATASET;
    if (mdy_crc32(0, h, MDY_DATASET_HEADER_HEADER_CRC) != mdy_rd32(h + MDY_DATASET_HEADER_HEADER_CRC))
        return MDY_PERR_NO_DATASET;
    if ((uintptr_t)img % 4u != 0)
        return MDY_PERR_NO_DATASET;  /* floats are read in place (parts are 16-aligned) */

    ds->n[0] = mdy_rd32(h + MDY_DATASET_HEADER_N_TRAIN);
    ds->n[1] = mdy_rd32(h + MDY_DATASET_HEADER_N_TEST);
    ds->h = mdy_rd16(h + MDY_DATASET_HEADER_H);
    ds->w = mdy_rd16(h + MDY_DATASET_HEADER_W);
    ds->c = mdy_rd16(h + MDY_DATASET_HEADER_C);
    ds->classes = mdy_rd16(h + MDY_DATASET_HEADER_CLASSES);
    total = mdy_rd32(h + MDY_DATASET_HEADER_TOTAL_SIZE);
    ds->dtype = h[MDY_DATASET_HEADER_DTYPE];
    ds->zero = (int16_t)mdy_rd16(h + MDY_DATASET_HEADER_ZERO);
    ds->scale = mdy_rd_f32(h + MDY_DATASET_HEADER_SCALE);
    if (ds->dtype != MDY_DATASET_F32 && ds->dtype != MDY_DATASET_S8)
        return MDY_PERR_NO_DATASET;
    sample = (uint64_t)ds->h * ds->w * ds->c * (ds->dtype == MDY_DATASET_S8 ? 1u : sizeof(float));
    if (ds->classes == 0 || ds->classes > 256)
        return MDY_PERR_NO_DATASET;
    /* What was loaded must hold the whole image, and be it: a short file
     * leaves the end of the region stale or zero, which the data CRC sees. */
    if (total < MDY_DATASET_HEADER_SIZE || total > avail ||
        mdy_crc32(0, img + MDY_DATASET_HEADER_SIZE, total - MDY_DATASET_HEADER_SIZE) !=
            mdy_rd32(h + MDY_DATASET_HEADER_DATA_CRC))
        return MDY_PERR_NO_DATASET;

    for (s = 0; s < 2; s++) {
        uint32_t xo = mdy_rd32(h + (s ? MDY_DATASET_HEADER_X_TEST : MDY_DATASET_HEADER_X_TRAIN));
        uint32_t yo = mdy_rd32(h + (s ? MDY_DATASET_HEADER_Y_TEST : MDY_DATASET_HEADER_Y_TRAIN));
        if (!part_ok(xo, sample * ds->n[s], total) || !part_ok(yo, ds->n[s], total))
            return MDY_PERR_NO_DATASET;
        ds->x[s] = img + xo;
        ds->y[s] = img + yo;
        for (k = 0; k < ds->n[s]; k++)
            if (ds->y[s][k] >= ds->classes)
                return MDY_PERR_NO_DATASET;
    }
    return 0;
}
