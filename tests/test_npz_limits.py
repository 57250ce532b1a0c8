"""--data / --calibration archives are sized from their headers before anything is decompressed."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, CliRunner

from hwopt.errors import DataError
from hwopt.fileio import ENV_MAX_DATA, load_npz

EXAMPLE = ROOT / "hwopt" / "example" / "example_int8.tflite"


def _bomb(path: Path, megabytes: int) -> Path:
    """A deflated member of `megabytes` MiB of zeros: a few hundred KiB on disk."""
    arr_bytes = megabytes << 20
    hdr = io.BytesIO()
    np.lib.format.write_array_header_1_0(hdr, {"descr": "|i1", "fortran_order": False, "shape": (arr_bytes,)})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf, zf.open("input.npy", "w", force_zip64=True) as fh:
        fh.write(hdr.getvalue())
        chunk = bytes(1 << 20)
        for _ in range(megabytes):
            fh.write(chunk)
    return path


def test_a_valid_archive_loads(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(p, a=np.arange(12, dtype=np.int8).reshape(3, 4), labels=np.array([1, 2, 3]))
    arrays = load_npz(p)
    assert sorted(arrays) == ["a", "labels"] and arrays["a"].shape == (3, 4)


def test_a_zip_bomb_is_refused_from_the_zip_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = _bomb(tmp_path / "bomb.npz", 64)
    assert bomb.stat().st_size < 1 << 20  # 64 MiB of data in < 1 MiB of file
    monkeypatch.setenv(ENV_MAX_DATA, "16")
    with pytest.raises(DataError, match=r"would unpack to 67,108,9\d\d bytes, more than the 16,777,216-byte limit"):
        load_npz(bomb)


def test_a_lying_npy_header_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "lie.npz"
    hdr = io.BytesIO()
    np.lib.format.write_array_header_1_0(hdr, {"descr": "<f8", "fortran_order": False, "shape": (1 << 20, 1 << 20)})
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("x.npy", hdr.getvalue() + bytes(64))
    with pytest.raises(DataError, match="array 'x' declares 8,796,093,022,208 bytes"):
        load_npz(p)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not a zip", b"\x00" * 100])
def test_garbage_is_a_data_error(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "g.npz"
    p.write_bytes(content)
    with pytest.raises(DataError, match="cannot read"):
        load_npz(p)


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "o.npz"
    np.savez(p, a=np.array([object(), 1], dtype=object).astype(str))  # a plain string array is fine
    load_npz(p)
    with zipfile.ZipFile(p, "w") as zf:
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        zf.writestr("o.npy", buf.getvalue())
    with pytest.raises(DataError, match="holds Python objects"):
        load_npz(p)


def test_devices_are_not_data(run_cli: CliRunner, tmp_path: Path) -> None:
    r = run_cli("enforce", EXAMPLE, "--sparsity", "0.5", "--data", "/dev/zero", "-o", tmp_path / "o.tflite")
    assert r.code == 2 and "is not a regular file" in r.err


def test_enforce_with_a_bomb_is_exit_2(run_cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_MAX_DATA, "16")
    r = run_cli("enforce", EXAMPLE, "--sparsity", "0.5", "--data", _bomb(tmp_path / "b.npz", 32), "-o", tmp_path / "o.tflite")
    assert r.code == 2 and "more than the 16,777,216-byte limit" in r.err and not (tmp_path / "o.tflite").exists()
