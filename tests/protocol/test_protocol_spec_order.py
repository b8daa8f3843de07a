"""The spec is consistent, the generated header is current, and the epoch
order is the same in Python and in C."""
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from medyate.protocol import gen, spec
from medyate.protocol.order import epoch_order, epoch_parts, visit_order, xorshift32


def test_generated_header_is_current():
    assert gen.HEADER.read_text() == gen.render(), "run: python -m medyate.protocol.gen"


def test_protocol_doc_tables_are_current():
    doc = gen.DOC.read_text()
    assert doc == gen.doc_with_tables(doc), "run: python -m medyate.protocol.gen"
    for name in spec.MSG:
        assert f"**{name}**" in doc or name in ("OK", "PONG", "INFO_R", "LAYERS_R", "EVAL_R",
                                                "WEIGHTS", "LOGITS", "PROGRESS"), name


def test_gen_check_cli(tmp_path):
    out = tmp_path / "h.h"
    doc = tmp_path / "d.md"
    doc.write_text("x\n" + gen.BEGIN + "\nold\n" + gen.END + "\ny\n")
    assert gen.main(["--check", "--out", str(out), "--doc", str(doc)]) == 1
    assert gen.main(["--out", str(out), "--doc", str(doc)]) == 0
    assert gen.main(["--check", "--out", str(out), "--doc", str(doc)]) == 0
    assert "| `RUN_EPOCH` | 0x07 |" in doc.read_text() and doc.read_text().endswith("y\n")
    out.write_text(out.read_text() + "// edit\n")
    assert gen.main(["--check", "--out", str(out), "--doc", str(doc)]) == 1


def test_codes_unique_and_split():
    assert len(set(spec.MSG.values())) == len(spec.MSG)
    assert len(set(spec.ERR.values())) == len(spec.ERR)
    for name, ans in spec.ANSWER.items():
        assert spec.MSG[name] < 0x80 <= spec.MSG[ans]
    assert set(spec.ANSWER) == {n for n, c in spec.MSG.items() if c < 0x80}


def test_every_answer_fits_a_frame():
    for name, lay in spec.LAYOUT.items():
        assert lay.size <= spec.MAX_PAYLOAD, name
        if lay.tail:
            assert lay.max_tail() >= 1, name
    # error and progress frames fit the device's 64-byte side buffer
    assert spec.HEADER_SIZE + spec.LAYOUT["ERROR"].size + spec.ERROR_TEXT_MAX + spec.CRC_SIZE <= 64
    assert spec.HEADER_SIZE + spec.LAYOUT["PROGRESS"].size + spec.CRC_SIZE <= 64


def test_float_arrays_are_aligned():
    # the device trains on samples in place: tails of floats start 4-aligned
    for name, lay in spec.LAYOUT.items():
        if lay.tail and lay.tail[1] == "f":
            assert (spec.HEADER_SIZE + 2 + lay.size) % 4 == 0, name


def test_layout_pack_unpack():
    lay = spec.LAYOUT["LAYERS_R"]
    ent = [1, 2, 1, 4, 5, 6, 7, 8] * 3
    d = lay.unpack(lay.pack(offset=0, count=3, tail=ent))
    assert d["entries"] == ent and d["count"] == 3
    with pytest.raises(ValueError):
        lay.unpack(lay.pack(offset=0, count=3, tail=ent)[:-1])
    with pytest.raises(ValueError):
        spec.LAYOUT["INFO"].unpack(b"x")


def test_xorshift32_reference():
    # Marsaglia's xorshift32 (13, 17, 5) from state 1
    x, seq = 1, []
    for _ in range(3):
        x = xorshift32(x)
        seq.append(x)
    assert seq == [270369, 67634689, 2647435461]


@given(st.integers(0, 300), st.integers(0, 2**32 - 1))
@settings(max_examples=100, deadline=None)
def test_order_is_a_permutation(n, seed):
    p = epoch_order(n, seed)
    assert sorted(p) == list(range(n))


def test_seed_zero_is_sequential():
    assert epoch_order(10, 0) == list(range(10))
    assert epoch_order(10, 5) != list(range(10))


@pytest.mark.parametrize("n,seed", [(0, 1), (1, 9), (2, 1), (10, 42), (97, 123456789),
                                    (1000, 0xDEADBEEF), (spec.MAX_EPOCH_SAMPLES, 2**32 - 1), (50, 0)])
def test_c_order_matches(harness_exe, n, seed):
    out = subprocess.run([str(harness_exe), "order", str(n), str(seed)], capture_output=True,
                         text=True, check=True).stdout.split()
    assert [int(v) for v in out] == epoch_order(n, seed)


def test_split_epoch_parts():
    parts = epoch_parts(5000, 32, 2048)
    assert parts[0] == (0, 2048 - 2048 % 32) and sum(n for _, n in parts) == 5000
    assert all(n % 32 == 0 for _, n in parts[:-1])
    order = visit_order(10, 5000, 7, 32)
    assert sorted(order) == list(range(10, 5010))
    assert visit_order(0, 100, 3, 8) == epoch_order(100, 3)
