"""vela.ini and MLIA profiles in, vela.ini out: the figures equal a bare `vela` run on the same file.

Golden figures come from the `vela` CLI itself (run in a subprocess with `--config FILE.ini`,
its summary CSV read from its output folder), never from hwopt.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from hwopt.engines.estimate import estimate
from hwopt.targets import resolve_target
from hwopt.targets.ethos_u.vela_engine import compile_model
from hwopt.targets.vela_ini import read_vela_ini

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "hwopt" / "example" / "example_int8.tflite"
VELA = Path(sys.executable).parent / "vela"

# Every field Vela reads set away from its defaults and from the shipped values, with inherit
# chains in both kinds of section (the child overrides part of its parent).
CUSTOM_INI = """\
; a board vela.ini
[System_Config.Board_Base]
core_clock=320e6
axi0_port=Sram
axi1_port=OffChipFlash
Sram_clock_scale=0.75
Sram_ports_used=2
Sram_burst_length=16
Sram_read_latency=24
Sram_write_latency=20
Sram_max_reads=6
Sram_max_writes=3
OffChipFlash_clock_scale=0.1875
OffChipFlash_ports_used=1
OffChipFlash_burst_length=64
OffChipFlash_read_latency=96
OffChipFlash_write_latency=12
OffChipFlash_max_reads=3
OffChipFlash_max_writes=1

[System_Config.Ethos_U55_Board]
inherit=System_Config.Board_Base
core_clock=250e6
OffChipFlash_clock_scale=0.09375
OffChipFlash_read_latency=120

[System_Config.Dram_Board]
core_clock=800e6
axi0_port=Sram
axi1_port=Dram
Sram_clock_scale=0.875
Sram_ports_used=2
Sram_burst_length=48
Sram_read_latency=12
Sram_write_latency=10
Sram_max_reads=5
Sram_max_writes=7
Dram_clock_scale=0.3125
Dram_ports_used=2
Dram_burst_length=96
Dram_read_latency=300
Dram_write_latency=150
Dram_max_reads=20
Dram_max_writes=9

[Memory_Mode.Board_Shared]
const_mem_area=Axi1
arena_mem_area=Axi0
cache_mem_area=Axi0

[Memory_Mode.Board_Shared_200KB]
inherit=Memory_Mode.Board_Shared
arena_cache_size=204800

[Memory_Mode.Board_Dedicated]
const_mem_area=Axi1
arena_mem_area=Axi1
cache_mem_area=Axi0
arena_cache_size=300000

[Memory_Mode.Board_Dedicated_Small]
inherit=Memory_Mode.Board_Dedicated
arena_cache_size=163840
"""

CASES = [  # (system config, memory mode, accelerator)
    ("Ethos_U55_Board", "Board_Shared_200KB", "ethos-u55-128"),
    ("Dram_Board", "Board_Dedicated_Small", "ethos-u85-256"),
    ("Dram_Board", "Board_Dedicated_Small", "ethos-u65-512"),
    ("Ethos_U55_Board", "Board_Shared", "ethos-u55-64"),
]


@pytest.fixture(scope="module")
def example() -> Path:
    assert EXAMPLE.is_file(), "the bundled example model is part of hwopt (tools/make_example_model.py)"
    return EXAMPLE


@pytest.fixture()
def ini(tmp_path: Path) -> Path:
    path = tmp_path / "board.ini"
    path.write_text(CUSTOM_INI)
    return path


def vela_summary(model: Path, config: Path, system: str, mode: str, accelerator: str, out: Path) -> dict[str, str]:
    """A bare `vela` run with a config file; its summary CSV row."""
    if not VELA.is_file():
        pytest.skip("vela console script not installed next to the Python interpreter")
    proc = subprocess.run([str(VELA), str(model), "--accelerator-config", accelerator, "--config", str(config),
                           "--system-config", system, "--memory-mode", mode, "--output-dir", str(out)],
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (summary,) = out.glob(f"{model.stem}_summary_*.csv")
    with summary.open(newline="") as fh:
        return next(csv.DictReader(fh))


CSV_MEMORY = {"Sram": "sram_memory_used", "Dram": "dram_memory_used", "OnChipFlash": "on_chip_flash_memory_used",
              "OffChipFlash": "off_chip_flash_memory_used"}


def assert_same_as_vela(model: Path, target, row: dict[str, str]) -> None:
    report = estimate(model, target, engine="vela")
    assert report.summary.cycles == int(row["cycles_total"])
    assert report.summary.npu_cycles == int(row["cycles_npu"])
    assert report.summary.peak_sram_bytes == round(float(row["sram_memory_used"]) * 1024)
    assert report.clock_hz == float(row["core_clock"])
    res = compile_model(model.read_bytes(), target)
    if target.const_memory != target.arena_memory:  # the const memory holds only the read-only data
        assert res.perf.read_only_peak_bytes == round(float(row[CSV_MEMORY[target.const_memory]]) * 1024)
    assert round(float(row["arena_cache_size"]) * 1024) == target.arena_limit


@pytest.mark.parametrize(("system", "mode", "accelerator"), CASES)
def test_imported_ini_equals_bare_vela(run_cli, example, ini, tmp_path, system, mode, accelerator) -> None:
    target = resolve_target(f"{ini}:{system}:{mode}", accelerator=accelerator)
    assert target.vela_accelerator() == accelerator
    row = vela_summary(example, ini, system, mode, accelerator, tmp_path / "vela")
    assert_same_as_vela(example, target, row)
    # the descriptor `hwopt targets import` writes gives the same figures
    toml = tmp_path / "imported.toml"
    res = run_cli("targets", "import", f"{ini}:{system}:{mode}", "--accelerator", accelerator, "-o", str(toml))
    assert res.code == 0, res.err
    assert_same_as_vela(example, resolve_target(str(toml)), row)


def test_inherit_chain_and_every_field_carried(ini) -> None:
    parsed = read_vela_ini(ini)
    sc = parsed.system_config("Ethos_U55_Board")
    assert sc.core_clock_hz == 250e6  # the child's own
    flash, sram = sc.memories["OffChipFlash"], sc.memories["Sram"]
    assert (flash.clock_scale, flash.read_latency, flash.burst_length, flash.write_latency) == (0.09375, 120, 64, 12)
    assert (sram.clock_scale, sram.ports_used, sram.burst_length, sram.read_latency, sram.write_latency,
            sram.max_reads, sram.max_writes) == (0.75, 2, 16, 24, 20, 6, 3)
    mm = parsed.memory_mode("Board_Dedicated_Small")
    assert (mm.const_mem_area, mm.arena_mem_area, mm.cache_mem_area, mm.arena_cache_size) == ("Axi1", "Axi1", "Axi0", 163840)
    assert parsed.memory_mode("Board_Shared").arena_cache_size is None


def test_import_command_writes_an_equivalent_descriptor(run_cli, ini, tmp_path) -> None:
    out = tmp_path / "my.toml"
    res = run_cli("targets", "import", str(ini), "--system-config", "Ethos_U55_Board", "--memory-mode",
                  "Board_Shared_200KB", "--accelerator", "ethos-u55-128", "--name", "my-board", "-o", str(out))
    assert res.code == 0, res.err
    text = out.read_text()
    assert text.splitlines()[1] == 'extends = "ethos-u55-128"'
    imported = resolve_target(str(out))
    direct = resolve_target(f"{ini}:Ethos_U55_Board:Board_Shared_200KB", accelerator="ethos-u55-128")
    assert imported.name == "my-board"
    assert (imported.system, imported.memory_mode, imported.npu) == (direct.system, direct.memory_mode, direct.npu)
    assert imported.vela_accelerator() == "ethos-u55-128"
    assert "ethos-u55-128" in imported.description


def test_shipped_name_with_fewer_keys_is_written_standalone(run_cli, tmp_path) -> None:
    """A memory mode named like a shipped one but without its arena size cannot be an `extends` merge."""
    path = tmp_path / "odd.ini"
    path.write_text(CUSTOM_INI + "\n[Memory_Mode.Dedicated_Sram_384KB]\nconst_mem_area=Axi1\narena_mem_area=Axi1\n"
                    "cache_mem_area=Axi0\n")
    out = tmp_path / "odd.toml"
    res = run_cli("targets", "import", f"{path}:Dram_Board:Dedicated_Sram_384KB", "--accelerator", "ethos-u85-256",
                  "-o", str(out))
    assert res.code == 0, res.err
    assert "extends" not in out.read_text()
    t = resolve_target(str(out))
    assert t.memory_mode is not None and t.memory_mode.arena_cache_size is None
    assert t.arena_limit == 1 << t.npu.address_bits


def test_export_then_vela_gives_the_descriptor_figures(run_cli, example, tmp_path) -> None:
    desc = tmp_path / "slow.toml"
    desc.write_text('extends = "ethos-u55-128"\n[target]\nname = "slow-u55"\n'
                    "[system_config.Ethos_U55_High_End_Embedded]\ncore_clock_hz = 200e6\n"
                    "[system_config.Ethos_U55_High_End_Embedded.OffChipFlash]\nclock_scale = 0.03125\nread_latency = 80\n"
                    '[memory_mode.Shared_Sram]\narena_cache_size = 180000\n')
    out = tmp_path / "slow.ini"
    res = run_cli("targets", "export", str(desc), "--vela-ini", "-o", str(out))
    assert res.code == 0, res.err
    target = resolve_target(str(desc))
    row = vela_summary(example, out, "Ethos_U55_High_End_Embedded", "Shared_Sram", "ethos-u55-128", tmp_path / "v")
    assert_same_as_vela(example, target, row)
    # and the exported file reads back into the same records
    back = resolve_target(f"{out}:Ethos_U55_High_End_Embedded:Shared_Sram", accelerator="ethos-u55-128")
    assert (back.system, back.memory_mode) == (target.system, target.memory_mode)


def test_export_of_every_shipped_ethos_u_default_round_trips(tmp_path) -> None:
    from hwopt.targets.descriptor import list_targets
    from hwopt.targets.vela_ini import export_vela_ini

    for name in (n for n in list_targets() if n.startswith("ethos-u")):
        t = resolve_target(name)
        path = tmp_path / f"{name}.ini"
        path.write_text(export_vela_ini(t))
        back = resolve_target(str(path), accelerator=name)
        assert (back.system, back.memory_mode, back.npu) == (t.system, t.memory_mode, t.npu), name


# --- bad ini: one line naming the section and key, exit 2 -----------------------------------------

GOOD_S = "[System_Config.S]\ncore_clock=1e8\naxi0_port=Sram\naxi1_port=OffChipFlash\n" + "".join(
    f"{m}_{k}=4\n" for m in ("Sram", "OffChipFlash")
    for k in ("clock_scale", "burst_length", "read_latency", "write_latency", "max_reads", "max_writes"))
BAD = {
    "missing-key": (GOOD_S.replace("OffChipFlash_max_writes=4\n", ""), "[System_Config.S] missing key 'OffChipFlash_max_writes'"),
    "bad-number": (GOOD_S.replace("core_clock=1e8", "core_clock=fast"), "[System_Config.S] core_clock must be a number"),
    "bad-int": (GOOD_S.replace("Sram_burst_length=4", "Sram_burst_length=4.5"), "[System_Config.S] Sram_burst_length must be an integer"),
    "zero-scale": (GOOD_S.replace("Sram_clock_scale=4", "Sram_clock_scale=0"), "[System_Config.S] Sram_clock_scale must be"),
    "unknown-key": (GOOD_S + "Sram_burst_lenght=4\n", "[System_Config.S] unknown key 'Sram_burst_lenght'"),
    "bad-port": (GOOD_S.replace("axi0_port=Sram", "axi0_port=Flash"), "[System_Config.S] axi0_port must be one of"),
    "self-inherit": ("[System_Config.S]\ninherit=System_Config.S\n", "[System_Config.S] inherit: circular"),
    "forward-inherit": ("[System_Config.S]\ninherit=System_Config.T\n" + GOOD_S.replace(".S]", ".T]"),
                        "[System_Config.S] inherit: [System_Config.T] must come before"),
    "missing-parent": ("[System_Config.S]\ninherit=System_Config.Nope\n", "[System_Config.S] inherit: no section"),
    "syntax": ("core_clock=1\n", "invalid Vela config"),
    "no-systems": ("[Memory_Mode.M]\nconst_mem_area=Axi1\n", "no [System_Config.NAME] section"),
    "bad-area": (GOOD_S + "[Memory_Mode.M]\nconst_mem_area=Axi2\narena_mem_area=Axi0\ncache_mem_area=Axi0\n",
                 "[Memory_Mode.M] const_mem_area must be Axi0 or Axi1"),
    "arena-in-flash": (GOOD_S + "[Memory_Mode.M]\nconst_mem_area=Axi1\narena_mem_area=Axi1\ncache_mem_area=Axi0\n",
                       "[Memory_Mode.M] arena_mem_area Axi1 is OffChipFlash"),
    "const-in-sram": (GOOD_S + "[Memory_Mode.M]\nconst_mem_area=Axi0\narena_mem_area=Axi1\ncache_mem_area=Axi0\n",
                      "[Memory_Mode.M] const_mem_area Axi0 is Sram"),
    "cache-in-flash": (GOOD_S + "[Memory_Mode.M]\nconst_mem_area=Axi1\narena_mem_area=Axi0\ncache_mem_area=Axi1\n",
                       "[Memory_Mode.M] cache_mem_area Axi1 is OffChipFlash"),
    "arena-too-big": (GOOD_S + "[Memory_Mode.M]\nconst_mem_area=Axi1\narena_mem_area=Axi0\ncache_mem_area=Axi0\n"
                      "arena_cache_size=8589934592\n", "[Memory_Mode.M] arena_cache_size 8589934592 exceeds"),
    "mode-missing": (GOOD_S + "[Memory_Mode.M]\nconst_mem_area=Axi1\narena_mem_area=Axi0\n",
                     "[Memory_Mode.M] missing key 'cache_mem_area'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_ini_is_one_line_exit_2(run_cli, ini, tmp_path, case) -> None:
    text, expected = BAD[case]
    path = tmp_path / "bad.ini"
    if "[Memory_Mode.M]" not in text:
        text += "\n[Memory_Mode.M]\nconst_mem_area=Axi1\narena_mem_area=Axi0\ncache_mem_area=Axi0\n"
    path.write_text(text)
    res = run_cli("estimate", str(EXAMPLE), "--target", f"{path}:S:M", "--accelerator", "ethos-u55-128")
    assert res.code == 2, res.err
    assert res.err.startswith("hwopt: error: ") and res.err.count("\n") == 1, res.err
    assert expected in res.err, res.err


def test_bad_memory_mode_and_unknown_section_name(run_cli, ini) -> None:
    res = run_cli("estimate", str(EXAMPLE), "--target", f"{ini}:Ethos_U55_Board:Nope", "--accelerator", "ethos-u55-128")
    assert res.code == 2 and "no [Memory_Mode.Nope] section" in res.err, res.err
    res = run_cli("estimate", str(EXAMPLE), "--target", f"{ini}:Ethos_U55_Board:Board_Shared", "--accelerator", "ethos-u99")
    assert res.code == 2 and res.err.count("\n") == 1, res.err


# --- MLIA target profiles ---------------------------------------------------------------------------

def test_mlia_profiles_resolve_to_the_same_target(run_cli, example, ini, tmp_path) -> None:
    new_style = tmp_path / "board-new.toml"
    new_style.write_text(f'profile_name = "board"\ntarget_type = "ethos-u85"\ndescription = "my board"\n'
                         '[[components]]\ntype = "npu"\nfamily = "ethos-u"\nmodel = "u85"\nvariant = "256"\n'
                         f'[config]\nmac = 256\nsystem_config = "Dram_Board"\nmemory_mode = "Board_Dedicated_Small"\n'
                         f'config = "{ini.name}"\n')
    old_style = tmp_path / "board-old.toml"
    old_style.write_text(f'target = "ethos-u85"\nmac = 256\nsystem_config = "Dram_Board"\n'
                         f'memory_mode = "Board_Dedicated_Small"\nconfig = "{ini}"\n')
    direct = resolve_target(f"{ini}:Dram_Board:Board_Dedicated_Small", accelerator="ethos-u85-256")
    for path in (new_style, old_style):
        t = resolve_target(str(path))
        assert type(t) is type(direct)
        assert (t.system, t.memory_mode, t.npu, t.vela_accelerator()) == (direct.system, direct.memory_mode,
                                                                           direct.npu, "ethos-u85-256")
    assert resolve_target(str(new_style)).name == "board"
    res = run_cli("estimate", str(example), "--target", str(new_style), "--json")
    assert res.code == 0, res.err
    row = vela_summary(example, ini, "Dram_Board", "Board_Dedicated_Small", "ethos-u85-256", tmp_path / "v")
    import json

    assert json.loads(res.out)["summary"]["cycles"] == int(row["cycles_total"])
    out = tmp_path / "imported.toml"
    assert run_cli("targets", "import", str(new_style), "-o", str(out)).code == 0
    assert resolve_target(str(out)).system == direct.system


def test_mlia_profile_without_config_uses_the_stock_vela_ini(tmp_path) -> None:
    path = tmp_path / "u55.toml"
    path.write_text('profile_name = "ethos-u55-128"\ntarget_type = "ethos-u55"\n[config]\nmac = 128\n'
                    'memory_mode = "Shared_Sram"\nsystem_config = "Ethos_U55_Deep_Embedded"\n')
    t = resolve_target(str(path))
    shipped = resolve_target("ethos-u55-128", system_config="Ethos_U55_Deep_Embedded", memory_mode="Shared_Sram")
    assert (t.system, t.memory_mode, t.npu) == (shipped.system, shipped.memory_mode, shipped.npu)


@pytest.mark.parametrize(("body", "expected"), [
    ('target_type = "cortex-a"\n[config]\nmac = 128\n', "not an Ethos-U NPU"),
    ('target_type = "ethos-u55"\n[config]\nmac = 100\nsystem_config = "x"\nmemory_mode = "y"\n', "mac 100 is not"),
    ('target_type = "ethos-u55"\n[config]\nmac = 128\nmemory_mode = "Shared_Sram"\n', "missing key 'system_config'"),
    ('target_type = "ethos-u55"\n[config]\nmac = 128\nsystem_config = "Nope"\nmemory_mode = "Shared_Sram"\n',
     "system_config 'Nope' is not in"),
    ('target_type = "ethos-u55"\nmacs = 128\n', "unknown MLIA profile key 'macs'"),
])
def test_bad_mlia_profile_is_one_line_exit_2(run_cli, tmp_path, body, expected) -> None:
    path = tmp_path / "p.toml"
    path.write_text(body)
    res = run_cli("targets", "import", str(path), "-o", str(tmp_path / "o.toml"))
    assert res.code == 2 and res.err.count("\n") == 1 and expected in res.err, res.err
    assert not (tmp_path / "o.toml").exists()


def test_compile_takes_a_vela_ini_target(run_cli, example, ini, tmp_path) -> None:
    res = run_cli("compile", str(example), "--target", str(ini), "--system-config", "Dram_Board", "--memory-mode",
                  "Board_Dedicated", "--accelerator", "ethos-u85-256", "-o", str(tmp_path / "c"), "--json")
    assert res.code == 0, res.err
    import json

    report = json.loads(res.out)
    row = vela_summary(example, ini, "Dram_Board", "Board_Dedicated", "ethos-u85-256", tmp_path / "v")
    assert report["totals"]["cycles"] == int(row["cycles_total"])
    assert report["totals"]["peak_sram_bytes"] == round(float(row["sram_memory_used"]) * 1024)
    # Dedicated SRAM: the DRAM holds the constants and the arena, so the read-only part is at most its total
    assert 0 < report["totals"]["flash_bytes"] <= round(float(row["dram_memory_used"]) * 1024)


@pytest.mark.parametrize("command", ["encode", "check"])
def test_other_commands_take_a_vela_ini_target(run_cli, example, ini, command) -> None:
    spec = f"{ini}:Dram_Board:Board_Dedicated"
    res = run_cli(command, str(example), "--target", spec, "--accelerator", "ethos-u85-512", "--json")
    assert res.code == 0, res.err
    import json

    assert json.loads(res.out)["target"] == "board-Dram_Board-Board_Dedicated"
    bad = run_cli(command, str(example), "--target", "ethos-u55-128", "--accelerator", "ethos-u85-512")
    assert bad.code == 2 and "vela.ini target" in bad.err and bad.err.count("\n") == 1, bad.err


def test_an_ini_target_is_resolved_once_and_again_after_an_edit(ini) -> None:
    import os

    from hwopt.targets import resolve_target

    spec = f"{ini}:Ethos_U55_Board:Board_Shared"
    first = resolve_target(spec, accelerator="ethos-u55-128")
    assert resolve_target(spec, accelerator="ethos-u55-128") is first
    assert resolve_target(spec, accelerator="ethos-u55-64") is not first
    ini.write_text(CUSTOM_INI.replace("core_clock=250e6", "core_clock=260e6"))
    os.utime(ini, ns=(ini.stat().st_atime_ns, ini.stat().st_mtime_ns + 1_000_000_000))
    edited = resolve_target(spec, accelerator="ethos-u55-128")
    assert edited is not first and edited.clock_hz == 260e6 and first.clock_hz == 250e6


def test_import_and_export_never_overwrite_their_inputs(run_cli, ini, tmp_path) -> None:
    before = ini.read_bytes()
    profile = tmp_path / "p.toml"
    profile.write_text(f'target_type = "ethos-u55"\n[config]\nmac = 128\nsystem_config = "Ethos_U55_Board"\n'
                       f'memory_mode = "Board_Shared"\nconfig = "{ini.name}"\n')
    for argv in (("targets", "import", f"{ini}:Ethos_U55_Board:Board_Shared", "-o", str(ini)),
                 ("targets", "export", str(profile), "--vela-ini", "-o", str(ini)),
                 ("targets", "import", str(profile), "-o", str(profile))):
        res = run_cli(*argv)
        assert res.code == 2 and "refusing to overwrite the input file" in res.err, res.err
    assert ini.read_bytes() == before
