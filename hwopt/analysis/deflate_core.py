"""The DEFLATE size arithmetic behind `hwopt.analysis.deflate`, with no records and nothing heavy.

zlib pieces, the sample plan and the ZIP headers, and `Compressing`: the forked child that
computes a file's size. It imports only light standard modules (no dataclasses, and so no
`inspect`), so the CLI forks that child at once, before anything the rest of the audit needs
loads: the child starts ~10 ms sooner and does its compressing beside all of that.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import math
import os
import signal
import struct
import zlib
from typing import TYPE_CHECKING, NamedTuple

from hwopt.errors import HwoptError
from hwopt.fileio import read_input_file

if TYPE_CHECKING:
    from collections.abc import Callable

# zipfile's limits: beyond ZIP64_LIMIT bytes it adds ZIP64 extra fields and end records.
ZIP64_LIMIT = (1 << 31) - 1
_LOCAL, _CENTRAL, _END = 30, 46, 22  # fixed header sizes of a ZIP archive
_ZIP64_LOCAL_EXTRA, _ZIP64_CENTRAL_EXTRA, _ZIP64_END = 20, 20, 56 + 20

# The sampled estimate. A block is primed with the 32 KiB that precede it in the file (zlib's
# window), so its matches are those of the whole stream; what remains is that it gets Huffman
# tables of its own (in the stream a table spans 16 Ki symbols, across blocks): measured over
# every 16 KiB block of a file, -0.75 % (well-compressing, clustered data) to +0.2 % (random
# bytes: one more table), covered by EDGE.
WINDOW = 32 << 10
BLOCK = 16 << 10
SAMPLE_BLOCKS = 32  # 512 KiB compressed in all, in 16 strata of two blocks each
LARGE_BUFFER = 2 * BLOCK  # constant buffers at least this long are sampled; the rest is compressed exactly
EXACT_LIMIT = 1 << 20  # files up to this size are always compressed exactly
Z = 3.0  # standard errors in the bound
EDGE = 0.01  # bound on the per-block table bias, relative to the sampled part
_PHI = (math.sqrt(5.0) - 1.0) / 2.0  # golden-ratio steps: sample offsets that alias with no tensor layout


def deflated_bytes(data: bytes | memoryview) -> int:
    """Length of the raw DEFLATE stream zipfile writes (zlib default level, no header).

    One compress call: zlib releases the GIL for all of it, so the compression runs on
    another core even while the main thread holds the GIL (Vela's Regor compile does).
    """
    comp = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    return len(comp.compress(data)) + len(comp.flush())


def piece_bytes(view: memoryview, start: int, end: int) -> int:
    """Compressed bytes of view[start:end] as a part of the whole stream (primed with its window)."""
    if start == 0:
        comp = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    else:
        comp = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY,
                                view[max(0, start - WINDOW) : start])
    return len(comp.compress(view[start:end])) + len(comp.flush())


def buffer_regions(data: bytes | memoryview, minimum: int = LARGE_BUFFER) -> list[tuple[int, int]]:
    """(start, end) of the TFLite constant buffers of at least `minimum` bytes, in file order.

    Read straight from the flatbuffer (Model.buffers: inline `data` vectors and the offset/size
    pairs of the >2 GB layout) with every offset bounds-checked; a file that is not a readable
    TFLite model gives no regions, never an error (the reader reports what is wrong with it).
    """
    n = len(data)

    def u32(pos: int) -> int:
        if not 0 <= pos <= n - 4:
            raise ValueError(pos)
        return int(struct.unpack_from("<I", data, pos)[0])

    def field(table: int, slot: int) -> int:
        vtable = table - struct.unpack_from("<i", data, table)[0] if 0 <= table <= n - 4 else -1
        if not 0 <= vtable <= n - 4:
            raise ValueError(table)
        entry = 4 + 2 * slot
        if entry + 2 > struct.unpack_from("<H", data, vtable)[0] or vtable + entry + 2 > n:
            return 0
        off = int(struct.unpack_from("<H", data, vtable + entry)[0])
        return table + off if off else 0

    found: list[tuple[int, int]] = []
    try:
        model = u32(0)
        buffers = field(model, 4)  # Model.buffers
        if not buffers:
            return []
        vec = buffers + u32(buffers)
        for i in range(min(u32(vec), (n - vec) // 4)):
            entry = vec + 4 + 4 * i
            table = entry + u32(entry)
            inline = field(table, 0)  # Buffer.data
            if inline:
                start = inline + u32(inline)
                length = u32(start)
                found.append((start + 4, start + 4 + length))
            offset, size = field(table, 1), field(table, 2)  # Buffer.offset / Buffer.size (>2 GB layout)
            if offset and size and offset <= n - 8 and size <= n - 8:
                at, length = struct.unpack_from("<Q", data, offset)[0], struct.unpack_from("<Q", data, size)[0]
                if at > 1:
                    found.append((int(at), int(at + length)))
    except (ValueError, struct.error):
        return []
    regions: list[tuple[int, int]] = []
    for start, end in sorted(r for r in found if r[1] - r[0] >= minimum and r[0] >= 0 and r[1] <= n):
        if not regions or start >= regions[-1][1]:  # aliased or overlapping buffers count once
            regions.append((start, end))
    return regions


def _cuts(bounds: list[int], volume: int, units: int, block: int) -> list[int]:
    """Edges of `units` near-equal strata of [0, volume), each moved to a buffer edge when one is near.

    A stratum that holds one tensor's bytes holds bytes that compress alike, so an edge within
    half a stratum of a buffer edge moves there; strata shorter than a block merge away.
    """
    width = volume / units
    cuts = [0]
    for j in range(1, units):
        ideal = volume * j // units
        i = bisect.bisect_left(bounds, ideal)
        near = min(bounds[max(0, i - 1) : i + 1], key=lambda b: abs(b - ideal), default=ideal)
        cut = near if abs(near - ideal) <= width / 2 else ideal
        if cut - cuts[-1] >= block:
            cuts.append(cut)
    if volume - cuts[-1] < block:
        cuts.pop()
    return [*cuts, volume]


class SamplePlan(NamedTuple):
    """What a sampled estimate compresses: `pieces` (start, end) of the file, each compressed on its
    own (the gaps between large buffers first, then two blocks per stratum), and each stratum's
    length in blocks. The estimate follows from the pieces' compressed sizes alone (`estimate`),
    so the pieces may be compressed in any order, by any process. (A NamedTuple: the CLI defines
    it before forking the compressing child, and a frozen dataclass costs ~6x more to create.)"""

    pieces: tuple[tuple[int, int], ...]
    gaps: int  # the first `gaps` pieces are compressed exactly
    strata: tuple[float, ...]  # blocks per stratum; stratum k owns pieces gaps + 2k and gaps + 2k + 1

    def estimate(self, sizes: list[int]) -> tuple[int, int]:
        """(estimated DEFLATE stream bytes, bound on its error in bytes) from every piece's compressed size."""
        total = sum(sizes[: self.gaps])
        sampled, variance = 0.0, 0.0
        for k, n in enumerate(self.strata):
            a, b = sizes[self.gaps + 2 * k], sizes[self.gaps + 2 * k + 1]
            sampled += n * (a + b) / 2
            variance += n * n * max(0.0, 1.0 - 2.0 / n) * (a - b) ** 2 / 4
        return total + round(sampled), math.ceil(Z * math.sqrt(variance) + EDGE * sampled)


def sample_plan(data: bytes | memoryview, *, blocks: int = SAMPLE_BLOCKS, block: int = BLOCK) -> SamplePlan | None:
    """The pieces a sampled estimate compresses, or None when sampling saves little.

    Everything outside the large constant buffers (tables, small tensors) is compressed
    exactly. The large buffers, laid end to end, are cut into `blocks // 2` strata whose edges
    follow buffer edges where one is near, and two blocks are compressed per stratum, one in
    each half, at golden-ratio offsets. The bound is Z standard errors of that stratified
    estimate (from the two blocks' difference in every stratum) plus EDGE of the sampled part.
    """
    view = memoryview(data).cast("B")
    regions = buffer_regions(view, max(LARGE_BUFFER, block))
    volume = sum(end - start for start, end in regions)
    if volume < 4 * blocks * block:  # sampling would read a quarter or more of it: not worth a bound
        return None
    pieces: list[tuple[int, int]] = []
    pos = 0
    for start, end in regions:  # the gaps between large buffers, exactly
        if start > pos:
            pieces.append((pos, start))
        pos = end
    if pos < len(view):
        pieces.append((pos, len(view)))
    gaps = len(pieces)
    starts = []
    at = 0
    for start, end in regions:
        starts.append(at)
        at += end - start

    def block_at(virtual: int) -> int:
        i = bisect.bisect_right(starts, virtual) - 1
        start, end = regions[i]
        return max(start, min(start + virtual - starts[i], end - block))  # a block never runs past its buffer

    cuts = _cuts([*starts, volume], volume, max(1, blocks // 2), 2 * block)
    strata: list[float] = []
    step = 0
    for lo, hi in itertools.pairwise(cuts):
        half = (hi - lo) // 2
        for h in range(2):  # one block in each half of the stratum
            step += 1
            at = block_at(lo + h * half + int(step * _PHI % 1.0 * (half - block)))
            pieces.append((at, at + block))
        strata.append((hi - lo) / block)
    return SamplePlan(tuple(pieces), gaps, tuple(strata))


def sampled_deflated_bytes(data: bytes | memoryview, *, blocks: int = SAMPLE_BLOCKS,
                           block: int = BLOCK) -> tuple[int, int] | None:
    """(estimated DEFLATE stream bytes, bound on its error in bytes), or None when sampling saves little
    (see `sample_plan`: which pieces are compressed, and how the estimate and bound follow)."""
    plan = sample_plan(data, blocks=blocks, block=block)
    if plan is None:
        return None
    view = memoryview(data).cast("B")
    return plan.estimate([piece_bytes(view, start, end) for start, end in plan.pieces])


def zip_size(name: str, file_size: int, compressed: int, *, zip64_limit: int = ZIP64_LIMIT) -> int:
    """Bytes of a one-member ZIP_DEFLATED archive as `zipfile.ZipFile.writestr` lays it out."""
    name = name.split("\0", 1)[0]
    try:
        name_len = len(name.encode("ascii"))
    except UnicodeEncodeError:
        name_len = len(name.encode("utf-8"))
    local = _LOCAL + name_len + (_ZIP64_LOCAL_EXTRA if file_size * 1.05 > zip64_limit else 0)
    big = file_size > zip64_limit or compressed > zip64_limit
    central = _CENTRAL + name_len + (_ZIP64_CENTRAL_EXTRA if big else 0)
    start_dir = local + compressed
    end = _END + (_ZIP64_END if start_dir > zip64_limit or central > zip64_limit else 0)
    return local + compressed + central + end


def deflate_size(data: bytes, name: str = "model.tflite") -> int:
    """Bytes of a ZIP_DEFLATED archive holding the file, exactly: TFMOT's "compressed size"."""
    return zip_size(name, len(data), deflated_bytes(data))


def plan_for(data: bytes, exact: bool) -> SamplePlan | None:
    """The sample `measure_deflate` compresses, or None where it compresses the whole file."""
    return None if exact or len(data) <= EXACT_LIMIT else sample_plan(data)


def sized(name: str, file_size: int, estimate: tuple[int, int]) -> tuple[int, float]:
    """The archive's bytes and relative error bound from a sampled estimate of its DEFLATE stream."""
    stream, bound = estimate
    size = zip_size(name, file_size, stream)
    # Rounded up to 4 digits, so the figure stays a bound and the JSON stays short.
    return size, math.ceil(bound / size * 1e4) / 1e4


class Compressing:
    """A forked child computing the ZIP_DEFLATED size of `data` (exact or sampled, as
    `measure_deflate` decides). It writes one line per sampled piece as each is done ("index
    bytes"), then the figure ("= bytes exact|sampled max_error"), so a caller that wants the
    figure before the child is done can compress the remaining pieces itself."""

    def __init__(self, data: bytes, name: str, exact: bool, pid: int, fd: int) -> None:
        self.data, self.name, self.exact, self.pid, self.fd = data, name, exact, pid, fd

    @classmethod
    def start(cls, data: bytes, name: str, *, exact: bool = False) -> Compressing | None:
        """Fork the child (the caller has no other thread: forking one is unsafe); None where fork fails."""
        try:
            r, w = os.pipe()
            pid = os.fork()
        except OSError:
            return None
        if pid == 0:  # the child: compress, report, leave without running any cleanup
            try:
                os.close(r)
                _report(w, data, name, exact)
            finally:
                os._exit(0)
        os.close(w)
        return cls(data, name, exact, pid, r)

    def cancel(self) -> None:
        """Stop and reap the child (its figure is no longer wanted, or the caller has it); twice is harmless."""
        if self.fd < 0:
            return
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        os.close(self.fd)
        self.fd = -1
        os.waitpid(self.pid, 0)


def compress_file(path: str | os.PathLike[str], *, exact: bool = False) -> Compressing | None:
    """Read a file (a regular file within the size limit) and fork its `Compressing` child;
    None where the file cannot be read (the reader then reports why) or fork is unavailable."""
    if not hasattr(os, "fork"):
        return None
    try:
        data = read_input_file(path)
    except HwoptError:
        return None
    return Compressing.start(data, os.path.basename(os.fspath(path)) or "model.tflite", exact=exact)


def measure(data: bytes, name: str, exact: bool,
            on_piece: Callable[[int, int], None] | None = None) -> tuple[int, str, float]:
    """(archive bytes, "exact" or "sampled", relative error bound): exact for files up to EXACT_LIMIT or
    when asked, else sampled; `on_piece(index, compressed bytes)` hears each sampled piece as it is done."""
    plan = plan_for(data, exact)
    if plan is None:
        return deflate_size(data, name), "exact", 0.0
    view = memoryview(data).cast("B")
    sizes = []
    for i, (start, end) in enumerate(plan.pieces):
        sizes.append(piece_bytes(view, start, end))
        if on_piece is not None:
            on_piece(i, sizes[-1])
    size, error = sized(name, len(data), plan.estimate(sizes))
    return size, "sampled", error


def _report(w: int, data: bytes, name: str, exact: bool) -> None:
    def piece(index: int, compressed: int) -> None:  # one line per piece, as each is done: the caller may take over the rest
        os.write(w, f"{index} {compressed}\n".encode())

    size, method, error = measure(data, name, exact, piece)
    os.write(w, f"= {size} {method} {error!r}\n".encode())
