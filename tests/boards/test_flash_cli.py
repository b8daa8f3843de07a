"""`medyate boards` and `medyate-flash`: dry-run commands for every probe, and
the flashing flow against fake probe tools put on PATH."""
from __future__ import annotations

import dataclasses
import os
import shlex
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from medyate import boards, cli
from medyate.commands import flash

# A fake of every probe tool, driven by FAKE_MODE: ok | fail | corrupt.
# It logs its argv to FAKE_LOG and imitates the real tool's output.
FAKE_TOOL = textwrap.dedent("""\
    #!{python}
    import os, sys
    tool = os.path.basename(sys.argv[0])
    mode = os.environ.get("FAKE_MODE", "ok")
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(tool + " " + " ".join(sys.argv[1:]) + "\\n")
    args = sys.argv[1:]
    def readback(path, size):
        data = open(os.environ["FAKE_IMAGE"], "rb").read()[:size]
        if mode == "corrupt":
            data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
        open(path, "wb").write(data)
    if tool == "st-info":
        print("Found 1 stlink programmers\\n  serial: 066DFF495051717867112541\\n  chipid: 0x449")
    elif tool == "st-flash":
        if args[0] == "write" and mode == "fail":
            print("ERROR: Flash programming failed", file=sys.stderr); sys.exit(255)
        if args[0] == "read":
            readback(args[1], int(args[3]))
    elif tool == "pyocd":
        if args[0] == "list":
            print("  #   Probe/Board           Unique ID\\n  0   STM32 STLink          066DFF495051")
        elif args[0] == "flash" and mode == "fail":
            print("0001 C Error: no target", file=sys.stderr); sys.exit(1)
        elif args[0] == "cmd":
            _, addr, size, path = args[args.index("-c") + 1].split()
            readback(path, int(size))
    elif tool == "openocd":
        if mode == "fail":
            print("Error: open failed", file=sys.stderr); sys.exit(1)
        if mode == "corrupt":
            print("** Programming Finished **\\n** Verify Started **\\n** Verify Failed **")
            sys.exit(1)
        print("** Programming Finished **\\n** Verify Started **\\n** Verified OK **\\n** Resetting Target **")
    sys.exit(0)
""")


@pytest.fixture
def image(tmp_path):
    elf = tmp_path / "fw" / "firmware.elf"
    elf.parent.mkdir()
    elf.write_bytes(b"\x7fELF-not-really")
    binary = elf.with_suffix(".bin")
    binary.write_bytes(bytes((i * 7) & 0xFF for i in range(4096)))
    return elf, binary


@pytest.fixture
def fake_env(tmp_path, monkeypatch, image):
    """An empty PATH but for the fake tools; no drive, a fake serial port."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "probe.log"
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("FAKE_IMAGE", str(image[1]))
    monkeypatch.setattr(flash, "MOUNT_ROOTS", [str(tmp_path / "media")])
    tty = tmp_path / "dev" / "ttyACM0"
    tty.parent.mkdir()
    tty.touch()
    # the board's serial port, where this test's fake device node is
    real_get_board = boards.get_board
    monkeypatch.setattr(boards, "get_board", lambda name, *a: dataclasses.replace(
        real_get_board(name, *a), serial_port_globs=(str(tmp_path / "dev" / "ttyACM*"),)))
    monkeypatch.setattr(flash, "MASS_STORAGE_SETTLE", 0.4)

    def install(*tools):
        for t in tools:
            p = bindir / t
            p.write_text(FAKE_TOOL.format(python=sys.executable))
            p.chmod(p.stat().st_mode | stat.S_IEXEC)
    return {"install": install, "log": log, "tty": str(tty), "tmp": tmp_path}


def test_medyate_boards_lists_every_board(capsys):
    assert cli.main(["boards"]) == 0
    out = capsys.readouterr().out
    lines = {l.split()[0]: l for l in out.splitlines()[1:]}
    assert set(lines) >= {"host", "qemu-mps2-an500", "nucleo-f746"}
    assert "cortex-m7" in lines["nucleo-f746"] and "1024 KB" in lines["nucleo-f746"]
    assert "320 KB" in lines["nucleo-f746"] and "st-flash" in lines["nucleo-f746"]
    assert "qemu" in lines["qemu-mps2-an500"]
    assert cli.main(["boards", "--json"]) == 0
    assert '"nucleo-f746"' in capsys.readouterr().out


@pytest.mark.parametrize("probe,expected", [
    ("st-flash", ["st-info --probe",
                  "st-flash write {bin} 0x08000000",
                  "st-flash read {out}/readback.bin 0x08000000 4096",
                  "st-flash reset"]),
    ("pyocd", ["pyocd list",
               "pyocd flash -t stm32f746zgtx --format elf {elf}",
               "pyocd cmd -t stm32f746zgtx -c 'savemem 0x08000000 4096 {out}/readback.bin'",
               "pyocd reset -t stm32f746zgtx"]),
    ("openocd", ["openocd -f board/st_nucleo_f7.cfg -c 'program {elf} verify reset exit'"]),
    ("mass-storage", ["cp {bin} '/media/$USER/NODE_F746ZG/firmware.bin'", "sync"]),
])
def test_dry_run_prints_the_exact_commands(probe, expected, image, fake_env, capsys):
    elf, binary = image
    out_dir = fake_env["tmp"] / "work"
    rc = flash.main(["--board", "nucleo-f746", "--elf", str(elf), "--probe", probe,
                     "--dry-run", "--out", str(out_dir)])
    assert rc == 0
    cmds = [l[2:] for l in capsys.readouterr().out.splitlines() if l.startswith("$ ")]
    assert cmds == [e.format(bin=shlex.quote(str(binary)), elf=shlex.quote(str(elf)),
                             out=out_dir) for e in expected]
    assert fake_env["log"].exists() is False      # nothing was run


def test_dry_run_auto_lists_probes_in_order(image, fake_env, capsys):
    rc = flash.main(["--elf", str(image[0]), "--dry-run", "--out", str(fake_env["tmp"] / "w")])
    assert rc == 0
    probes = [l.split()[2] for l in capsys.readouterr().out.splitlines()
              if l.startswith("# probe")]
    assert probes == ["st-flash", "pyocd", "openocd", "mass-storage"]


@pytest.mark.parametrize("probe,tools", [("st-flash", ["st-flash", "st-info"]),
                                         ("pyocd", ["pyocd"]), ("openocd", ["openocd"])])
def test_flash_success_prints_serial_port(probe, tools, image, fake_env, capsys):
    fake_env["install"](*tools)
    rc = flash.main(["--elf", str(image[0]), "--probe", probe,
                     "--out", str(fake_env["tmp"] / "w")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "flashed and verified" in out
    assert f"serial port: {fake_env['tty']}" in out
    assert f"--port {fake_env['tty']}" in out
    log = fake_env["log"].read_text()
    assert log.count("\n") >= 1


def test_auto_picks_the_installed_probe(image, fake_env, capsys):
    fake_env["install"]("openocd")
    assert flash.main(["--elf", str(image[0]), "--out", str(fake_env["tmp"] / "w")]) == 0
    assert "with openocd" in capsys.readouterr().out


@pytest.mark.parametrize("probe,tools", [("st-flash", ["st-flash", "st-info"]),
                                         ("pyocd", ["pyocd"]), ("openocd", ["openocd"])])
def test_tool_failure_is_exit_1(probe, tools, image, fake_env, monkeypatch, capsys):
    fake_env["install"](*tools)
    monkeypatch.setenv("FAKE_MODE", "fail")
    rc = flash.main(["--elf", str(image[0]), "--probe", probe, "--out", str(fake_env["tmp"] / "w")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "error:" in err and "status" in err


@pytest.mark.parametrize("probe,tools", [("st-flash", ["st-flash", "st-info"]),
                                         ("pyocd", ["pyocd"]), ("openocd", ["openocd"])])
def test_failed_verification_is_exit_3(probe, tools, image, fake_env, monkeypatch, capsys):
    fake_env["install"](*tools)
    monkeypatch.setenv("FAKE_MODE", "corrupt")
    rc = flash.main(["--elf", str(image[0]), "--probe", probe, "--out", str(fake_env["tmp"] / "w")])
    err = capsys.readouterr().err
    assert rc == flash.EXIT_VERIFY == 3
    assert "verification failed" in err
    if probe != "openocd":
        assert "from byte 100 (0x08000064)" in err
        assert "reset" not in fake_env["log"].read_text().split("read")[-1]  # not started


def test_mass_storage_copy_and_fail_txt(image, fake_env, capsys):
    drive = fake_env["tmp"] / "media" / "user" / "NODE_F746ZG"
    drive.mkdir(parents=True)
    (drive / "DETAILS.TXT").write_text("Version: 0221")
    assert flash.main(["--elf", str(image[0]), "--probe", "mass-storage"]) == 0
    assert (drive / "firmware.bin").read_bytes() == image[1].read_bytes()
    assert f"serial port: {fake_env['tty']}" in capsys.readouterr().out
    (drive / "firmware.bin").unlink()
    (drive / "FAIL.TXT").write_text("The interface firmware FAILED to reset/halt the target MCU")
    assert flash.main(["--elf", str(image[0]), "--probe", "mass-storage"]) == 3
    assert "FAIL.TXT" in capsys.readouterr().err


def test_no_tool_and_no_board_says_what_to_do(image, fake_env, capsys):
    assert flash.main(["--elf", str(image[0])]) == 1
    err = capsys.readouterr().err
    assert "no nucleo-f746 board found" in err and "connect" in err
    assert "stlink-tools" in err and "openocd" in err and "pip install pyocd" in err
    assert flash.main(["--elf", str(image[0]), "--probe", "st-flash"]) == 1
    assert "no flashing tool found" in capsys.readouterr().err


def test_st_flash_without_board(image, fake_env, capsys):
    fake_env["install"]("st-flash", "st-info")
    (fake_env["tmp"] / "bin" / "st-info").write_text(
        f"#!{sys.executable}\nprint('Found 0 stlink programmers')\n")
    assert flash.main(["--elf", str(image[0]), "--probe", "st-flash"]) == 1
    assert "no nucleo-f746 board found" in capsys.readouterr().err


def test_missing_plan_or_qemu_board(image, fake_env, capsys, tmp_path):
    assert flash.main(["--plan", str(tmp_path / "plan.json")]) == 1
    assert "plan file" in capsys.readouterr().err
    assert flash.main(["--board", "qemu-mps2-an500", "--elf", str(image[0])]) == 1
    assert "is not flashed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        flash.main(["--elf", str(image[0]), "--probe", "jtag-magic"])
