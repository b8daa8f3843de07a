/*
 * Request dispatcher: validates every field of every request, runs it on the
 * engine and answers (docs/PROTOCOL.md).
 *
 * RAM (static): the receive and answer frame buffers (2 x 2060 bytes, shared
 * with the epoch permutation, see `io`), a 64-byte buffer for PROGRESS and NAK
 * frames, one streamed sample (the model's input, h*w*c floats, see
 * `sample`), the engine context and a few words of state. Nothing else: a
 * selection is staged in the arena (see SEL_*), samples are read in place from
 * the dataset image or, when a whole one fits, from the receive buffer.
 */
#include "mdy_device.h"
#include "mdy_board.h"
#include "mdy_generated.h"
#include "model_config.h"

#include <math.h>
#include <string.h>

#define SLOT (2u + MDY_PROTO_FRAME_MAX)        /* a frame at +2: payloads 4-byte aligned */
#define PAYLOAD_OFF MDY_PROTO_HEADER_SIZE
#define AUX_SIZE 64u

/* The receive and answer buffers are idle while an epoch runs (the request is
 * parsed, the answer not yet written), so the epoch's sample permutation
 * lives in them instead of in RAM of its own. */
static union {
    uint32_t align_;
    uint8_t b[2u * SLOT];
    uint16_t perm[SLOT];
} io;
#define RX_FRAME (io.b + 2)
#define TX_FRAME (io.b + SLOT + 2)
#define TX_PAYLOAD (TX_FRAME + PAYLOAD_OFF)

static union {
    uint32_t align_;
    uint8_t b[AUX_SIZE];
} aux;

static mdy_rx rx;
static mdy_ctx ctx;
static mdy_status init_status;
static mdy_dataset ds;
static int ds_status;                /* 0 or MDY_PERR_* */

/* The last executed request (seq + CRC) and its answer, kept in TX_FRAME:
 * a repeat is answered again without running again. */
static int have_last;
static uint16_t last_seq;
static uint32_t last_crc;
static uint8_t tx_type;
static uint16_t tx_len;

/* A selection arriving in chunks (SEL_BEGIN/SEL_CHUNK/SEL_COMMIT). */
static int staging;
static uint32_t stage_n, stage_next;

/* A streamed sample larger than one frame: SAMPLE_CHUNKs fill it from the
 * start, the TRAIN_STREAM or FORWARD carrying its last floats completes and
 * consumes it. Exactly one model input: the receive buffer cannot hold it
 * (the next frame overwrites it) and the arena is in use by the pass that
 * reads it. Sized at compile time from the generated model_config.h;
 * mdy_device_init checks it against the model. */
#define SAMPLE_FLOATS ((uint32_t)MDY_MODEL_INPUT_H * (uint32_t)MDY_MODEL_INPUT_W * \
                       (uint32_t)MDY_MODEL_INPUT_C)
static float sample[SAMPLE_FLOATS];
static uint32_t sample_have;         /* floats staged so far of the current sample */
static int sample_ok;                /* SAMPLE_FLOATS equals the model's input */

/* Cycles of whole epoch requests; the runtime counts the phases (ctx.cycles_*). */
static uint64_t cycles_total;

static uint8_t cur_type;
static uint16_t cur_seq;

/* A LAYERS_R entry is one LAYER_ENTRY record (both from spec.py). */
typedef char layer_entry_is_the_tail_[(MDY_LAYERS_R_TAIL == MDY_LAYER_ENTRY_SIZE) ? 1 : -1];

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------ answers */
static uint16_t error_payload(uint8_t *p, int code, uint8_t request, const char *text)
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

/* Handlers return the answer payload length and set tx_type; errors go
 * through fail(). */
static uint16_t fail(int code, const char *text)
{
    tx_type = MDY_MSG_ERROR;
    return error_payload(TX_PAYLOAD, code, cur_type, text);
}

static void send_aux(uint8_t type, uint16_t seq, uint16_t len)
{
    mdy_frame_send(aux.b, type, seq, len);
}

static void send_progress(uint32_t done, uint32_t total, float loss_sum, uint32_t correct)
{
    uint8_t *p = aux.b + PAYLOAD_OFF;
    memset(p, 0, MDY_PROGRESS_SIZE);
    p[MDY_PROGRESS_REQUEST] = cur_type;
    mdy_wr32(p + MDY_PROGRESS_DONE, done);
    mdy_wr32(p + MDY_PROGRESS_TOTAL, total);
    memcpy(p + MDY_PROGRESS_LOSS_SUM, &loss_sum, 4);
    mdy_wr32(p + MDY_PROGRESS_CORRECT, correct);
    send_aux(MDY_MSG_PROGRESS, cur_seq, MDY_PROGRESS_SIZE);
}

static float rd_f32(const uint8_t *p)
{
    float f;
    uint32_t u = mdy_rd32(p);
    memcpy(&f, &u, 4);
    return f;
}

static void wr_f32(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    mdy_wr32(p, u);
}

static void wr_name(uint8_t *p, const char *s)
{
    uint32_t i = 0;
    memset(p, 0, MDY_PROTO_NAME_LEN);
    while (s && s[i] && i < MDY_PROTO_NAME_LEN - 1) {
        p[i] = (uint8_t)s[i];
        i++;
    }
}

/* ------------------------------------------------------------ helpers */
static const mdy_model *model(void) { return &mdy_generated_model; }

static const mdy_tensor *input_tensor(void) { return &model()->tensors[model()->input]; }

static uint32_t input_elems(void)
{
    const mdy_tensor *t = input_tensor();
    return (uint32_t)t->h * (uint32_t)t->w * (uint32_t)t->c;
}

/* Fixed-size payload check. */
#define NEED_LEN(msg)                                                        \
    do {                                                                     \
        if (len != MDY_##msg##_SIZE)                                         \
            return fail(MDY_PERR_BAD_LENGTH, #msg ": wrong payload length"); \
    } while (0)

/* Fixed part + whole number of tail items; sets `items`. */
static int tail_items(uint32_t len, uint32_t size, uint32_t tail, uint32_t *items)
{
    if (len < size || (len - size) % tail)
        return 0;
    *items = (len - size) / tail;
    return 1;
}

#define NEED_TAIL(msg)                                                                  \
    do {                                                                                \
        if (!tail_items(len, MDY_##msg##_SIZE, MDY_##msg##_TAIL, &items))               \
            return fail(MDY_PERR_BAD_LENGTH, #msg ": wrong payload length");            \
    } while (0)

#define MAX_ITEMS(msg) ((MDY_PROTO_MAX_PAYLOAD - MDY_##msg##_SIZE) / MDY_##msg##_TAIL)

static void reset_stats(void)
{
    mdy_reset_stats(&ctx);
    cycles_total = 0;
}

/* The staged selection lives in the arena's channel-statistics region:
 * max_selected floats, exactly max_selected mdy_channel entries, so any legal
 * selection fits without RAM of its own. mdy_set_selection copies it before it
 * resets the statistics; an abandoned or rejected staging only costs the
 * statistics, never the installed selection or its gradients. */
static uint8_t *stage_area(void) { return ctx.arena + model()->stats_offset; }

static void abandon_staging(void)
{
    if (staging) {
        staging = 0;
        reset_stats();
    }
}

/* RUN_EPOCH and EVALUATE need a dataset image that matches the model. */
#define NEED_DATASET()                                                               \
    do {                                                                             \
        if (ds_status != 0)                                                          \
            return fail(ds_status, ds_status == MDY_PERR_DATASET_SHAPE               \
                                       ? "dataset does not match the model"          \
                                       : "no valid dataset image");                  \
    } while (0)

static int check_split(uint8_t split, uint32_t start, uint32_t count, const char **why)
{
    if (split > MDY_SPLIT_TEST) {
        *why = "split must be 0 (train) or 1 (test)";
        return MDY_PERR_BAD_FIELD;
    }
    if (count == 0 || start > ds.n[split] || count > ds.n[split] - start) {
        *why = "start/count outside the split";
        return MDY_PERR_BAD_FIELD;
    }
    return 0;
}

static uint16_t stats_answer(uint32_t offset, uint32_t count)
{
    uint8_t *p = TX_PAYLOAD;
    const float *cs = mdy_channel_stats(&ctx);
    uint32_t k;
    wr_f32(p + MDY_STATS_LOSS_SUM, ctx.loss_sum);
    mdy_wr32(p + MDY_STATS_CORRECT, ctx.correct);
    mdy_wr32(p + MDY_STATS_SEEN, ctx.seen);
    mdy_wr32(p + MDY_STATS_STEPS, ctx.steps);
    mdy_wr64(p + MDY_STATS_CYCLES_FORWARD, ctx.cycles_forward);
    mdy_wr64(p + MDY_STATS_CYCLES_BACKWARD, ctx.cycles_backward);
    mdy_wr64(p + MDY_STATS_CYCLES_UPDATE, ctx.cycles_update);
    mdy_wr64(p + MDY_STATS_CYCLES_TOTAL, cycles_total);
    mdy_wr32(p + MDY_STATS_STACK_HIGH_WATER, board_stack_high_water());
    mdy_wr32(p + MDY_STATS_N_SELECTED, ctx.n_selected);
    mdy_wr32(p + MDY_STATS_OFFSET, offset);
    mdy_wr32(p + MDY_STATS_NONFINITE, ctx.nonfinite);
    for (k = 0; k < count; k++)
        wr_f32(p + MDY_STATS_SIZE + MDY_STATS_TAIL * k, cs[offset + k]);
    tx_type = MDY_MSG_STATS;
    return (uint16_t)(MDY_STATS_SIZE + MDY_STATS_TAIL * count);
}

/* The epoch of a RUN_EPOCH: samples start + perm[i] of one split of the
 * dataset image, for mdy_train_epoch. */
typedef struct {
    uint32_t split, start, count;
} epoch_source;

static const float *epoch_sample(void *user, uint32_t i, int32_t *label)
{
    const epoch_source *e = (const epoch_source *)user;
    uint32_t idx = e->start + io.perm[i];
    *label = ds.y[e->split][idx];
    return ds.x[e->split] + (size_t)idx * input_elems();
}

static void epoch_progress(void *user, uint32_t done)
{
    const epoch_source *e = (const epoch_source *)user;
    if (done % MDY_PROTO_PROGRESS_EVERY == 0 && done < e->count)
        send_progress(done, e->count, ctx.loss_sum, ctx.correct);
}

/* ------------------------------------------------------------ handlers */
static uint16_t h_ping(const uint8_t *p, uint16_t len)
{
    memmove(TX_PAYLOAD, p, len);
    tx_type = MDY_MSG_PONG;
    return len;
}

static uint16_t h_info(const uint8_t *p, uint16_t len)
{
    const mdy_model *m = model();
    const mdy_tensor *t = input_tensor();
    uint8_t *o = TX_PAYLOAD;
    (void)p;
    NEED_LEN(INFO);
    memset(o, 0, MDY_INFO_R_SIZE);
    mdy_wr16(o + MDY_INFO_R_ENGINE_VERSION, MDY_ENGINE_VERSION);
    o[MDY_INFO_R_PROTOCOL_VERSION] = MDY_PROTO_VERSION;
    o[MDY_INFO_R_FLAGS] = ds_status == 0 ? 1u : 0u;
    mdy_wr32(o + MDY_INFO_R_MODEL_HASH, m->hash);
    mdy_wr32(o + MDY_INFO_R_ARENA_SIZE, m->arena_size);
    mdy_wr32(o + MDY_INFO_R_POOL_SIZE, m->pool_size);
    mdy_wr32(o + MDY_INFO_R_MAX_SELECTED, m->max_selected);
    mdy_wr32(o + MDY_INFO_R_CLASSES, (uint32_t)m->classes);
    mdy_wr32(o + MDY_INFO_R_IN_H, (uint32_t)t->h);
    mdy_wr32(o + MDY_INFO_R_IN_W, (uint32_t)t->w);
    mdy_wr32(o + MDY_INFO_R_IN_C, (uint32_t)t->c);
    mdy_wr16(o + MDY_INFO_R_N_LAYERS, m->n_layers);
    mdy_wr16(o + MDY_INFO_R_N_OPS, m->n_ops);
    mdy_wr16(o + MDY_INFO_R_MAX_PAYLOAD, MDY_PROTO_MAX_PAYLOAD);
    mdy_wr16(o + MDY_INFO_R_MAX_EPOCH, MDY_PROTO_MAX_EPOCH_SAMPLES);
    mdy_wr32(o + MDY_INFO_R_STACK_SIZE, board_stack_size());
    mdy_wr32(o + MDY_INFO_R_CYCLES_HZ, board_cycles_hz());
    mdy_wr32(o + MDY_INFO_R_N_TRAIN, ds_status == 0 ? ds.n[0] : 0);
    mdy_wr32(o + MDY_INFO_R_N_TEST, ds_status == 0 ? ds.n[1] : 0);
    mdy_wr32(o + MDY_INFO_R_N_SELECTED, ctx.n_selected);
    wr_name(o + MDY_INFO_R_BOARD, board_name);
    wr_name(o + MDY_INFO_R_MODEL, mdy_generated_name);
    tx_type = MDY_MSG_INFO_R;
    return MDY_INFO_R_SIZE;
}

static uint16_t h_layers(const uint8_t *p, uint16_t len)
{
    const mdy_model *m = model();
    uint32_t off, count, k;
    uint8_t *o = TX_PAYLOAD;
    NEED_LEN(LAYERS);
    off = mdy_rd16(p + MDY_LAYERS_OFFSET);
    count = mdy_rd16(p + MDY_LAYERS_COUNT);
    if (count == 0 || count > MAX_ITEMS(LAYERS_R) || off > m->n_layers || count > m->n_layers - off)
        return fail(MDY_PERR_BAD_FIELD, "LAYERS: offset/count outside the layer table");
    mdy_wr16(o + MDY_LAYERS_R_OFFSET, (uint16_t)off);
    mdy_wr16(o + MDY_LAYERS_R_COUNT, (uint16_t)count);
    for (k = 0; k < count; k++) {
        const mdy_layer *l = &m->layers[off + k];
        const mdy_op *op = &m->ops[l->op];
        uint8_t *e = o + MDY_LAYERS_R_SIZE + MDY_LAYERS_R_TAIL * k;
        mdy_wr16(e + MDY_LAYER_ENTRY_OP, l->op);
        e[MDY_LAYER_ENTRY_KIND] = (uint8_t)op->kind;
        e[MDY_LAYER_ENTRY_TRAIN_BIAS] = (uint8_t)(l->train_bias != 0);
        mdy_wr32(e + MDY_LAYER_ENTRY_CHANNELS, (uint32_t)l->channels);
        mdy_wr32(e + MDY_LAYER_ENTRY_SLICE_SIZE, (uint32_t)l->slice_size);
        mdy_wr32(e + MDY_LAYER_ENTRY_MAP_SIZE, (uint32_t)l->map_size);
        mdy_wr32(e + MDY_LAYER_ENTRY_WEIGHT_COUNT, (uint32_t)l->channels * (uint32_t)l->slice_size);
        mdy_wr32(e + MDY_LAYER_ENTRY_BIAS_COUNT, l->bias ? (uint32_t)op->p.conv.out_c : 0u);
    }
    tx_type = MDY_MSG_LAYERS_R;
    return (uint16_t)(MDY_LAYERS_R_SIZE + MDY_LAYERS_R_TAIL * count);
}

static uint16_t ok(void)
{
    tx_type = MDY_MSG_OK;
    return 0;
}

static uint16_t h_sel_begin(const uint8_t *p, uint16_t len)
{
    uint32_t n;
    NEED_LEN(SEL_BEGIN);
    n = mdy_rd32(p + MDY_SEL_BEGIN_COUNT);
    if (n > model()->max_selected)
        return fail(MDY_ERR_BUDGET, "more channels than max_selected");
    abandon_staging();
    staging = 1;
    stage_n = n;
    stage_next = 0;
    return ok();
}

static uint16_t h_sel_chunk(const uint8_t *p, uint16_t len)
{
    uint32_t items, off;
    NEED_TAIL(SEL_CHUNK);
    if (!staging)
        return fail(MDY_PERR_BAD_STATE, "SEL_CHUNK without SEL_BEGIN");
    off = mdy_rd32(p + MDY_SEL_CHUNK_OFFSET);
    /* in order, or a repeat of an earlier chunk */
    if (items == 0 || off > stage_next || off > stage_n || items > stage_n - off)
        return fail(MDY_PERR_BAD_FIELD, "SEL_CHUNK: offset/count outside the selection");
    {
        uint8_t *dst = stage_area() + off * sizeof(mdy_channel);
        uint32_t k;
        for (k = 0; k < items; k++) {
            mdy_channel c;
            c.layer = mdy_rd16(p + MDY_SEL_CHUNK_SIZE + 4 * k);
            c.channel = mdy_rd16(p + MDY_SEL_CHUNK_SIZE + 4 * k + 2);
            memcpy(dst + k * sizeof(mdy_channel), &c, sizeof(c));
        }
    }
    if (off + items > stage_next)
        stage_next = off + items;
    return ok();
}

static uint16_t h_sel_commit(const uint8_t *p, uint16_t len)
{
    mdy_status st;
    NEED_LEN(SEL_COMMIT);
    if (!staging)
        return fail(MDY_PERR_BAD_STATE, "SEL_COMMIT without SEL_BEGIN");
    if (mdy_rd32(p + MDY_SEL_COMMIT_COUNT) != stage_n || stage_next != stage_n) {
        abandon_staging();
        return fail(MDY_PERR_BAD_STATE, "SEL_COMMIT: selection incomplete");
    }
    staging = 0;
    st = mdy_set_selection(&ctx, (const mdy_channel *)(const void *)stage_area(), stage_n);
    if (st != MDY_OK) {
        reset_stats();   /* the stage overwrote them */
        switch (st) {
        case MDY_ERR_RANGE: return fail(st, "layer or channel index out of range");
        case MDY_ERR_ORDER: return fail(st, "selection not strictly increasing");
        case MDY_ERR_BUDGET: return fail(st, "selection does not fit the channel pool");
        default: return fail(st, "selection rejected");
        }
    }
    cycles_total = 0;   /* mdy_set_selection reset the rest */
    return ok();
}

static uint16_t h_run_epoch(const uint8_t *p, uint16_t len)
{
    uint8_t split, flags;
    uint32_t batch, start, count, seed, page;
    float lr;
    const char *why = "";
    int e;
    uint64_t t_start;
    mdy_epoch ep;
    epoch_source src;
    mdy_status st;

    NEED_LEN(RUN_EPOCH);
    NEED_DATASET();
    split = p[MDY_RUN_EPOCH_SPLIT];
    flags = p[MDY_RUN_EPOCH_FLAGS];
    batch = mdy_rd16(p + MDY_RUN_EPOCH_BATCH);
    start = mdy_rd32(p + MDY_RUN_EPOCH_START);
    count = mdy_rd32(p + MDY_RUN_EPOCH_COUNT);
    lr = rd_f32(p + MDY_RUN_EPOCH_LR);
    seed = mdy_rd32(p + MDY_RUN_EPOCH_SEED);
    page = mdy_rd16(p + MDY_RUN_EPOCH_PAGE);
    if ((e = check_split(split, start, count, &why)) != 0)
        return fail(e, why);
    if (count > MDY_PROTO_MAX_EPOCH_SAMPLES)
        return fail(MDY_PERR_BAD_FIELD, "count above max_epoch");
    if (batch == 0)
        return fail(MDY_PERR_BAD_FIELD, "batch must be >= 1");
    if (flags & ~(uint32_t)MDY_EPOCH_KEEP_STATS)
        return fail(MDY_PERR_BAD_FIELD, "unknown flags");
    if (!isfinite(lr))
        return fail(MDY_PERR_BAD_FIELD, "lr is not finite");
    if (page > MAX_ITEMS(STATS))
        page = MAX_ITEMS(STATS);
    if (page > ctx.n_selected)
        page = ctx.n_selected;

    /* From here the receive and answer buffers hold the permutation. */
    mdy_epoch_order(io.perm, count, seed);
    if (!(flags & MDY_EPOCH_KEEP_STATS))
        reset_stats();
    ep.count = count;
    ep.batch = batch;
    ep.lr = lr;
    src.split = split;
    src.start = start;
    src.count = count;
    t_start = board_cycles();
    st = mdy_train_epoch(&ctx, &ep, epoch_sample, epoch_progress, &src);
    cycles_total += board_cycles() - t_start;
    if (st != MDY_OK)
        return fail(st, "engine error during the epoch");
    return stats_answer(0, page);
}

static uint16_t h_get_stats(const uint8_t *p, uint16_t len)
{
    uint32_t off, count;
    NEED_LEN(GET_STATS);
    off = mdy_rd32(p + MDY_GET_STATS_OFFSET);
    count = mdy_rd32(p + MDY_GET_STATS_COUNT);
    if (count > MAX_ITEMS(STATS))
        count = MAX_ITEMS(STATS);
    if (off > ctx.n_selected)
        return fail(MDY_PERR_BAD_FIELD, "GET_STATS: offset beyond the selection");
    if (count > ctx.n_selected - off)
        count = ctx.n_selected - off;
    return stats_answer(off, count);
}

/* The sample of a TRAIN_STREAM or FORWARD whose payload ends with its last
 * `items` floats. All of it: 0 (used in place). Fewer: the floats before them
 * must be staged (SAMPLE_CHUNK). Returns 0 or an error code with *why; checks
 * only, so a rejected request leaves the staged part as it was. */
static int check_stream_sample(uint32_t items, const char **why)
{
    uint32_t n = input_elems();
    if (items > n) {
        *why = "more floats than the model input";
        return MDY_PERR_BAD_LENGTH;
    }
    if (items == n)
        return 0;
    if (!sample_ok) {
        *why = "sample buffer differs from the model input";
        return MDY_PERR_BAD_STATE;
    }
    if (sample_have != n - items) {
        *why = "incomplete sample: SAMPLE_CHUNK the rest first";
        return MDY_PERR_BAD_STATE;
    }
    return 0;
}

/* After check_stream_sample() and every other check passed: the whole
 * sample, in place or completed in `sample` (then consumed: the next one
 * starts again at offset 0). */
static const float *stream_sample(const uint8_t *x, uint32_t items)
{
    uint32_t n = input_elems(), k;
    if (items == n)
        return (const float *)(const void *)x;   /* payload 4-byte aligned */
    for (k = 0; k < items; k++)
        sample[n - items + k] = rd_f32(x + 4 * k);
    sample_have = 0;
    return sample;
}

static uint16_t h_sample_chunk(const uint8_t *p, uint16_t len)
{
    uint32_t items, off, k, n = input_elems();
    NEED_TAIL(SAMPLE_CHUNK);
    if (!sample_ok)
        return fail(MDY_PERR_BAD_STATE, "sample buffer differs from the model input");
    off = mdy_rd32(p + MDY_SAMPLE_CHUNK_OFFSET);
    if (items == 0 || off > n || items > n - off)
        return fail(MDY_PERR_BAD_FIELD, "SAMPLE_CHUNK: offset/count outside the sample");
    /* 0 starts a sample; else the chunk continues it exactly. (A lost answer
     * is retried with the same seq and answered from the cache, so a chunk
     * never needs to be applied twice.) */
    if (off != 0 && off != sample_have)
        return fail(MDY_PERR_BAD_STATE, "SAMPLE_CHUNK out of order");
    for (k = 0; k < items; k++)
        sample[off + k] = rd_f32(p + MDY_SAMPLE_CHUNK_SIZE + 4 * k);
    sample_have = off + items;
    return ok();
}

static uint16_t h_train_stream(const uint8_t *p, uint16_t len)
{
    uint32_t items, index;
    int32_t label;
    mdy_epoch ep;
    mdy_status st;
    const char *why = "";
    int e;
    uint64_t t0;
    NEED_TAIL(TRAIN_STREAM);
    if ((e = check_stream_sample(items, &why)) != 0)
        return fail(e, why);
    ep.batch = mdy_rd16(p + MDY_TRAIN_STREAM_BATCH);
    index = mdy_rd32(p + MDY_TRAIN_STREAM_INDEX);
    ep.count = mdy_rd32(p + MDY_TRAIN_STREAM_COUNT);
    label = (int32_t)mdy_rd32(p + MDY_TRAIN_STREAM_LABEL);
    ep.lr = rd_f32(p + MDY_TRAIN_STREAM_LR);
    if (ep.batch == 0)
        return fail(MDY_PERR_BAD_FIELD, "batch must be >= 1");
    if (index >= ep.count)
        return fail(MDY_PERR_BAD_FIELD, "index must be below count");
    if (label < 0 || label >= model()->classes)
        return fail(MDY_ERR_LABEL, "label outside [0, classes)");
    if (!isfinite(ep.lr))
        return fail(MDY_PERR_BAD_FIELD, "lr is not finite");
    if (index == 0)
        reset_stats();
    t0 = board_cycles();
    st = mdy_train_epoch_sample(&ctx, &ep, index, stream_sample(p + MDY_TRAIN_STREAM_SIZE, items),
                                label);
    cycles_total += board_cycles() - t0;
    if (st != MDY_OK)
        return fail(st, "engine error");
    return stats_answer(0, 0);
}

static uint16_t h_evaluate(const uint8_t *p, uint16_t len)
{
    uint8_t split;
    uint32_t start, count, i, hwc = input_elems();
    mdy_eval_stats acc;
    const char *why = "";
    int e;
    uint64_t t0;
    uint8_t *o = TX_PAYLOAD;

    NEED_LEN(EVALUATE);
    NEED_DATASET();
    split = p[MDY_EVALUATE_SPLIT];
    start = mdy_rd32(p + MDY_EVALUATE_START);
    count = mdy_rd32(p + MDY_EVALUATE_COUNT);
    if ((e = check_split(split, start, count, &why)) != 0)
        return fail(e, why);
    memset(&acc, 0, sizeof(acc));
    t0 = board_cycles();
    for (i = 0; i < count; i++) {
        uint32_t idx = start + i;
        mdy_status st = mdy_eval_sample(&ctx, ds.x[split] + (size_t)idx * hwc, ds.y[split][idx],
                                        &acc, NULL);
        if (st != MDY_OK)
            return fail(st, "engine error during evaluation");
        if ((i + 1) % MDY_PROTO_PROGRESS_EVERY == 0 && i + 1 < count)
            send_progress(i + 1, count, acc.loss_sum, acc.correct);
    }
    memset(o, 0, MDY_EVAL_R_SIZE);
    wr_f32(o + MDY_EVAL_R_LOSS_SUM, acc.loss_sum);
    mdy_wr32(o + MDY_EVAL_R_CORRECT, acc.correct);
    mdy_wr32(o + MDY_EVAL_R_COUNT, acc.count);
    mdy_wr32(o + MDY_EVAL_R_NONFINITE, acc.nonfinite);
    mdy_wr64(o + MDY_EVAL_R_CYCLES, board_cycles() - t0);
    tx_type = MDY_MSG_EVAL_R;
    return MDY_EVAL_R_SIZE;
}

/* Elements [off, off+count) of a layer's weight (which 0) or bias (which 1)
 * array, as READ_WEIGHTS and WRITE_WEIGHTS address them: the array, or NULL
 * with the error code and text. */
static float *weights_range(uint32_t layer, uint32_t which, uint32_t off, uint32_t count,
                            int *code, const char **why)
{
    const mdy_layer *l;
    uint32_t n;
    float *w;
    if (layer >= model()->n_layers) {
        *code = MDY_ERR_RANGE;
        *why = "layer index out of range";
        return (float *)0;
    }
    if (which > 1) {
        *code = MDY_PERR_BAD_FIELD;
        *why = "which must be 0 (weight) or 1 (bias)";
        return (float *)0;
    }
    l = &model()->layers[layer];
    if (which == 0) {
        n = (uint32_t)l->channels * (uint32_t)l->slice_size;
        w = l->weight;
    } else {
        n = l->bias ? (uint32_t)model()->ops[l->op].p.conv.out_c : 0u;
        w = l->bias;
    }
    if (count == 0 || off > n || count > n - off) {
        *code = MDY_PERR_BAD_FIELD;
        *why = "offset/count outside the array";
        return (float *)0;
    }
    return w;
}

static uint16_t h_read_weights(const uint8_t *p, uint16_t len)
{
    uint32_t off, count, k;
    const float *w;
    int code = 0;
    const char *why = "";
    uint8_t *o = TX_PAYLOAD;
    NEED_LEN(READ_WEIGHTS);
    off = mdy_rd32(p + MDY_READ_WEIGHTS_OFFSET);
    count = mdy_rd32(p + MDY_READ_WEIGHTS_COUNT);
    w = weights_range(mdy_rd16(p + MDY_READ_WEIGHTS_LAYER), p[MDY_READ_WEIGHTS_WHICH], off,
                      count, &code, &why);
    if (!w)
        return fail(code, why);
    if (count > MAX_ITEMS(WEIGHTS))
        return fail(MDY_PERR_BAD_FIELD, "offset/count outside the array");
    mdy_wr32(o + MDY_WEIGHTS_OFFSET, off);
    for (k = 0; k < count; k++)
        wr_f32(o + MDY_WEIGHTS_SIZE + 4 * k, w[off + k]);
    tx_type = MDY_MSG_WEIGHTS;
    return (uint16_t)(MDY_WEIGHTS_SIZE + 4 * count);
}

static uint16_t h_write_weights(const uint8_t *p, uint16_t len)
{
    uint32_t items, off, k;
    float *w;
    int code = 0;
    const char *why = "";
    NEED_TAIL(WRITE_WEIGHTS);
    off = mdy_rd32(p + MDY_WRITE_WEIGHTS_OFFSET);
    w = weights_range(mdy_rd16(p + MDY_WRITE_WEIGHTS_LAYER), p[MDY_WRITE_WEIGHTS_WHICH], off,
                      items, &code, &why);
    if (!w)
        return fail(code, why);
    for (k = 0; k < items; k++)
        w[off + k] = rd_f32(p + MDY_WRITE_WEIGHTS_SIZE + 4 * k);
    return ok();
}

static uint16_t h_forward(const uint8_t *p, uint16_t len)
{
    const mdy_model *m = model();
    uint32_t items, k;
    float *logits;
    mdy_status st;
    const char *why = "";
    int e;
    uint8_t *o = TX_PAYLOAD;
    NEED_TAIL(FORWARD);
    if ((e = check_stream_sample(items, &why)) != 0)
        return fail(e, why);
    if ((uint32_t)m->classes > MAX_ITEMS(LOGITS))
        return fail(MDY_PERR_TOO_LARGE, "logits do not fit one frame");
    /* The logits go straight into the answer (4-byte aligned), then each is
     * rewritten in place as the protocol's little-endian bytes. */
    logits = (float *)(void *)(o + MDY_LOGITS_SIZE);
    st = mdy_forward(&ctx, stream_sample(p, items), logits);
    if (st != MDY_OK)
        return fail(st, "engine error");
    mdy_wr32(o + MDY_LOGITS_ARGMAX, (uint32_t)mdy_argmax_f32(m->classes, logits));
    for (k = 0; k < (uint32_t)m->classes; k++) {
        float v = logits[k];
        wr_f32(o + MDY_LOGITS_SIZE + 4 * k, v);
    }
    tx_type = MDY_MSG_LOGITS;
    return (uint16_t)(MDY_LOGITS_SIZE + 4 * (uint32_t)m->classes);
}

/* ------------------------------------------------------------ dispatch */
static uint16_t execute(uint8_t type, const uint8_t *p, uint16_t len)
{
    if (type != MDY_MSG_SEL_CHUNK && type != MDY_MSG_SEL_COMMIT && type != MDY_MSG_SEL_BEGIN)
        abandon_staging();
    if (init_status != MDY_OK && type != MDY_MSG_PING && type != MDY_MSG_SHUTDOWN)
        return fail(init_status, "engine init failed");
    switch (type) {
    case MDY_MSG_PING: return h_ping(p, len);
    case MDY_MSG_INFO: return h_info(p, len);
    case MDY_MSG_LAYERS: return h_layers(p, len);
    case MDY_MSG_SEL_BEGIN: return h_sel_begin(p, len);
    case MDY_MSG_SEL_CHUNK: return h_sel_chunk(p, len);
    case MDY_MSG_SEL_COMMIT: return h_sel_commit(p, len);
    case MDY_MSG_RUN_EPOCH: return h_run_epoch(p, len);
    case MDY_MSG_GET_STATS: return h_get_stats(p, len);
    case MDY_MSG_TRAIN_STREAM: return h_train_stream(p, len);
    case MDY_MSG_EVALUATE: return h_evaluate(p, len);
    case MDY_MSG_READ_WEIGHTS: return h_read_weights(p, len);
    case MDY_MSG_WRITE_WEIGHTS: return h_write_weights(p, len);
    case MDY_MSG_FORWARD: return h_forward(p, len);
    case MDY_MSG_SAMPLE_CHUNK: return h_sample_chunk(p, len);
    case MDY_MSG_SHUTDOWN:
        if (len != MDY_SHUTDOWN_SIZE)
            return fail(MDY_PERR_BAD_LENGTH, "SHUTDOWN: wrong payload length");
        return ok();
    default:
        return fail(MDY_PERR_UNKNOWN_TYPE, "unknown request type");
    }
}

static void on_frame(uint32_t flen)
{
    uint8_t *f = RX_FRAME;
    uint16_t seq, plen;
    uint32_t crc;

    if (mdy_frame_check(f, flen) != 0) {
        send_aux(MDY_MSG_ERROR, MDY_PROTO_NAK_SEQ,
                 error_payload(aux.b + PAYLOAD_OFF, MDY_PERR_BAD_FRAME, 0, "bad frame"));
        return;
    }
    seq = mdy_rd16(f + MDY_HDR_SEQ_OFF);
    plen = mdy_rd16(f + MDY_HDR_LEN_OFF);
    crc = mdy_rd32(f + flen - MDY_PROTO_CRC_SIZE);
    cur_type = f[MDY_HDR_TYPE_OFF];
    cur_seq = seq;
    if (f[MDY_HDR_VERSION_OFF] != MDY_PROTO_VERSION) {
        send_aux(MDY_MSG_ERROR, seq,
                 error_payload(aux.b + PAYLOAD_OFF, MDY_PERR_BAD_VERSION, cur_type,
                               "protocol version mismatch"));
        return;
    }
    if (have_last && seq == last_seq && crc == last_crc) {
        /* a retry: the answer was lost, the request already ran */
        mdy_frame_send(TX_FRAME, tx_type, seq, tx_len);
        return;
    }
    have_last = 0;   /* the answer buffer is about to change */
    tx_len = execute(cur_type, f + PAYLOAD_OFF, plen);
    last_seq = seq;
    last_crc = crc;
    have_last = 1;
    mdy_frame_send(TX_FRAME, tx_type, seq, tx_len);
    if (cur_type == MDY_MSG_SHUTDOWN && tx_type == MDY_MSG_OK)
        board_exit((int)mdy_rd32(f + PAYLOAD_OFF + MDY_SHUTDOWN_CODE));
}

void mdy_device_rx_byte(uint8_t b)
{
    int r = mdy_rx_byte(&rx, b);
    if (r == MDY_RX_FRAME)
        on_frame(rx.len);
    else if (r == MDY_RX_BAD)
        send_aux(MDY_MSG_ERROR, MDY_PROTO_NAK_SEQ,
                 error_payload(aux.b + PAYLOAD_OFF, MDY_PERR_BAD_FRAME, 0, "bad frame"));
}

void mdy_device_init(void)
{
    const mdy_model *m = model();
    const mdy_tensor *t;
    mdy_rx_init(&rx, RX_FRAME, MDY_PROTO_FRAME_MAX);
    init_status = mdy_init(&ctx, m, mdy_generated_arena);
    ctx.clock = board_cycles;
    sample_ok = input_elems() == SAMPLE_FLOATS;
    ds_status = mdy_dataset_open(&ds, board_dataset(), board_dataset_size());
    if (ds_status == 0) {
        t = input_tensor();
        if (ds.h != (uint32_t)t->h || ds.w != (uint32_t)t->w || ds.c != (uint32_t)t->c ||
            ds.classes > (uint32_t)m->classes)
            ds_status = MDY_PERR_DATASET_SHAPE;
    }
}
