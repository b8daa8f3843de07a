"""The static stack bound of an image (medyate.stack_bound): frames read from the
instructions, calls, tail calls and pointer calls followed, an interrupt on top;
a build whose reserve is below the bound is refused; recursion is an error; and
the stack an engine image really uses in QEMU stays within the bound."""
import pytest

from medyate.boards import build_firmware, get_board
from medyate.errors import MedyateError
from medyate.stack_bound import EXCEPTION_FRAME, _parse_disassembly, stack_bound

from boards_testlib import APP, NO_ENGINE, build_app, needs_arm_gcc

DISASSEMBLY = """
00000100 <leaf>:
     100:\tpush\t{r4, r5, r6, lr}
     102:\tvpush\t{d8-d9}
     106:\tsub\tsp, #40
     108:\tpop\t{r4, r5, r6, pc}

00000110 <caller>:
     110:\tstmdb\tsp!, {r4, r5, r6, r7, r8, r9, sl, fp, lr}
     114:\tsub.w\tsp, sp, #1024
     118:\tbl\t100 <leaf>
     11c:\tbeq.n\t130 <caller+0x20>
     11e:\tb.w\t140 <tail>
     122:\tblx\tr3

00000140 <tail>:
     140:\tstr.w\tlr, [sp, #-4]!
     144:\tldr.w\tpc, [sp], #4

00000150 <grows>:
     150:\tsub\tsp, r3
     152:\tmovw\tr2, #321
     156:\tmovt\tr2, #2
     15a:\tbx\tr2
"""


def test_frames_and_calls_from_the_disassembly():
    funcs, built = _parse_disassembly(DISASSEMBLY)
    by = {f.name: f for f in funcs.values()}
    assert by["leaf"].frame == 16 + 16 + 40 and not by["leaf"].calls
    assert by["caller"].frame == 9 * 4 + 1024
    # bl and the tail call to another function's start; not the branch inside
    assert by["caller"].calls == {0x100, 0x140} and by["caller"].indirect
    assert by["tail"].frame == 4 and not by["tail"].indirect
    assert by["grows"].dynamic.startswith("sub sp, r3") and by["grows"].indirect
    assert built == [(2 << 16) | 321]


@pytest.fixture(scope="module")
def engine_image(tmp_path_factory):
    """The engine's device firmware for a small plan (fp32: the kernels its
    model calls are linked, planner/kernel_set.py)."""
    from medyate.algo.plan import make_plan
    from medyate.data import bundled_model, load_task
    from medyate.ir.onnx_import import load_onnx
    from medyate.session.firmware import build_device_firmware
    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    task = load_task("fmnist-5to9", n_train=16, n_test=8)
    plan, _ = make_plan(path, graph, task, ram="160KiB", board="qemu-mps2-an500",
                        ranking_samples=8)
    out = tmp_path_factory.mktemp("stack")
    _, build = build_device_firmware(graph, plan, "qemu-mps2-an500", out, log=lambda *_: None)
    return build


@needs_arm_gcc
def test_engine_image_bound_follows_every_pointer_call(engine_image):
    b = engine_image.stack
    assert b.unlisted == []                      # every pointer call of the firmware listed
    names = [n for n, _ in b.chain]
    assert names[:3] == ["Reset_Handler", "main", "mdy_device_rx_byte"]
    assert any(n.startswith("mdy_req_") for n in names)          # through the request table
    assert b.bytes == sum(f for _, f in b.chain) + (
        EXCEPTION_FRAME + sum(f for _, f in b.interrupt) if b.interrupt else 0)
    assert b.interrupt and b.interrupt[0][0] == "SysTick_Handler"
    assert 512 < b.bytes <= get_board("qemu-mps2-an500").stack_default
    assert b.bytes == stack_bound(engine_image.elf, su_dir=engine_image.build_dir).bytes


@needs_arm_gcc
def test_reserve_below_the_bound_is_refused(tmp_path):
    reserve = get_board("qemu-mps2-an500").stack_default
    with pytest.raises(MedyateError, match=f"may need (\\d+) bytes of stack but reserves {reserve}") as e:
        build_app("qemu-mps2-an500", tmp_path, defines=["TEST_DEEP_STACK=4096"])
    msg = str(e.value)
    need = int(msg.split("may need ")[1].split()[0])
    assert 4096 < need < 4096 + 512
    assert "test_deep_stack (40" in msg and "MEDYATE_STACK_SIZE=" in msg
    assert not (tmp_path / "firmware.elf").exists()


@needs_arm_gcc
def test_recursion_has_no_bound(tmp_path):
    with pytest.raises(MedyateError, match="test_recursion is recursive"):
        build_app("qemu-mps2-an500", tmp_path, defines=["TEST_RECURSION=1"])
