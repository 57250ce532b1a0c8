"""Ethos-N78 raw weight order: which filter element each position of an OFM stream carries.

Every function returns gather indices into one OFM's filter, flattened as (H, W, I) for HWIO and
(H, W) for HWIM; -1 marks a position the hardware expects filled with the weight zero point.
The orders follow the N78 weight decoder: direct convolution walks wide sub-kernel -> slice of N
IFMs -> stride sub-map -> kernel row-major -> N channels; Winograd walks channel -> 3x3 sub-kernel;
fully connected walks 1024-channel bricks of 16-channel patches spread over the SRAM banks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_DIRECT_KERNEL = 7  # larger direct kernels are split into 3x3 / 1x3 / 3x1 sub-kernels
MAX_WINOGRAD_KERNEL = 1  # Winograd always works on 3x3 / 1x3 / 3x1 sub-kernels
WIDE_SUBKERNEL = 3
FC_BRICK = 1024  # fully connected IFMs are reordered inside 1024-channel bricks
FC_PATCH = 16


@dataclass(frozen=True)
class Submap:
    """One stride sub-map (or wide sub-kernel): its offset in the filter and its size."""

    offset_y: int
    offset_x: int
    height: int
    width: int


def stride_submaps(kh: int, kw: int, stride: tuple[int, int], padding: tuple[int, int]) -> list[Submap]:
    """Stride sub-map filters ordered by the padded phase, so the PLE interleave order is fixed."""
    (sy, sx), (pt, pl) = stride, padding
    out = []
    for y in range(sy):
        oy = (y + pt) % sy
        # The last phase holds floor(k/s) taps, every other one ceil(k/s) (the driver's rule).
        fh = kh // sy if oy == sy - 1 else -(-kh // sy)
        for x in range(sx):
            ox = (x + pl) % sx
            fw = kw // sx if ox == sx - 1 else -(-kw // sx)
            out.append(Submap(oy, ox, fh, fw))
    return out


def wide_subkernels(kh: int, kw: int, max_kernel: int) -> list[Submap]:
    """Row-major 3x3 (1x3, 3x1) sub-kernels covering a kernel larger than `max_kernel`, else the kernel."""
    if kh <= max_kernel and kw <= max_kernel:
        return [Submap(0, 0, kh, kw)]
    sky = 1 if kh == 1 else WIDE_SUBKERNEL
    skx = 1 if kw == 1 else WIDE_SUBKERNEL
    return [Submap(h * sky, w * skx, sky, skx) for h in range(-(-kh // sky)) for w in range(-(-kw // skx))]


def hwio_raw_order(
    kh: int,
    kw: int,
    cin: int,
    n: int,
    stride: tuple[int, int],
    padding: tuple[int, int],
    channels: tuple[int, int] | None = None,
) -> np.ndarray:
    """Direct-convolution order of one OFM stream covering IFM channels [start, end) (all by default).

    All but the last sub-map are padded to N channels; the last one is tightly packed in the last slice.
    """
    sy, sx = stride
    wides = wide_subkernels(kh, kw, MAX_DIRECT_KERNEL)
    wide = len(wides) > 1
    if wide and stride != (1, 1):
        raise ValueError("kernels larger than 7 need stride 1 (the N78 has no strided wide-kernel mode)")
    subs = stride_submaps(kh, kw, stride, padding)
    start, end = (0, -(-cin // n) * n) if channels is None else channels
    parts: list[np.ndarray] = []
    for wsub in wides:
        for first in range(start, end, n):
            in_slice = min(n, cin - first)
            for k, sub in enumerate(subs):
                chans = first + np.arange(in_slice if k == len(subs) - 1 else n)
                if sub.height == 0 or sub.width == 0:
                    # An empty sub-map still occupies a 1x1 filter of zero points.
                    parts.append(np.full(chans.size, -1, dtype=np.int64))
                    continue
                fh, fw = (wsub.height, wsub.width) if wide else (sub.height, sub.width)
                hh, ww = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
                y, x = hh.ravel() + wsub.offset_y, ww.ravel() + wsub.offset_x
                valid = (y < kh) & (x < kw)
                pos = ((y * sy + sub.offset_y) * kw + (x * sx + sub.offset_x))[:, None] * cin + chans[None, :]
                ok = valid[:, None] & (chans < cin)[None, :]
                parts.append(np.where(ok, pos, -1).ravel())
    return np.concatenate(parts)


def winograd_raw_order(kh: int, kw: int, cin: int) -> np.ndarray:
    """Winograd order: per 3x3 sub-kernel, every IFM channel's taps (row-major), padded with zero points."""
    parts = []
    for wsub in wide_subkernels(kh, kw, MAX_WINOGRAD_KERNEL):
        hh, ww = np.meshgrid(np.arange(wsub.height), np.arange(wsub.width), indexing="ij")
        y, x = hh.ravel() + wsub.offset_y, ww.ravel() + wsub.offset_x
        pos = np.where((y < kh) & (x < kw), (y * kw + x) * cin, -1)
        chans = np.arange(cin)[:, None]
        parts.append(np.where(pos[None, :] >= 0, pos[None, :] + chans, -1).ravel())
    return np.concatenate(parts)


def fc_raw_order(cin: int, num_srams: int, offset: int = 0, count: int | None = None) -> np.ndarray:
    """Fully connected order of IFMs [offset, offset + count): 16-channel patches spread over the banks."""
    count = -(-cin // FC_BRICK) * FC_BRICK if count is None else count
    e = np.arange(count)
    brick, in_brick = e // FC_BRICK, e % FC_BRICK
    qsize = FC_PATCH * num_srams
    qb = in_brick // qsize
    # Quarter bricks are interleaved so that each bank's SRAM sees contiguous channels.
    qb = (qb % 4) * (16 // num_srams) + qb // 4
    in_q = in_brick % qsize
    raw = offset + brick * FC_BRICK + qb * qsize + (in_q % num_srams) * FC_PATCH + in_q // num_srams
    return np.where(raw < cin, raw, -1)


def hwim_raw_order(kh: int, kw: int, stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """Depthwise: only the OFM's own k*k weights per sub-map (the N78 inserts the zeros itself)."""
    sy, sx = stride
    parts = [np.zeros(0, dtype=np.int64)]
    for sub in stride_submaps(kh, kw, stride, padding):
        hh, ww = np.meshgrid(np.arange(sub.height), np.arange(sub.width), indexing="ij")
        parts.append(((hh.ravel() * sy + sub.offset_y) * kw + (ww.ravel() * sx + sub.offset_x)).astype(np.int64))
    return np.concatenate(parts)
