"""DEFLATE size of a model file as TF-MOT reports compression: a ZIP_DEFLATED archive's size.

Exact: the file is compressed once in a streaming zlib compressor whose output is only
counted (what `zipfile` writes, without building the archive), and the ZIP headers around it
are sized by hand the way `zipfile` lays them out. Sampled (the default above a size): the
large constant buffers are compressed in a stratified sample of blocks, everything else
exactly, and the figure carries a stated error bound (see `sample_plan`). Computing it
beside the caller (a thread or a forked child) is `hwopt.analysis.deflate_job`; both are kept
free of numpy and of the flatbuffer bindings so the CLI can start compressing before the
analysis modules are even imported.
"""

from __future__ import annotations

import bisect
import enum
import itertools
import math
import struct
import zlib
from dataclasses import dataclass
from typing import NamedTuple

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


class DeflateMethod(str, enum.Enum):
    EXACT = "exact"
    SAMPLED = "sampled"


@dataclass(frozen=True)
class DeflateSize:
    """A ZIP_DEFLATED size and how it was had; the exact figure lies within `bytes * (1 ± max_error)`."""

    bytes: int
    method: DeflateMethod
    max_error: float  # relative bound on |bytes - exact| / bytes; 0.0 when exact


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


def measure_deflate(data: bytes, name: str = "model.tflite", *, exact: bool = False) -> DeflateSize:
    """The ZIP_DEFLATED size: exact for files up to EXACT_LIMIT or when asked, else a sampled estimate."""
    plan = plan_for(data, exact)
    if plan is None:
        return DeflateSize(deflate_size(data, name), DeflateMethod.EXACT, 0.0)
    view = memoryview(data).cast("B")
    return sampled_size(name, len(data), plan.estimate([piece_bytes(view, start, end) for start, end in plan.pieces]))


def plan_for(data: bytes, exact: bool) -> SamplePlan | None:
    """The sample `measure_deflate` compresses, or None where it compresses the whole file."""
    return None if exact or len(data) <= EXACT_LIMIT else sample_plan(data)


def sampled_size(name: str, file_size: int, estimate: tuple[int, int]) -> DeflateSize:
    """The archive's size and relative error bound from a sampled estimate of its DEFLATE stream."""
    stream, bound = estimate
    size = zip_size(name, file_size, stream)
    # Rounded up to 4 digits, so the figure stays a bound and the JSON stays short.
    return DeflateSize(size, DeflateMethod.SAMPLED, math.ceil(bound / size * 1e4) / 1e4)
