"""Where Vela put each layer's weight streams: replay of the register command stream.

A Vela-compiled TFLite model holds one `ethos-u` custom operator whose first input is the
driver payload (a `COP1` header, then the register command stream) and whose second input
is the read-only region (region 0: weights, scales, LUTs). Each kernel launch uses the
weight-stream registers (base and length, one pair per core or weight decoder) set before
it; when the weights are buffered in SRAM, the base points into a DMA destination and the
stream is found at the DMA's source offset. The debug database maps each launch (its byte
offset in the command stream) back to the input model's operator (`queue` → `perf` →
`source.ext_key`). The result: per input operator, the bytes of every weight stream in the
order Vela uses them, and the U85 weight format of the launch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

COP1 = int.from_bytes(b"COP1", "little")
DA_CMD_STREAM = 0x02  # driver action: the register command stream follows
DA_NOP = 0x05
PAYLOAD32 = 0x4000  # a command followed by a 32-bit payload word

# Kernel launches (cmd0) and the registers that locate weights (cmd0 / cmd1 opcodes).
OP_CONV, OP_DEPTHWISE, OP_POOL, OP_ELEMENTWISE, OP_RESIZE, OP_DMA_START = 2, 3, 5, 6, 7, 16
KERNEL_OPS = frozenset({OP_CONV, OP_DEPTHWISE, OP_POOL, OP_ELEMENTWISE, OP_RESIZE})
SET_WEIGHT_REGION, SET_WEIGHT_FORMAT = 0x128, 0x12E
SET_DMA0_SRC_REGION, SET_DMA0_DST_REGION = 0x130, 0x131
SET_WEIGHT_BASE, SET_WEIGHT_LENGTH = 0x020, 0x021
SET_DMA0_SRC, SET_DMA0_DST, SET_DMA0_LEN = 0x030, 0x031, 0x032
# Base/length registers of each weight stream: U55/U65 (second core: WEIGHT1; 0x092/0x093 are
# the second core's scales there) and U85 (weight decoders 0..3).
WEIGHT_PAIRS = {
    False: ((SET_WEIGHT_BASE, SET_WEIGHT_LENGTH), (0x090, 0x091)),
    True: ((SET_WEIGHT_BASE, SET_WEIGHT_LENGTH), (0x090, 0x091), (0x092, 0x093), (0x094, 0x095)),
}
READ_ONLY_REGION = 0


class CommandStreamError(ValueError):
    """A driver payload or register command stream hwopt cannot read."""


@dataclass(frozen=True)
class DmaCopy:
    src_region: int
    src: int
    dst_region: int
    dst: int
    length: int


@dataclass(frozen=True)
class KernelLaunch:
    """One kernel launch and the weight streams it reads (offset into the read-only region, length)."""

    offset: int  # byte offset of the launch command in the register command stream
    opcode: int
    streams: tuple[tuple[int, int], ...]
    fast: bool = False  # U85 FWD
    sparse: bool = False  # U85 2:4


@dataclass
class LayerStreams:
    """The weight streams Vela made for one input operator, in order of first use."""

    op_index: int
    streams: list[tuple[int, int]] = field(default_factory=list)
    fast: bool = False
    sparse: bool = False

    def data(self, read_only: bytes | memoryview) -> list[bytes | memoryview]:
        """The streams as views into `read_only` (no copy: a large model's streams are as large as its weights)."""
        view = memoryview(read_only)
        return [view[o:o + n] for o, n in self.streams]


def register_stream(payload: bytes) -> np.ndarray:
    """The register command stream words inside a driver payload."""
    words = np.frombuffer(payload[: len(payload) // 4 * 4], dtype="<u4")
    if words.size < 3 or int(words[0]) != COP1:
        raise CommandStreamError("the command stream does not start with a COP1 driver header")
    # After the magic come identification/configuration words (their number depends on the
    # NPU), then NOPs that align the stream to 16 bytes, then the command-stream tag.
    for i in range(3, words.size):
        tag = int(words[i])
        if tag & 0xFF == DA_CMD_STREAM and int(words[i - 1]) & 0xFF == DA_NOP and (i + 1) % 4 == 0:
            length = ((tag >> 8) & 0xFF) << 16 | (tag >> 16)
            if i + 1 + length > words.size:
                raise CommandStreamError("the register command stream is longer than its payload")
            return words[i + 1:i + 1 + length]
    raise CommandStreamError("no register command stream in the driver payload")


def replay(words: np.ndarray, *, u85: bool) -> list[KernelLaunch]:
    """Kernel launches with their weight streams resolved to read-only offsets."""
    regs: dict[int, int] = {}
    dmas: list[DmaCopy] = []
    launches: list[KernelLaunch] = []
    w = words.tolist()
    i = 0
    while i < len(w):
        word = w[i]
        code = word & 0xFFFF
        param = word >> 16
        offset = 4 * i
        if code & PAYLOAD32:
            if i + 1 >= len(w):
                raise CommandStreamError("truncated command")
            regs[code & 0x3FF] = w[i + 1] | ((param & 0xFF) << 32)  # 40-bit addresses: high bits in param
            i += 2
            continue
        code &= 0x3FF
        if code >= 0x100:
            regs[code] = param
        elif code == OP_DMA_START:
            dmas.append(DmaCopy(regs.get(SET_DMA0_SRC_REGION, 0) & 0x7, regs.get(SET_DMA0_SRC, 0),
                                regs.get(SET_DMA0_DST_REGION, 0) & 0x7, regs.get(SET_DMA0_DST, 0),
                                regs.get(SET_DMA0_LEN, 0)))
        elif code in (OP_CONV, OP_DEPTHWISE):  # the launches that read weights
            region = regs.get(SET_WEIGHT_REGION, 0) & 0x7
            streams = []
            for base_reg, len_reg in WEIGHT_PAIRS[u85]:
                length = regs.get(len_reg, 0)
                if length <= 0:
                    continue
                src = _resolve(region, regs.get(base_reg, 0), dmas)
                if src is not None:
                    streams.append((src, length))
            fmt = regs.get(SET_WEIGHT_FORMAT, 0)
            launches.append(KernelLaunch(offset, code, tuple(streams), bool(fmt & 1), bool((fmt >> 4) & 1)))
        i += 1
    return launches


def _resolve(region: int, base: int, dmas: Sequence[DmaCopy]) -> int | None:
    """Read-only offset of a weight stream at `base` in `region` (following the latest DMA there)."""
    if region == READ_ONLY_REGION:
        return base
    for d in reversed(dmas):
        if d.dst_region == region and d.dst <= base < d.dst + d.length and d.src_region == READ_ONLY_REGION:
            return d.src + (base - d.dst)
    return None


def launch_operators(tables: Mapping[str, object]) -> dict[int, int]:
    """{command-stream byte offset of a launch: input-model operator index} from the debug database."""

    def rows(name: str) -> list[dict[str, str]]:
        t = tables.get(name)
        if t is None:
            return []
        return [dict(zip(t.header, r, strict=False)) for r in t.data]  # type: ignore[attr-defined]

    perf = {r["id"]: r for r in rows("perf")}
    source = {r["id"]: r for r in rows("source")}
    out: dict[int, int] = {}
    for q in rows("queue"):
        p = perf.get(q.get("scheduled_id", ""))
        if p is None or p.get("source_id") not in source:
            continue
        out[int(q["offset"])] = int(source[p["source_id"]]["ext_key"])
    return out


def layer_streams(payload: bytes, tables: Mapping[str, object], *, u85: bool) -> dict[int, LayerStreams]:
    """Per input operator, the weight streams Vela's command stream reads (repeats removed)."""
    words = register_stream(payload)
    owners = launch_operators(tables)
    starts = np.array(sorted(owners), dtype=np.int64)
    out: dict[int, LayerStreams] = {}
    for launch in replay(words, u85=u85):
        if not launch.streams or starts.size == 0:
            continue
        # A launch belongs to the last queue entry at or before its command offset.
        k = int(np.searchsorted(starts, launch.offset, side="right")) - 1
        if k < 0:
            continue
        op = owners[int(starts[k])]
        layer = out.setdefault(op, LayerStreams(op))
        layer.fast |= launch.fast
        layer.sparse |= launch.sparse
        for s in launch.streams:
            if s not in layer.streams:
                layer.streams.append(s)
    return out
