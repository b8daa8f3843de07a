"""Stack facts of a built image: gcc's per-function frames (`stack_usage`), and a
static bound on a Cortex-M image's stack (`stack_bound`): the deepest call chain of the
linked ELF, plus the deepest interrupt on top of it.

Why from the linked image and not from the compiler's call graph: the image is
what runs. It holds the library code (newlib, libgcc) that no `.su` file
describes, and the calls left after inlining and --gc-sections. The analysis
reads `objdump -d`:

- a function's frame is what its instructions reserve: `push`/`stmdb sp!`
  (4 bytes a register), `vpush`/`vstmdb sp!` (4 or 8), `sub sp, #N`, added up
  over the whole function; where gcc's `-fstack-usage` file knows the function,
  the larger of the two counts, and a frame gcc calls dynamic is an error;
- calls are `bl`, and branches to the start of another function (tail calls,
  counted as calls: a bound, not an exact figure);
- an indirect call (`blx rN`, `bx rN` other than `bx lr`) reaches address-taken
  functions: a Thumb function address (odd) stored as a word in .text (literal
  pools), .rodata, .data or the constructor arrays, or built with movw/movt.
  Which of them, `INDIRECT_CALLS` says for the firmware's own pointer calls; a
  pointer call it does not list may reach every one (a looser bound, still a
  bound, and the report names the caller). A callee already on the call path is
  not followed: the firmware has no recursion, and a direct recursion is an error;
- an exception handler preempts the deepest chain and adds its own chain and the
  Cortex-M7's exception frame with the FPU context (26 words, aligned: 108 bytes);
  a handler that moves sp itself (the fault handler, Reset_Handler) runs on a
  stack of its own making and is bounded alone.
Interrupts do not nest: the boards leave every priority at its reset value.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .errors import MedyateError

EXCEPTION_FRAME = 108        # 26 words of FP-extended frame, plus 4 of alignment

# The firmware's pointer calls: caller -> the address-taken functions it may reach
# (a regular expression on their names). Callers are named as they are in the
# image, after inlining: a call in an inlined helper is its caller's.
INDIRECT_CALLS = {
    # device/mdy_dispatch.c: the request table (execute() where it is not inlined)
    "mdy_device_rx_byte": r"^mdy_req_",
    "execute": r"^mdy_req_",
    # runtime/mdy_epoch.c: the sample and progress callbacks (device/mdy_req_train.c)
    # and ctx->clock (the board's cycle counter)
    "mdy_train_epoch": r"^(epoch_sample|epoch_progress|board_cycles)$",
    "mdy_train_epoch_sample": r"^board_cycles$",
    # kernels: the inner loop specialised for a shape, a static run_* of the same file
    "run_inside": r"^run_",
    "mdy_depthwise_conv2d_nhwc_f32_wgrad": r"^run_s[12]_",
    "mdy_depthwise_conv2d_nhwc_s8_wgrad": r"^run_s[12]_",
    # newlib's start-up: the constructors and destructors of .init_array/.fini_array
    "__libc_init_array": r"^(frame_dummy|__do_global_dtors_aux)$",
    "__libc_fini_array": r"^(frame_dummy|__do_global_dtors_aux)$",
    # crtstuff's transactional-memory hooks: weak, absent (0) from these images
    "register_tm_clones": r"(?!)",
    "deregister_tm_clones": r"(?!)",
}

_FUNC = re.compile(r"^([0-9a-f]+) <([^>]+)>:$")
_INSN = re.compile(r"^\s+([0-9a-f]+):\s+(\S+)\s*(.*)$")
_REGLIST = re.compile(r"\{([^}]*)\}")


def _reg_count(reglist: str) -> int:
    """Bytes a register list such as 'r4-r7, lr' or 'd8-d15' takes on the stack."""
    nbytes = 0
    for part in (p.strip() for p in reglist.split(",") if p.strip()):
        m = re.match(r"^([rds])(\d+)(?:-[rds](\d+))?$", part)
        k = int(m.group(3)) - int(m.group(2)) + 1 if m and m.group(3) else 1
        nbytes += k * (8 if m and m.group(1) == "d" else 4)
    return nbytes


@dataclass
class Function:
    name: str
    addr: int
    frame: int = 0                      # bytes, from the instructions
    calls: set = field(default_factory=set)    # addresses called directly
    indirect: bool = False
    moves_sp: bool = False
    dynamic: str = ""                   # why the frame is not static, if it is not


_BRANCH = re.compile(r"^b(?:eq|ne|cs|cc|hs|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)?$")
_TARGET = re.compile(r"^([0-9a-f]+) <([^>+]+)>$")        # the start of a function
_IMM = re.compile(r"^(r\d+|ip|lr), #(\d+)")


def _parse_disassembly(text: str) -> tuple[dict[int, Function], list[int]]:
    """({address: Function}, the constants built with movw/movt pairs)."""
    funcs: dict[int, Function] = {}
    built: list[int] = []
    cur = None
    movw: dict[str, int] = {}
    for line in text.splitlines():
        m = _FUNC.match(line)
        if m:
            cur = Function(m.group(2), int(m.group(1), 16))
            funcs[cur.addr] = cur
            movw = {}
            continue
        m = _INSN.match(line)
        if not m or cur is None:
            continue
        op, args = m.group(2), m.group(3).split("@")[0].split(";")[0].strip()
        base = op.split(".")[0]
        if base in ("push", "vpush") or (base in ("stmdb", "vstmdb") and args.startswith("sp!")):
            rl = _REGLIST.search(args)
            if rl:
                cur.frame += _reg_count(rl.group(1))
        elif base in ("str", "strd", "vstr") and re.search(r"\[sp, #-(\d+)\]!", args):
            cur.frame += int(re.search(r"\[sp, #-(\d+)\]!", args).group(1))
        elif base in ("sub", "subw") and args.startswith("sp,"):
            k = re.match(r"^sp, (?:sp, )?#(\d+)$", args)
            if k:
                cur.frame += int(k.group(1))
            else:
                cur.dynamic = f"{op} {args} at 0x{m.group(1)}"
        elif base == "mov" and args.startswith("sp,"):
            cur.moves_sp = True
        elif base == "bl" or _BRANCH.match(base):
            t = _TARGET.match(args)
            if t and (base == "bl" or t.group(2) != cur.name):
                cur.calls.add(int(t.group(1), 16))
        elif base == "blx" or (base == "bx" and args != "lr"):
            cur.indirect = True
        elif base == "movw" and _IMM.match(args):
            t = _IMM.match(args)
            movw[t.group(1)] = int(t.group(2))
        elif base == "movt" and _IMM.match(args):
            t = _IMM.match(args)
            if t.group(1) in movw:
                built.append((int(t.group(2)) << 16) | movw.pop(t.group(1)))
    return funcs, built


def _section_words(elf: Path, prefix: str, section: str) -> list[int]:
    r = subprocess.run([f"{prefix}objdump", "-s", "-j", section, str(elf)],
                       capture_output=True, text=True)
    words = []
    for line in r.stdout.splitlines():
        m = re.match(r"^ ([0-9a-f]+) ((?:[0-9a-f]{2,8} ?){1,4})", line)
        if not m:
            continue
        for chunk in m.group(2).split():
            if len(chunk) == 8:
                words.append(int.from_bytes(bytes.fromhex(chunk), "little"))
    return words


def stack_usage(su_dir) -> list[dict]:
    """Per-function frames from the *.su files under `su_dir`, deepest first.
    These are single frames (gcc -fstack-usage), not call chains."""
    out = []
    for su in Path(su_dir).rglob("*.su"):
        for line in su.read_text(errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) < 3:
                continue
            loc, size, kind = parts[0], parts[1], parts[2]
            m = re.match(r"^(.*):(\d+):(\d+):(.+)$", loc)
            if not m or not size.strip().isdigit():
                continue
            out.append({"function": m.group(4), "file": Path(m.group(1)).name,
                        "line": int(m.group(2)), "bytes": int(size), "kind": kind.strip()})
    out.sort(key=lambda f: -f["bytes"])
    return out


def _su_frames(su_dir) -> dict[str, tuple[int, str]]:
    """{function: (largest frame gcc reports under that name, its kind)}."""
    out: dict[str, tuple[int, str]] = {}
    if su_dir is None:
        return out
    for f in stack_usage(su_dir):
        if f["function"] not in out or f["bytes"] > out[f["function"]][0]:
            out[f["function"]] = (f["bytes"], f["kind"])
    return out


@dataclass
class StackBound:
    bytes: int                      # the bound: deepest chain plus deepest interrupt
    chain: list                     # [(function, frame bytes)] of the deepest chain
    interrupt: list                 # the same for the interrupt counted on top
    functions: int                  # functions in the image
    indirect_targets: list          # address-taken functions an indirect call may reach
    unlisted: list                  # callers whose pointer calls INDIRECT_CALLS does not list

    def describe(self) -> str:
        path = " -> ".join(f"{n} ({b})" for n, b in self.chain)
        s = f"static stack bound {self.bytes} B: {path}"
        if self.interrupt:
            s += (" + exception frame " + str(EXCEPTION_FRAME) + " + "
                  + " -> ".join(f"{n} ({b})" for n, b in self.interrupt))
        if self.unlisted:
            s += ("; pointer calls taken to reach every address-taken function in "
                  + ", ".join(self.unlisted))
        return s

    def as_dict(self) -> dict:
        return {"bytes": self.bytes, "chain": [list(c) for c in self.chain],
                "interrupt": [list(c) for c in self.interrupt],
                "exception_frame": EXCEPTION_FRAME if self.interrupt else 0,
                "functions": self.functions, "indirect_targets": self.indirect_targets,
                "unlisted_indirect_callers": self.unlisted}


def stack_bound(elf, su_dir=None, prefix: str = "arm-none-eabi-") -> StackBound:
    """The static stack bound of the Arm image `elf` (see the module's doc)."""
    elf = Path(elf)
    r = subprocess.run([f"{prefix}objdump", "-d", "--no-show-raw-insn", str(elf)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise MedyateError(f"{prefix}objdump -d {elf} failed: {r.stderr.strip()}")
    funcs, built = _parse_disassembly(r.stdout)
    su = _su_frames(su_dir if su_dir is not None else elf.parent)
    for f in funcs.values():
        if f.name in su:
            size, kind = su[f.name]
            if "dynamic" in kind and "bounded" not in kind:
                raise MedyateError(f"stack bound: {f.name} has a dynamic stack frame "
                                   f"(gcc -fstack-usage: {kind}); no static bound exists")
            f.frame = max(f.frame, size)
        if f.dynamic:
            raise MedyateError(f"stack bound: {f.name} moves sp by a register "
                               f"({f.dynamic}); no static bound exists")

    vectors = _section_words(elf, prefix, ".isr_vector")
    if len(vectors) < 2 or (vectors[1] & ~1) not in funcs:
        raise MedyateError(f"stack bound: {elf} has no vector table with a reset handler")
    reset = vectors[1] & ~1
    handlers = {v & ~1 for v in vectors[2:] if v & 1 and (v & ~1) in funcs} - {reset}
    words = set(built)
    for sec in (".text", ".rodata", ".data", ".init_array", ".fini_array"):
        words.update(_section_words(elf, prefix, sec))
    # the exception handlers and main are entered by the core and Reset_Handler,
    # never through a pointer of the firmware's own
    roots = handlers | {reset} | {a for a, f in funcs.items() if f.name == "main"}
    taken = sorted(w & ~1 for w in words if w & 1 and (w & ~1) in funcs and (w & ~1) not in roots)
    taken_set = set(taken)
    targets: dict[int, list[int]] = {}
    unlisted = []
    for a, f in funcs.items():
        if f.indirect:
            pattern = INDIRECT_CALLS.get(f.name)
            if pattern is None:
                unlisted.append(f.name)
            targets[a] = [t for t in taken if pattern is None or re.match(pattern, funcs[t].name)]

    # The result for a function depends on the path above it only through the
    # address-taken functions on it (the only ones a cut can hit): memoized so.
    memo: dict[tuple, tuple[int, list]] = {}

    def deepest(addr: int, path: tuple) -> tuple[int, list]:
        """(bytes, chain) below `addr`; `path`: ((address, reached through a
        pointer), ...) of the callers, `addr` last."""
        key = (addr, frozenset(a for a, _ in path if a in taken_set))
        if key in memo:
            return memo[key]
        f = funcs[addr]
        best, best_chain = 0, []
        callees = [(c, False) for c in f.calls] + [(t, True) for t in targets.get(addr, ())]
        for c, via_pointer in callees:
            if c not in funcs:
                continue
            on_path = [i for i, (a, _) in enumerate(path) if a == c]
            if on_path:
                if not via_pointer and not any(p for _, p in path[on_path[0] + 1:]):
                    raise MedyateError(f"stack bound: {funcs[c].name} is recursive "
                                       f"(called from {f.name}); no static bound exists")
                continue
            d, ch = deepest(c, path + ((c, via_pointer),))
            if d > best:
                best, best_chain = d, ch
        memo[key] = (f.frame + best, [(f.name, f.frame)] + best_chain)
        return memo[key]

    total, chain = deepest(reset, ((reset, False),))
    on_top, top_chain = 0, []
    for h in sorted(handlers):
        d, ch = deepest(h, ((h, False),))
        if funcs[h].moves_sp:
            total = max(total, d)           # a stack of its own, from the top
        elif d + EXCEPTION_FRAME > on_top:
            on_top, top_chain = d + EXCEPTION_FRAME, ch
    return StackBound(total + on_top, chain, top_chain, len(funcs),
                      sorted({funcs[a].name for a in taken}), sorted(unlisted))
