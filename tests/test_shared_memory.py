"""Large payloads between hwopt and its isolation worker: through sealed shared memory both ways, by
reference for a sealed input mapping, through the pipes where shared memory is unavailable; no
descriptor or mapping left behind, and the supervisor's crash/time/memory reports unchanged."""

from __future__ import annotations

import contextlib
import gc
import mmap
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CliRunner

from hwopt import isolation, shared_memory
from hwopt.cli.early import read_input_shared
from hwopt.engines.compile import EXAMPLE_MODEL
from hwopt.errors import ModelFormatError, NativeCodeError
from hwopt.fileio import read_input_file
from hwopt.targets import resolve_target
from hwopt.targets.ethos_u import vela_start

pytestmark = pytest.mark.skipif(not shared_memory.supported(),
                                reason="sealed memory files (Linux memfd with sealing, /proc) are not available here")

BIG = 3 << 20  # well above SHM_MIN_BYTES: crosses out of band
SMALL = 64 << 10  # a message whose large bytes went through shared memory is at most this big


def own_fds() -> list[str]:
    """This process's open descriptors, as what each names (`/memfd:hwopt (deleted)` for a memory file)."""
    out = []
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed meanwhile
            out.append(os.readlink(f"/proc/self/fd/{name}"))
    return sorted(out)


def memfds() -> int:
    return sum("memfd:hwopt" in link for link in own_fds())


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[int]]]:
    """Sizes of the pickles crossing the pipes: what the parent sent, what it read back."""
    seen: dict[str, list[int]] = {"sent": [], "read": []}
    real_dumps, real_loads = isolation.dumps, isolation.loads
    real_pickle_loads = isolation.pickle.loads

    def dumps(obj: Any, shm: bool) -> Any:
        payload, oob = real_dumps(obj, shm)
        seen["sent"].append(len(payload))
        return payload, oob

    def loads(data: Any) -> Any:
        seen["read"].append(len(data))
        return real_loads(data)

    class Pickle:  # the pipe path's reader, counted the same way
        def __getattr__(self, name: str) -> Any:
            return getattr(__import__("pickle"), name)

        @staticmethod
        def loads(data: Any) -> Any:
            seen["read"].append(len(data))
            return real_pickle_loads(data)

    monkeypatch.setattr(isolation, "dumps", dumps)
    monkeypatch.setattr(isolation, "loads", loads)
    monkeypatch.setattr(isolation, "pickle", Pickle())
    yield seen


@pytest.fixture
def fresh() -> Iterator[isolation.Worker]:
    w = isolation.Worker()
    yield w
    w.close()


@pytest.fixture
def pipes_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback, forced: as on a system without memfd, sealing or /proc."""
    monkeypatch.setattr(shared_memory, "_supported", False)


def test_large_bytes_cross_both_ways_through_shared_memory(fresh: isolation.Worker, wire: dict[str, list[int]]) -> None:
    data = os.urandom(BIG)
    assert fresh.call("zlib:crc32", data, library="test") == zlib.crc32(data)  # request out of band
    back = fresh.call("builtins:bytes", BIG, library="test")  # reply out of band: 3 MiB of zeros
    assert type(back) is bytes and back == bytes(BIG)
    assert max(wire["sent"]) < SMALL and max(wire["read"]) < SMALL
    small = fresh.call("builtins:bytes", 100, library="test")  # below the threshold: in the pickle
    assert small == bytes(100)


def test_numpy_arrays_cross_both_ways_through_shared_memory_and_stay_writable(
        fresh: isolation.Worker, wire: dict[str, list[int]]) -> None:
    np = pytest.importorskip("numpy")
    c = np.arange(1 << 20, dtype=np.int32).reshape(1024, 1024)
    f = np.asfortranarray(c.astype(">f4"))  # Fortran order, big-endian: both kept
    for a in (c, f, c[:, ::2]):  # the last one is not contiguous: numpy pickles its bytes, out of band too
        back = fresh.call("numpy:copy", a, order="K", library="test")
        assert back.dtype == a.dtype and back.shape == a.shape and np.array_equal(back, a)
        assert back.flags.writeable and back.flags.f_contiguous == a.flags.f_contiguous
    assert max(wire["sent"]) < SMALL and max(wire["read"]) < SMALL
    small = fresh.call("numpy:copy", np.arange(10), library="test")  # below the threshold: in the pickle
    assert small.flags.writeable and small.tolist() == list(range(10))


def test_the_fallback_sends_everything_through_the_pipes(pipes_only: None, fresh: isolation.Worker,
                                                         wire: dict[str, list[int]], tmp_path: Path) -> None:
    data = os.urandom(BIG)
    assert fresh.call("zlib:crc32", data, library="test") == zlib.crc32(data)
    assert fresh.call("builtins:bytes", BIG, library="test") == bytes(BIG)
    assert wire["sent"][0] > BIG and wire["read"][-1] > BIG  # the bytes were in the pickles
    path = tmp_path / "m.bin"
    path.write_bytes(data)
    assert read_input_shared(path) == data and type(read_input_shared(path)) is bytes  # no mapping to share
    assert memfds() == 0


def test_a_sealed_input_mapping_reaches_the_worker_by_reference(fresh: isolation.Worker, wire: dict[str, list[int]],
                                                                tmp_path: Path) -> None:
    data = os.urandom(BIG)
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    shared = read_input_shared(path)
    assert isinstance(shared, mmap.mmap) and shared[:] == data == read_input_file(path)
    assert fresh.call("builtins:type", shared, library="test") is mmap.mmap  # the worker got a mapping, no copy
    assert fresh.call("zlib:crc32", shared, library="test") == zlib.crc32(data)
    assert max(wire["sent"]) < SMALL
    path.write_bytes(bytes(BIG))  # the file changes afterwards: the sealed copy does not
    assert fresh.call("zlib:crc32", shared, library="test") == zlib.crc32(data)


def test_a_sealed_mapping_goes_as_bytes_through_the_fallback(fresh: isolation.Worker, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.tflite"
    path.write_bytes(os.urandom(BIG))
    shared = read_input_shared(path)
    monkeypatch.setattr(shared_memory, "_supported", False)
    w = isolation.Worker()
    try:
        assert w.call("builtins:type", shared, library="test") is bytes
        assert w.call("zlib:crc32", shared, library="test") == zlib.crc32(path.read_bytes())
    finally:
        w.close()


def test_nobody_can_change_a_sealed_buffer(tmp_path: Path) -> None:
    path = tmp_path / "m.tflite"
    path.write_bytes(b"\1" * 8192)
    shared = read_input_shared(path)
    assert isinstance(shared, mmap.mmap)
    with pytest.raises(TypeError):
        shared[0] = 0  # the mapping is read-only
    fd = shared_memory.sealed_fd(shared)
    assert fd is not None
    writable = os.open(f"/proc/self/fd/{fd}", os.O_RDWR)  # even a writable descriptor of the memory file
    try:
        with pytest.raises(PermissionError):
            os.pwrite(writable, b"\0", 0)
        with pytest.raises(PermissionError):
            os.ftruncate(writable, 1)
        with pytest.raises(PermissionError):
            os.ftruncate(writable, 1 << 20)
        with pytest.raises(PermissionError):
            mmap.mmap(writable, 8192, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(writable)
    assert shared[:] == b"\1" * 8192


def test_a_reader_refuses_an_unsealed_buffer() -> None:
    fd = os.memfd_create("hwopt", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.write(fd, b"x" * 10)
        with pytest.raises(shared_memory.SharedMemoryError, match="not sealed"):
            shared_memory.read(shared_memory.Ref(os.getpid(), fd, 0, 10))
    finally:
        os.close(fd)


def test_a_worker_that_cannot_open_the_memory_falls_back_to_the_pipes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Here the parent 'forgets' to seal: the worker refuses the buffer, the call is resent through the pipe
    and every later worker is started without shared memory."""
    monkeypatch.setattr(isolation, "_shm_failed", False)
    monkeypatch.setattr(shared_memory, "_seal", lambda fd: None)
    w = isolation.Worker()
    try:
        data = os.urandom(BIG)
        assert w.call("zlib:crc32", data, library="test") == zlib.crc32(data)
        assert isolation._shm_failed and not isolation.shares_memory()
        assert w.call("zlib:crc32", data, library="test") == zlib.crc32(data)
    finally:
        w.close()


def test_no_descriptor_or_mapping_is_left_behind(fresh: isolation.Worker, tmp_path: Path) -> None:
    data = os.urandom(BIG)
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    fresh.call("math:gcd", 1, 1, library="test")
    gc.collect()  # what earlier tests left for the collector
    before, worker_before = own_fds(), fresh.call("os:listdir", "/proc/self/fd", library="test")
    for _ in range(3):
        fresh.call("zlib:crc32", data, library="test")
        fresh.call("builtins:bytes", BIG, library="test")
        shared = read_input_shared(path)
        fresh.call("zlib:crc32", shared, library="test")
        del shared
        gc.collect()
    fresh.call("math:gcd", 1, 1, library="test")  # the worker closes its last reply's memory file
    assert own_fds() == before, (own_fds(), before)
    assert memfds() == 0
    assert sorted(fresh.call("os:listdir", "/proc/self/fd", library="test")) == sorted(worker_before)
    maps = fresh.call("pathlib:Path.read_text", Path("/proc/self/maps"), library="test")
    assert "memfd:hwopt" not in maps and "memfd:hwopt" not in Path("/proc/self/maps").read_text()


def test_a_crash_with_a_request_in_shared_memory_is_reported_and_leaks_nothing(fresh: isolation.Worker) -> None:
    fresh.call("math:gcd", 1, 1, library="test")
    before = own_fds()
    with isolation.subject("operator FULLY_CONNECTED #0"), pytest.raises(NativeCodeError) as info:
        fresh.call("builtins:eval", "__import__('ctypes').string_at(0xFFFF_FFFF_FFFF_0000, 1)",
                   {"payload": os.urandom(BIG)}, library="Vela")
    assert str(info.value) == "Vela crashed on this model (SIGSEGV) in operator FULLY_CONNECTED #0"
    assert memfds() == 0 and len(own_fds()) <= len(before)  # the dead worker's pipes are closed too
    assert fresh.call("zlib:crc32", b"x" * BIG, library="test") == zlib.crc32(b"x" * BIG)  # a fresh worker


@pytest.mark.parametrize("limit", ["time", "memory"])
def test_time_and_memory_limits_hold_with_a_request_in_shared_memory(limit: str) -> None:
    big = {"payload": os.urandom(BIG)}
    if limit == "time":
        w = isolation.Worker(isolation.Limits(seconds=1.0))
        code, library, message = "__import__('time').sleep(60)", "LiteRT", r"LiteRT did not finish within 1 s"
    else:
        w = isolation.Worker(isolation.Limits(memory_bytes=256 << 20))
        code, library, message = "__import__('numpy').ones(200_000_000)", "Vela", r"Vela used more than 256 MiB"
    try:
        with pytest.raises(NativeCodeError, match=message):
            w.call("builtins:eval", code, big, library=library)
        assert memfds() == 0
        assert w.call("zlib:crc32", big["payload"], library="test") == zlib.crc32(big["payload"])  # a fresh worker
    finally:
        w.close()


@pytest.mark.parametrize("kind", ["fifo", "device", "missing", "directory", "too large"])
def test_the_shared_read_refuses_what_the_plain_read_refuses(tmp_path: Path, kind: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = {"fifo": tmp_path / "pipe.tflite", "device": Path("/dev/zero"), "missing": tmp_path / "no.tflite",
            "directory": tmp_path, "too large": tmp_path / "big.tflite"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    if kind == "too large":
        path.write_bytes(bytes(5000))
        monkeypatch.setenv("HWOPT_MAX_MODEL_BYTES", "4096")
    with pytest.raises(ModelFormatError) as plain:
        read_input_file(path)
    with pytest.raises(ModelFormatError) as shared:
        read_input_shared(path)
    assert str(shared.value) == str(plain.value)
    assert memfds() == 0


def test_the_early_compile_from_a_shared_mapping_is_taken_only_for_the_same_bytes(tmp_path: Path) -> None:
    data = EXAMPLE_MODEL.read_bytes()
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    target = resolve_target("ethos-u55-128")
    request = vela_start.request_of(target)
    try:
        shared = read_input_shared(path)
        assert isinstance(shared, mmap.mmap) and vela_start.start(shared, target)
        assert vela_start.take(request, data) is not None  # equal bytes, read separately: taken
        other = bytearray(data)
        other[-1] ^= 1  # one byte differs, same length
        assert vela_start.start(read_input_shared(path), target)
        assert vela_start.take(request, bytes(other)) is None  # refused: the engine compiles its own bytes
        assert vela_start.start(shared, target)
        assert vela_start.take(request, shared) is not None  # the very same buffer
    finally:
        vela_start.discard()
        isolation.shutdown()


def test_the_worker_starts_without_site_and_imports_hwopt_from_its_root(fresh: isolation.Worker) -> None:
    """`python -S`: no .pth files read; hwopt (an editable install included) is found from its own folder."""
    assert fresh.call("builtins:eval", "__import__('sys').flags.no_site", library="test") == 1
    root = str(Path(isolation.__file__).resolve().parent.parent)
    path = fresh.call("builtins:eval", "__import__('os').environ['PYTHONPATH']", library="test")
    assert path.split(os.pathsep)[0] == root
    assert fresh.call("builtins:eval", "__import__('hwopt').__file__", library="test") == isolation.__file__.replace(
        "isolation.py", "__init__.py")


def test_a_worker_without_site_reads_the_pth_files_when_a_module_is_missing(tmp_path: Path) -> None:
    """A module reachable only once `site` has run (its stand-in here adds the folder, as a .pth file would)
    still imports in a worker started with -S; `site` runs once, only then."""
    import subprocess
    import sys

    (tmp_path / "pth_only_module.py").write_text("VALUE = 42\n")
    code = ("import site, sys\n"
            "calls = []\n"
            f"site.main = lambda: (calls.append(1), sys.path.append({str(tmp_path)!r}))\n"
            "from hwopt.isolation_worker import resolve\n"
            "print(resolve('zlib:crc32')(b'') , len(calls), resolve('pth_only_module:VALUE'), len(calls))\n"
            "try:\n    resolve('no_such_module_anywhere:x')\nexcept ImportError:\n    print('refused', len(calls))\n")
    env = {**os.environ, "PYTHONPATH": isolation._ROOT}
    out = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "0", "42", "1", "refused", "1"]


def test_commands_report_the_same_through_shared_memory_and_through_the_pipes(
        tmp_path: Path, run_cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """encode --json and the compile folder are byte-identical whichever way the data crosses, and the
    early compile is handed a sealed mapping only when shared memory is used."""
    handed: list[type] = []
    real_start = vela_start.start

    def start(model_bytes: Any, *args: Any, **kwargs: Any) -> bool:
        handed.append(type(model_bytes))
        return real_start(model_bytes, *args, **kwargs)

    monkeypatch.setattr("hwopt.cli.early.vela_start.start", start)
    model = tmp_path / "m.tflite"
    model.write_bytes(EXAMPLE_MODEL.read_bytes())
    runs = {}
    for way in ("shared", "pipes"):
        if way == "pipes":
            isolation.shutdown()
            monkeypatch.setattr(shared_memory, "_supported", False)
        enc = run_cli("encode", model, "--target", "ethos-u55-128", "--json")
        comp = run_cli("compile", model, "--target", "ethos-u55-128", "-o", tmp_path / way)
        assert enc.code == 0 and comp.code == 0, (enc.err, comp.err)
        runs[way] = (enc.out, {p.name: p.read_bytes() for p in (tmp_path / way).iterdir() if p.name != "report.json"})
    assert handed == [mmap.mmap, mmap.mmap, bytes, bytes]
    assert runs["shared"] == runs["pipes"]
    isolation.shutdown()
