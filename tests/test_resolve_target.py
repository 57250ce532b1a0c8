"""resolve_target: every spelling, the family defaults, the cache, and every bad descriptor value as exit 2."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from hwopt.errors import TargetError
from hwopt.targets import FAMILY_DEFAULTS, Family, Target, family_default, list_targets, resolve_target
from hwopt.targets.target import DESCRIPTOR_DIR

EXAMPLE = Path(__file__).resolve().parent.parent / "hwopt" / "example" / "example_int8.tflite"


@pytest.fixture
def example_model() -> Path:
    """The int8 example model bundled with hwopt (part of the package, so never skipped)."""
    assert EXAMPLE.is_file()
    return EXAMPLE


@pytest.mark.parametrize(("spelling", "name"), [
    ("ethos-u55-128", "ethos-u55-128"), ("Ethos-U55-128", "ethos-u55-128"), ("ETHOS_U55_128", "ethos-u55-128"),
    ("u55-128", "ethos-u55-128"), ("U55_128", "ethos-u55-128"), ("ethosu55-128", "ethos-u55-128"),
    (" ethos-u65-512 ", "ethos-u65-512"), ("u85-2048", "ethos-u85-2048"), ("Ethos_U85_1024", "ethos-u85-1024"),
    ("ethos-n78-4tops-2ple", "ethos-n78-4tops-2ple"), ("Ethos-N78_8TOPS_2PLE_RATIO", "ethos-n78-8tops-2ple"),
    ("n78-1tops-4ple", "ethos-n78-1tops-4ple"),
])
def test_every_spelling_of_a_shipped_name(spelling: str, name: str) -> None:
    t = resolve_target(spelling)
    assert t.name == name and t.source == DESCRIPTOR_DIR / f"{name}.toml"
    assert family_default(spelling) is None
    assert t is resolve_target(name)  # one normalised spelling, one cached object


# Vela's own default accelerator is ethos-u55-256 (`vela --help`); each Ethos-U family takes its
# 256-MAC configuration; N78 takes 4TOPS_4PLE_RATIO, Arm NN's Ethos-N default variant.
@pytest.mark.parametrize(("spelling", "name"), [
    ("ethos-u55", "ethos-u55-256"), ("U55", "ethos-u55-256"), ("ethos-u65", "ethos-u65-256"),
    ("Ethos_U85", "ethos-u85-256"), ("ethos-n78", "ethos-n78-4tops-4ple"), ("N78", "ethos-n78-4tops-4ple"),
])
def test_family_names_take_the_documented_default(spelling: str, name: str) -> None:
    t = resolve_target(spelling)
    assert t.name == name and family_default(spelling) == name
    assert FAMILY_DEFAULTS[t.family] == name


def test_vela_default_accelerator_is_the_u55_family_default() -> None:
    """Vela's CLI documents its default accelerator; the U55 family default must be that one."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "ethosu.vela", "--help"], capture_output=True, text=True,
                         check=False, timeout=120).stdout
    assert "(default:\n" in out or "default:" in out
    text = " ".join(out.split())
    assert "Accelerator configuration to use (default: ethos-u55-256)" in text
    assert FAMILY_DEFAULTS[Family.ETHOS_U55] == "ethos-u55-256"


def test_default_engine_and_streams_are_target_properties() -> None:
    assert resolve_target("ethos-u55-128").default_engine == "vela"
    assert resolve_target("ethos-n78").default_engine == "analytic"
    assert resolve_target("ethos-u65-512").weight_streams == 2
    assert resolve_target("ethos-u85-1024").weight_streams == 4
    assert resolve_target("ethos-n78").weight_streams == 1


def test_target_passes_through_and_selects() -> None:
    t = resolve_target("ethos-u55-128")
    assert resolve_target(t) is t
    s = resolve_target(t, memory_mode="Sram_Only")
    assert s.memory_mode is not None and s.memory_mode.name == "Sram_Only"
    assert resolve_target("u55-128", memory_mode="Sram_Only") is resolve_target("ethos-u55-128", memory_mode="Sram_Only")
    assert isinstance(hash(t), int) and t == resolve_target("ethos-u55-128")


def test_path_spellings_and_cache_invalidation(tmp_path: Path) -> None:
    p = tmp_path / "Board.TOML"
    p.write_text('extends = "ethos-u55-128"\n[target]\nname = "board"\n', encoding="utf-8")
    a = resolve_target(str(p))
    assert a.name == "board" and a.spec == str(p.resolve())
    assert resolve_target(p) is a  # a Path is the same spelling as its text
    assert resolve_target(str(p)) is a  # cached while the file is unchanged
    # an edited file is read again (the stamp changes even within the same second)
    p.write_text('extends = "ethos-u55-128"\n[target]\nname = "board2"\n', encoding="utf-8")
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert resolve_target(str(p)).name == "board2"
    # so is a change in a file it extends
    base = tmp_path / "base.toml"
    base.write_text('extends = "ethos-u55-128"\n[target]\nname = "base"\n', encoding="utf-8")
    child = tmp_path / "child.toml"
    child.write_text('extends = "base.toml"\n[target]\nname = "child"\n', encoding="utf-8")
    assert resolve_target(str(child)).clock_hz == 500e6
    time.sleep(0.01)
    base.write_text('extends = "ethos-u55-128"\n[target]\nname = "base"\n'
                    '[system_config.Ethos_U55_High_End_Embedded]\ncore_clock_hz = 100e6\n', encoding="utf-8")
    st = base.stat()
    os.utime(base, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert resolve_target(str(child)).clock_hz == 100e6


@pytest.mark.parametrize("spelling", ["", "  ", "gpu", "ethos-u99-1", "ethos-u55-100", "ethos-n78-3tops-2ple",
                                      "missing.toml", "no/such/dir.toml"])
def test_unknown_spellings(spelling: str) -> None:
    with pytest.raises(TargetError):
        resolve_target(spelling)


def test_not_a_spelling() -> None:
    with pytest.raises(TargetError, match="not int"):
        resolve_target(3)  # type: ignore[arg-type]


def test_every_shipped_target_round_trips_through_its_spec() -> None:
    for name in list_targets():
        t = resolve_target(name)
        assert isinstance(t, Target) and resolve_target(t.spec) is t


# --- every descriptor value checked: one line naming file, section and key; exit 2 -----------

U55 = 'extends = "ethos-u55-128"\n'
SYS = "[system_config.Ethos_U55_High_End_Embedded]\n"
SRAM = "[system_config.Ethos_U55_High_End_Embedded.Sram]\n"
N78 = 'extends = "ethos-n78-4tops-4ple"\n[n78]\n'

BAD_VALUES = [
    (U55 + SYS + "core_clock_hz = -5e8\n", r"\[system_config.Ethos_U55_High_End_Embedded\] core_clock_hz"),
    (U55 + SYS + "core_clock_hz = 1e-300\n", r"\[system_config.Ethos_U55_High_End_Embedded\] core_clock_hz"),
    (U55 + SYS + "core_clock_hz = inf\n", r"core_clock_hz must be a finite number"),
    (U55 + SYS + "core_clock_hz = nan\n", r"core_clock_hz must be a finite number"),
    (U55 + SYS + "core_clock_hz = 0\n", r"core_clock_hz"),
    (U55 + SYS + "core_clock_hz = 100000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\n",
     r"core_clock_hz must be a finite number"),
    (U55 + SRAM + "clock_scale = 0.0\n", r"\[system_config.Ethos_U55_High_End_Embedded.Sram\] clock_scale"),
    (U55 + SRAM + "clock_scale = inf\n", r"clock_scale must be a finite number"),
    (U55 + SRAM + "ports_used = 0\n", r"\.Sram\] ports_used must be a positive int"),
    (U55 + SRAM + "read_latency = -1\n", r"\.Sram\] read_latency must be a non-negative int"),
    (U55 + "[npu]\nmacs = 0\n", r"\[npu\] macs must be a positive int"),
    (U55 + "[npu]\naxi_bytes_per_cycle = 0\n", r"\[npu\] axi_bytes_per_cycle"),
    (U55 + "[npu]\naddress_bits = 200\n", r"\[npu\] address_bits"),
    (U55 + "[npu]\ncores = 100000\n", r"\[npu\] cores must be a positive int no larger than"),
    (U55 + "[npu.output_stage]\nconv = inf\n", r"\[npu.output_stage\] conv must be a finite number"),
    (U55 + "[npu.output_stage]\nadd = -1.0\n", r"\[npu.output_stage\] add"),
    (U55 + "[memory_mode.Shared_Sram]\narena_cache_size = -1\n", r"\[memory_mode.Shared_Sram\] arena_cache_size"),
    (N78 + "dma_bytes_per_cycle = 0\n", r"\[n78\] dma_bytes_per_cycle must be a positive int"),
    (N78 + "clock_hz = -1.0\n", r"\[n78\] clock_hz"),
    (N78 + "clock_hz = 1e-300\n", r"\[n78\] clock_hz"),
    (N78 + "clock_hz = inf\n", r"\[n78\] clock_hz must be a finite number"),
    (N78 + "ple_lanes = 1000\n", r"\[n78\] ple_lanes"),
]


@pytest.mark.parametrize(("text", "message"), BAD_VALUES)
def test_bad_values_are_one_target_error(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(TargetError, match=message) as info:
        resolve_target(str(p))
    assert "bad.toml" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("text", "message"), BAD_VALUES[::3])
def test_bad_values_exit_2_in_every_command(run_cli, tmp_path: Path, text: str, message: str,  # type: ignore[no-untyped-def]
                                            example_model: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text, encoding="utf-8")
    for argv in (("estimate", example_model, "--target", p, "--engine", "analytic"),
                 ("encode", example_model, "--target", p),
                 ("compile", example_model, "--target", p, "-o", tmp_path / "out")):
        r = run_cli(*argv)
        assert r.code == 2, (argv, r.err)
        assert r.err.startswith("hwopt: error: ") and r.err.count("\n") == 1 and "bad.toml" in r.err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("spelling", ["gpu", "ethos-u99-1", "", "missing.toml"])
def test_unknown_target_exit_2(run_cli, example_model: Path, spelling: str) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("estimate", example_model, "--target", spelling, "--engine", "analytic")
    assert r.code == 2 and r.err.startswith("hwopt: error: ") and r.err.count("\n") == 1


def test_family_name_on_the_command_line(run_cli, example_model: Path) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("estimate", example_model, "--target", "ethos-u85", "--engine", "analytic", "--json")
    assert r.code == 0
    assert json.loads(r.out)["target"] == "ethos-u85-256"
    assert "ethos-u85 is a family name; using its default configuration ethos-u85-256" in r.err
    r = run_cli("estimate", example_model, "--target", "ethos-n78", "--json")
    assert r.code == 0 and json.loads(r.out)["target"] == "ethos-n78-4tops-4ple"
    assert json.loads(r.out)["engine"] == "analytic"


def test_compile_as_specified_takes_a_family_name(run_cli, example_model: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`hwopt compile --target ethos-u55`, the command as the project was specified, compiles for ethos-u55-256."""
    r = run_cli("compile", example_model, "--target", "ethos-u55", "-o", tmp_path / "out", "--json")
    assert r.code in (0, 1), r.err
    report = json.loads(r.out)
    assert report["target"] == "ethos-u55-256" and report["accelerator"] == "ethos-u55-256"
    assert (tmp_path / "out" / "example_int8_ethos-u55-256.tflite").is_file()
    assert "default configuration ethos-u55-256" in r.err
