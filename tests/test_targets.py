"""Target descriptors: every shipped file loads, numbers match Vela's tables, the schema is strict."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from hwopt.errors import TargetError
from hwopt.targets import Family, Target, list_targets, resolve_target
from hwopt.targets.ethos_n.variants import VARIANTS
from hwopt.targets.target import DESCRIPTOR_DIR

U_TARGETS = ["ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u65-512",
             "ethos-u85-128", "ethos-u85-256", "ethos-u85-512", "ethos-u85-1024", "ethos-u85-2048"]
N_TARGETS = ["ethos-n78-1tops-2ple", "ethos-n78-1tops-4ple", "ethos-n78-2tops-2ple", "ethos-n78-2tops-4ple",
             "ethos-n78-4tops-2ple", "ethos-n78-4tops-4ple", "ethos-n78-8tops-2ple"]


def vela_ini() -> configparser.ConfigParser:
    import ethosu

    ini = configparser.ConfigParser()
    ini.read(Path(next(iter(ethosu.__path__))) / "config_files" / "Arm" / "vela.ini")
    return ini


def test_shipped_list_is_complete() -> None:
    assert list_targets() == N_TARGETS + U_TARGETS  # natural order within each family


@pytest.mark.parametrize("name", U_TARGETS + N_TARGETS)
def test_every_shipped_descriptor_loads(name: str) -> None:
    t = resolve_target(name)
    assert isinstance(t, Target) and t.name == name and t.source is not None and t.source.parent == DESCRIPTOR_DIR
    assert t.clock_hz > 0 and t.npu.macs > 0


# MACs/cycle, cores, OFM micro-block, SHRAM banks (ethos-u-facts §1, Vela architecture_features.py)
U_TABLE = {
    "ethos-u55-32": (32, 1, (1, 1, 4), 16), "ethos-u55-64": (64, 1, (1, 1, 8), 16),
    "ethos-u55-128": (128, 1, (2, 1, 8), 24), "ethos-u55-256": (256, 1, (2, 2, 8), 48),
    "ethos-u65-256": (256, 1, (2, 2, 8), 48), "ethos-u65-512": (256, 2, (2, 2, 8), 48),
}


@pytest.mark.parametrize("name", list(U_TABLE))
def test_u55_u65_hardware_numbers(name: str) -> None:
    macs, cores, ublock, banks = U_TABLE[name]
    t = resolve_target(name)
    assert (t.npu.macs, t.npu.cores, t.npu.ofm_ublock, t.npu.shram_banks) == (macs, cores, ublock, banks)
    assert t.npu.weight_streams == 1
    assert t.npu.axi_bytes_per_cycle == (8 if "u55" in name else 16)
    # the micro-block times the 8-wide dot product is the MAC count (Vela asserts the same)
    assert ublock[0] * ublock[1] * ublock[2] * 8 == macs


@pytest.mark.parametrize(("name", "streams"), [("ethos-u85-128", 1), ("ethos-u85-256", 1), ("ethos-u85-512", 2),
                                                ("ethos-u85-1024", 4), ("ethos-u85-2048", 4)])
def test_u85_numbers(name: str, streams: int) -> None:
    t = resolve_target(name)
    assert t.npu.weight_streams == streams and t.npu.cores == 1 and t.npu.shram_banks is None
    assert t.npu.macs == int(name.rsplit("-", 1)[1])
    assert t.vela_accelerator() == name


@pytest.mark.parametrize(("family", "system", "mode"), [
    ("ethos-u55-128", "Ethos_U55_High_End_Embedded", "Shared_Sram"),
    ("ethos-u65-256", "Ethos_U65_Client_Server", "Dedicated_Sram_384KB"),
    ("ethos-u85-256", "Ethos_U85_SYS_DRAM_Mid", "Dedicated_Sram_384KB"),
])
def test_defaults_are_velas(family: str, system: str, mode: str) -> None:
    t = resolve_target(family)
    assert t.system is not None and t.memory_mode is not None
    assert (t.system.name, t.memory_mode.name) == (system, mode)


def test_system_configs_transcribe_vela_ini() -> None:
    """Every vela.ini number appears in the descriptor (read independently with configparser)."""
    ini = vela_ini()
    t = resolve_target("ethos-u55-128")
    sections = [s for s in ini.sections() if s.startswith("System_Config.")]
    assert sorted(t.system_configs) == sorted(s.split(".", 1)[1] for s in sections)
    for sec in sections:
        name = sec.split(".", 1)[1]
        sc = t.select(system_config=name).system
        assert sc is not None
        assert sc.core_clock_hz == float(ini[sec]["core_clock"])
        assert (sc.axi0_port, sc.axi1_port) == (ini[sec]["axi0_port"], ini[sec]["axi1_port"])
        for mem in {sc.axi0_port, sc.axi1_port}:
            m = sc.memories[mem]
            for key in ("clock_scale", "ports_used", "burst_length", "read_latency", "write_latency", "max_reads",
                        "max_writes"):
                expected = float(ini[sec].get(f"{mem}_{key}", "1"))
                assert float(getattr(m, key)) == expected, (name, mem, key)
    modes = [s for s in ini.sections() if s.startswith("Memory_Mode.")]
    assert sorted(t.memory_modes) == sorted(s.split(".", 1)[1] for s in modes)
    mm = t.select(memory_mode="Dedicated_Sram_256KB").memory_mode
    assert mm is not None and (mm.arena_cache_size, mm.arena_mem_area, mm.cache_mem_area) == (262144, "Axi1", "Axi0")


def test_bandwidths() -> None:
    t = resolve_target("ethos-u55-128")
    # U55 High-End Embedded: SRAM 8 B/cycle (4 GB/s at 500 MHz), flash x0.125 = 1 B/cycle
    assert t.bandwidth("Sram") == 8.0 and t.bandwidth("OffChipFlash") == 1.0
    assert t.const_memory == "OffChipFlash" and t.arena_memory == "Sram" and t.arena_limit == 1 << 32
    u85 = resolve_target("ethos-u85-256")
    assert u85.bandwidth("Sram") == 32.0 and u85.bandwidth("Dram") == 12.0 and u85.arena_limit == 393216
    # SRAM-only: constants move to OnChipFlash with SRAM characteristics, as in Vela
    so = resolve_target("ethos-u55-128", memory_mode="Sram_Only")
    assert so.const_memory == "OnChipFlash" and so.bandwidth("OnChipFlash") == 8.0


@pytest.mark.parametrize("name", N_TARGETS)
def test_n78_agrees_with_variants_table(name: str) -> None:
    t = resolve_target(name)
    assert t.family is Family.ETHOS_N78 and t.system is None and t.memory_mode is None
    assert t.n78 == VARIANTS[name]
    assert t.npu.macs == VARIANTS[name].macs_per_cycle
    with pytest.raises(TargetError):
        t.vela_accelerator()


def test_n78_tops_names() -> None:
    """2 ops/MAC at 1 GHz reproduces the variant names (ethos-n-facts §2)."""
    for name in N_TARGETS:
        tops = int(name.split("-")[2].removesuffix("tops"))
        t = resolve_target(name)
        assert 2 * t.npu.macs * t.clock_hz / 1e12 == pytest.approx(tops * 1.024, rel=0.01)


def test_select_unknown_names() -> None:
    with pytest.raises(TargetError, match="unknown system config 'Nope'"):
        resolve_target("ethos-u55-128", system_config="Nope")
    with pytest.raises(TargetError, match="unknown memory mode 'Nope'"):
        resolve_target("ethos-u55-128", memory_mode="Nope")
    with pytest.raises(TargetError, match="unknown target"):
        resolve_target("ethos-u99-1")
    with pytest.raises(TargetError, match="abstract"):
        resolve_target("_ethos-u55")


# --- user descriptors and strict schema -------------------------------------------------------

def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_user_descriptor_extends_shipped(tmp_path: Path) -> None:
    p = write(tmp_path, "slow.toml", """
extends = "ethos-u55-128"
[target]
name = "my-u55"
[system_config.Ethos_U55_High_End_Embedded]
core_clock_hz = 200e6
[system_config.Ethos_U55_High_End_Embedded.OffChipFlash]
clock_scale = 0.03125
""")
    t = resolve_target(str(p))
    assert t.name == "my-u55" and t.clock_hz == 200e6 and t.bandwidth("OffChipFlash") == 0.25
    assert t.npu == resolve_target("ethos-u55-128").npu and t.source == p.resolve()
    # a relative path to another user file works too
    q = write(tmp_path, "child.toml", 'extends = "slow.toml"\n[target]\nname = "child"\n')
    assert resolve_target(str(q)).clock_hz == 200e6


@pytest.mark.parametrize(("text", "message"), [
    ('extends = "ethos-u55-128"\n[npu]\nmacz = 3\n', r"\[npu\] unknown key 'macz'"),
    ('extends = "ethos-u55-128"\n[target]\ncolour = "red"\n', r"\[target\] unknown key 'colour'"),
    ('extends = "ethos-u55-128"\n[system_config.Ethos_U55_High_End_Embedded.Sram]\nspeed = 1\n',
     r"\[system_config.Ethos_U55_High_End_Embedded.Sram\] unknown key 'speed'"),
    ('extends = "ethos-u55-128"\n[memory_mode.Shared_Sram]\narena = 1\n', r"\[memory_mode.Shared_Sram\] unknown key 'arena'"),
    ('extends = "ethos-u55-128"\n[wheels]\nn = 4\n', r"unknown top-level key or section 'wheels'"),
    ('extends = "ethos-u55-128"\n[npu]\nmacs = "many"\n', r"\[npu\] macs must be int"),
    ('extends = "ethos-u55-128"\n[system_config.New]\naxi0_port = "Sram"\naxi1_port = "Dram"\n',
     r"\[system_config.New\] missing key 'core_clock_hz'"),
    ('extends = "ethos-u55-128"\n[system_config.New]\ncore_clock_hz = 1e8\naxi0_port = "Sram"\naxi1_port = "Dram"\n'
     '[system_config.New.Sram]\nclock_scale = 1.0\n', r"\[system_config.New.Sram\] missing key 'ports_used'"),
    ('extends = "ethos-u55-128"\n[target]\ndefault_memory_mode = "Nope"\n', r"default_memory_mode 'Nope' is not defined"),
    ('extends = "ethos-u55-128"\n[target]\nfamily = "ethos-x"\n', r"family 'ethos-x'"),
    ('extends = "ethos-u55-128"\n[npu]\nofm_ublock = [2, 1]\n', r"ofm_ublock must be a list of three ints"),
    ('extends = "ethos-u55-128"\n[npu]\nmacs = -4\n', r"macs must be a positive int"),
    ('extends = "ethos-n78-4tops-4ple"\n[npu]\nmacs = 1000\n', r"N78 geometry gives 2048"),
    ('extends = "ethos-n78-4tops-4ple"\n[n78]\nsram_kib = 0\n', r"\[n78\] sram_kib must be a positive int"),
    ('[target]\nname = "x"\nfamily = "ethos-u55"\n', r"\[npu\] missing key 'macs'"),
    ('extends = "no-such-target"\n', r"unknown target 'no-such-target'"),
    ('extends = "ethos-u55-128"\n[target\n', r"not valid TOML"),
])
def test_strict_schema_errors_name_file_section_key(tmp_path: Path, text: str, message: str) -> None:
    p = write(tmp_path, "bad.toml", text)
    with pytest.raises(TargetError, match=message) as info:
        resolve_target(str(p))
    assert "bad.toml" in str(info.value)


def test_circular_extends(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", 'extends = "b.toml"\n')
    write(tmp_path, "b.toml", 'extends = "a.toml"\n')
    with pytest.raises(TargetError, match="circular extends"):
        resolve_target(str(tmp_path / "a.toml"))


def test_missing_file() -> None:
    with pytest.raises(TargetError, match="not found"):
        resolve_target("/nonexistent/dir/x.toml")


def test_targets_cli(run_cli) -> None:  # type: ignore[no-untyped-def]
    import json

    r = run_cli("targets", "--json")
    assert r.code == 0
    data = json.loads(r.out)
    assert data["schema"] == "hwopt.targets/1"
    rows = {row["name"]: row for row in data["targets"]}
    assert set(rows) == set(U_TARGETS + N_TARGETS)
    assert rows["ethos-u55-128"]["clock_hz"] == 500e6 and rows["ethos-u55-128"]["memory_mode"] == "Shared_Sram"
    assert rows["ethos-u65-512"]["macs_per_cycle"] == 512 and rows["ethos-n78-8tops-2ple"]["sram_bytes"] == 2 << 20
    assert rows["ethos-n78-1tops-2ple"]["engines"] == ["analytic"]
    text = run_cli("targets")
    assert text.code == 0 and "ethos-u85-2048" in text.out and "Ethos_U65_Client_Server" in text.out
