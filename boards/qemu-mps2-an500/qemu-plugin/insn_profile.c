/*
 * insn_profile: a QEMU TCG plugin that counts the guest instructions executed
 * inside each function of the firmware, exactly.
 *
 * Why: under -icount shift=0 the board's SysTick counts one tick per 40
 * instructions (boards/qemu-mps2-an500/README.md), too coarse for
 * instructions-per-MAC figures of small kernels. A plugin sees every executed
 * instruction. It is built for the host (not part of the firmware: a subfolder of the board) from this file
 * (medyate.session.insn_profile), since Debian's QEMU 7.2 supports plugins
 * but ships neither a plugin nor the header: the few declarations of the v1
 * plugin API it needs are written out below.
 *
 *   qemu-system-arm ... -plugin insn_profile.so,syms=FILE,out=FILE
 *
 * syms: one function per line, "start end name" (hex addresses, end
 * exclusive, sorted by start, non-overlapping, Thumb bit cleared).
 * out:  written when QEMU exits: "count name" per function with a non-zero
 * count, then "count <other>" (instructions outside every listed function)
 * and "count <total>".
 *
 * Each instruction gets an inline add into its function's counter, decided
 * once when its block is translated: exact whatever the block boundaries, and
 * no helper call per instruction.
 */
#define __STDC_FORMAT_MACROS 1
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the part of QEMU 7.2's <qemu-plugin.h> (API version 1) used here ---- */
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn,
                                                enum qemu_plugin_op op, void *ptr, uint64_t imm);
void qemu_plugin_outs(const char *string);
#define EXPORT __attribute__((visibility("default")))
EXPORT int qemu_plugin_version = 1;
/* ------------------------------------------------------------------------- */

struct fn {
    uint64_t start, end;
    char name[96];
};

static struct fn *fns;
static uint64_t *counts; /* counts[n_fns] collects everything outside them */
static size_t n_fns;
static char out_path[4096];

static size_t lookup(uint64_t pc)
{
    size_t lo = 0, hi = n_fns;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pc < fns[mid].start)
            hi = mid;
        else if (pc >= fns[mid].end)
            lo = mid + 1;
        else
            return mid;
    }
    return n_fns;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        size_t f = lookup(qemu_plugin_insn_vaddr(insn));
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &counts[f], 1);
    }
}

static void on_exit_write(qemu_plugin_id_t id, void *p)
{
    (void)id;
    (void)p;
    FILE *f = fopen(out_path, "w");
    if (!f) {
        qemu_plugin_outs("insn_profile: cannot write the out file\n");
        return;
    }
    uint64_t total = 0;
    for (size_t i = 0; i <= n_fns; i++) {
        total += counts[i];
        if (i < n_fns && counts[i])
            fprintf(f, "%" PRIu64 " %s\n", counts[i], fns[i].name);
    }
    fprintf(f, "%" PRIu64 " <other>\n%" PRIu64 " <total>\n", counts[n_fns], total);
    fclose(f);
}

static int load_syms(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t cap = 1024;
    fns = calloc(cap, sizeof *fns);
    char line[256];
    while (fns && fgets(line, sizeof line, f)) {
        if (n_fns == cap) {
            cap *= 2;
            struct fn *g = realloc(fns, cap * sizeof *fns);
            if (!g)
                break;
            fns = g;
        }
        struct fn *e = &fns[n_fns];
        if (sscanf(line, "%" SCNx64 " %" SCNx64 " %95s", &e->start, &e->end, e->name) == 3) {
            if (e->end <= e->start || (n_fns && e->start < fns[n_fns - 1].end)) {
                fclose(f);
                return -2; /* not sorted / overlapping: lookups would be wrong */
            }
            n_fns++;
        }
    }
    fclose(f);
    counts = calloc(n_fns + 1, sizeof *counts);
    return (fns && counts) ? 0 : -1;
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    (void)info;
    const char *syms = NULL;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "syms=", 5) == 0)
            syms = argv[i] + 5;
        else if (strncmp(argv[i], "out=", 4) == 0)
            snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
    }
    if (!syms || !out_path[0]) {
        qemu_plugin_outs("insn_profile: needs syms=FILE,out=FILE\n");
        return -1;
    }
    if (load_syms(syms) != 0) {
        qemu_plugin_outs("insn_profile: cannot read a sorted symbol file\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_exit_write, NULL);
    return 0;
}
