"""Ethos-U85 block configuration: the OFM/IFM block, micro-block, traversal and accumulator that
Vela's U85 scheduler picks for one NPU operation.

The search follows the architecture's own rules: the micro-block is the valid one that wastes the
fewest OFM elements; elementwise operations fill the output and chaining buffers; depthwise and
pooling operations fit an area of the accumulator RAM by the OFM's aspect, then keep room to
pre-buffer one more IFM row; every other operation scans OFM blocks whose IFM and accumulators fit
the RAMs (double-buffered when possible) for the least IFM + weight fetch per OFM element, with the
costs in single precision so that ties resolve as the hardware compiler resolves them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hwopt.errors import HwoptError
from hwopt.targets.ethos_u.u85_arch import U85_ARCH, Shape3, U85Arch, U85Op
from hwopt.targets.ethos_u.weight_layout import Traversal

ACC_DEPTH_GRANULE = 16  # accumulator RAM depth granule
OFM_SPLIT_DEPTH = 16  # block depths below the OFM depth are whole multiples of this
BRICK = 16  # elements in one chaining-buffer brick
CB_SLOTS = 6  # chaining buffer slots
SUBKERNEL = (8, 8)  # larger kernels run as sub-kernels of at most 8 x 8
OFM_BLOCK_MAX = (128, 128, 1024)


@dataclass(frozen=True)
class U85Query:
    """What the block search needs of one NPU operation (shapes H, W, C; kernel sizes undilated)."""

    op: U85Op
    ifm: Shape3
    ofm: Shape3
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    ifm_bits: int = 8
    ofm_bits: int = 8
    ifm2: Shape3 | None = None  # second feature-map operand (binary elementwise)
    sparse: bool = False  # 2:4-sparse weights
    scaled: bool = True  # the operation rescales its output (16-bit operations then use 48-bit accumulators)
    upscale: int = 1  # IFM resampling (2: nearest/transpose upscaling)
    resize_scale_x: tuple[int, int] = (1, 1)  # RESIZE: width scale n / d
    # OFM block limits along the searched axes (a transposing operation searches in its IFM's axis order)
    block_max: Shape3 = OFM_BLOCK_MAX
    brick_axis: str = "C"  # the searched axis that becomes the depth of a brick-format (NHCWB16) OFM

    def __post_init__(self) -> None:
        if min(*self.ifm, *self.ofm, *self.kernel, *self.stride, *self.dilation) < 1:
            raise HwoptError(f"U85 block query with an empty shape or kernel: {self}")
        if self.ifm_bits not in (8, 16, 32, 64):
            raise HwoptError(f"U85 block query with {self.ifm_bits}-bit input")


@dataclass(frozen=True)
class U85BlockConfig:
    """One operation's block configuration as the U85 runs it."""

    ofm: Shape3  # OFM block
    ifm: Shape3  # IFM block (its depth: the IFM channels consumed per block step)
    ublock: Shape3  # OFM micro-block
    traversal: Traversal
    acc_bits: int  # 32, or 48 (stored in 64) for 16-bit scaled operations
    ifm_au: Shape3  # IFM allocation unit the IFM block is rounded to
    blocks_in_ram: int = 2  # IFM/accumulator blocks double-buffered (1: single, the search's fallback)


def _ru(v: int, a: int) -> int:
    return -(-v // a) * a


def _rz(v: int, a: int) -> int:
    return v - v % a


def _dilated(q: U85Query) -> tuple[int, int]:
    return ((q.kernel[0] - 1) * q.dilation[0] + 1, (q.kernel[1] - 1) * q.dilation[1] + 1)


def _ublock(q: U85Query, arch: U85Arch, part_kernel: bool) -> Shape3:
    """The valid micro-block that wastes the fewest OFM elements (the first on a tie)."""
    bit_idx = min(q.ifm_bits, 32) // 16
    depth_first_1x1 = q.kernel == (1, 1) and not part_kernel
    best, waste = None, math.inf
    for ub in arch.ublocks:
        op = U85Op.POOL if q.op is U85Op.MEMORY_COPY else q.op
        if op not in arch.ops[ub][bit_idx]:
            continue
        if op is U85Op.CONV and arch.macs in (128, 256) and ub[2] == 16 and ub[:2] != (2, 2) and not depth_first_1x1:
            continue
        w = math.prod(_ru(o, u) for o, u in zip(q.ofm, ub, strict=True)) - math.prod(q.ofm)
        if w < waste:
            best, waste = ub, w
    if best is None:
        raise HwoptError(f"no U85-{arch.macs} micro-block serves {q.op.value} with {q.ifm_bits}-bit input")
    return best


def _granule(q: U85Query, ub: Shape3) -> Shape3:
    """OFM block granule: the micro-block's H x W, 16 deep; 16 along the axis a transpose makes the depth
    of a brick-format OFM."""
    return (16 if q.brick_axis == "H" else ub[0], 16 if q.brick_axis == "W" else ub[1], ACC_DEPTH_GRANULE)


def _alloc_unit(arch: U85Arch, depth: int, bits: int, ub: Shape3) -> Shape3:
    """IFM allocation unit for an IFM block `depth` channels deep (its depth in elements of `bits`)."""
    db = depth * bits
    au = arch.alloc_units[ub][2 if db > 256 else 1 if db > 128 else 0]
    return (au[0], au[1], au[2] * 128 // bits)


def _ifm_block(ofm: tuple[int, int], q: U85Query, au: Shape3, depth: int) -> Shape3:
    """IFM block (H, W rounded to the allocation unit) that feeds an OFM block of H x W."""
    dh, dw = _dilated(q)
    h = math.ceil(((ofm[0] - 1) * q.stride[0] + min(dh, SUBKERNEL[0])) / q.upscale)
    w = math.ceil(((ofm[1] - 1) * q.stride[1] + min(dw, SUBKERNEL[1])) / q.upscale)
    return (_ru(h, au[0]), _ru(w, au[1]), _ru(depth, au[2]))


def _part_kernel(ifm_depth: int, k: int, sparse: bool) -> bool:
    """Kernel-first traversal when it keeps more of the MAC array busy than depth-first."""
    s, r = (10, 4) if sparse else (5, 2)
    k_rnd = (k // s) * s + max(k % s, r)
    return (ifm_depth / _ru(ifm_depth, 16)) * (k / k_rnd) >= ifm_depth / _ru(ifm_depth, 128 if sparse else 64)


def _granular_tile(rng: int, granule: int, tile: int) -> int:
    if rng % tile == 0:
        return tile
    return max(_ru(rng // (rng // tile + 1), granule), granule)


def _reapportion(value: int, max_limit: int, avail: int, required: int) -> tuple[int, int]:
    excess = min(avail // required, max_limit // value)
    return (value * excess, avail // excess) if excess >= 2 else (value, avail)


def _elementwise(q: U85Query, arch: U85Arch, ub: Shape3) -> Shape3:
    """Elementwise block: the output buffer's width in depth granules, reapportioned on broadcasts."""
    gh, gw, gd = _granule(q, ub)
    ofm = (_ru(q.ofm[0], gh), _ru(q.ofm[1], gw), _ru(q.ofm[2], gd))
    lim = tuple(min(a, b) for a, b in zip(ofm, q.block_max, strict=True))
    scalar = math.prod(q.ifm) == 1 or (q.ifm2 is not None and math.prod(q.ifm2) == 1)
    cb_bricks = (arch.cb_ram // CB_SLOTS) // (BRICK * (q.ifm_bits // 8))
    ob_w_units = (arch.ob_ram * 8 // q.ifm_bits) // gd
    cb_w_units = cb_bricks // ub[0]
    h_lim = _granular_tile(ofm[0], gh, lim[0])
    w_req = _granular_tile(ofm[1], gw, min(ob_w_units, lim[1]))
    c_lim, w_lim = _reapportion(gd, lim[2], ob_w_units, max(w_req, gw))
    if not scalar and q.ifm2 is not None:
        mask = 0
        for shape in (q.ifm, q.ifm2):  # bit 0: depth, 1: width, 2: height broadcast
            mask |= sum(1 << i for i, (a, b) in enumerate(zip(shape[::-1], q.ofm[::-1], strict=True)) if a < b)
        if mask & 1:
            c_lim, w_lim = _granular_tile(ofm[2], gd, lim[2]), cb_w_units
            if mask == 1:
                h_lim, w_lim = _reapportion(ub[0], lim[0], w_lim, max(w_req, gw))
        elif mask & 4:
            c_lim, w_lim = _reapportion(BRICK, lim[2], cb_w_units, max(w_req, gw))
    return (_ru(h_lim, gh), _ru(w_lim, gw), _ru(c_lim, gd))


def _best_tile(rng: int, granule: int, tile: int) -> int:
    """The tile (a multiple of the granule, not much under `tile`) leaving the largest last tile."""
    if rng % tile == 0:
        return tile
    tile2 = max(_ru(rng // (rng // tile + 1), granule), granule)
    best, best_rem = tile, rng % tile
    for t in range(tile, max(max(tile2 - granule * 2, (tile2 + 1) // 2), granule) - 1, -granule):
        rem = rng % t or t
        if rem > best_rem:
            best, best_rem = t, rem
    return best


def _area_fit(q: U85Query, arch: U85Arch, ub: Shape3, acc_bits: int, ifm_depth: int,
              ofm: Shape3, lim: Shape3) -> Shape3:
    """Depthwise/pooling first fit: per block depth, the area by the OFM's aspect that fits both RAMs."""
    acc_el = arch.acc_ram * 8 // acc_bits
    ib_el = arch.ifm_ram * 8 // q.ifm_bits
    ub_acc = ub[0] * ub[1] * ACC_DEPTH_GRANULE
    g = _granule(q, ub)
    aspect = ofm[0] / ofm[1]
    depth_first = _dilated(q) == (1, 1)
    max_depth = min(max(arch.macs, acc_el // ub_acc), lim[2])
    area = ofm[1] * ofm[2] if depth_first else ofm[0] * ofm[1]
    fit, best = (0, 0, 0), math.inf
    for depth in range(ACC_DEPTH_GRANULE, max_depth + 1, ACC_DEPTH_GRANULE):
        au = _alloc_unit(arch, ifm_depth or depth, q.ifm_bits, ub)
        ifm_volume = math.prod(_ru(a, b) for a, b in zip(q.ifm, au, strict=True))
        fit_acc, prev, retry, fitted = acc_el, -1, 25, False
        while True:
            w = math.sqrt((fit_acc // depth) / aspect)
            h = w * aspect
            if h < 1.0:
                w, h = w * h, 1.0
            elif w < 1.0:
                h, w = h * w, 1.0
            width = min(_rz(max(int(w), g[1]), g[1]), lim[1])
            height = min(_rz(max(int(h), g[0]), g[0]), lim[0])
            tmp = width * height
            if width < ofm[1]:
                width = _best_tile(ofm[1], g[1], width)
            height = max(_rz(tmp // width, g[0]), g[0])
            acc_req = width * height * depth
            ab_ratio = acc_el / acc_req
            ib_req = min(math.prod(_ifm_block((height, width), q, au, ifm_depth or depth)), ifm_volume)
            ib_ratio = ib_el / ib_req
            if ab_ratio >= 1.0 and ib_ratio >= 1.0:
                used = depth % au[2] or au[2]
                waste = 1.0 + ((au[2] - used) / au[2]) / 10
                fit_m = 1.0 + abs(1.0 - lim[2] / depth) / 10
                coverage = 1.0 + abs(1.0 - area / (width * (depth if depth_first else height)))
                metric = coverage * fit_m * waste
                if metric < best:
                    fit, best = (height, width, depth), metric
                    if depth >= ofm[2] and width >= ofm[1] and height >= ofm[0]:
                        return ofm
                fitted = True
                break
            if acc_req == prev:
                retry -= 1
                if retry <= 0:
                    ib_ratio = 0.9
            prev = acc_req
            if ib_ratio < 1.0 and ab_ratio > 1.0:
                fit_acc = min(fit_acc, acc_req)
            new_acc = max(int((fit_acc // ub_acc) * min(ib_ratio, ab_ratio)), 0) * ub_acc
            if new_acc == fit_acc:
                new_acc = fit_acc - ub_acc
            if new_acc < ub_acc:
                break
            fit_acc = new_acc
        if not fitted:
            break
    return fit


def _depthwise(q: U85Query, arch: U85Arch, ub: Shape3, acc_bits: int, ifm_depth: int) -> tuple[Shape3, Shape3, Shape3]:
    """Depthwise/pooling block: the area fit, shrunk until one more IFM row can be pre-buffered."""
    g = _granule(q, ub)
    ofm = (_ru(q.ofm[0], g[0]), _ru(q.ofm[1], g[1]), _ru(q.ofm[2], g[2]))
    lim = (min(ofm[0], q.block_max[0]), min(ofm[1], q.block_max[1]), min(ofm[2], q.block_max[2]))
    ib_el = arch.ifm_ram * 8 // q.ifm_bits
    h, w, d = _area_fit(q, arch, ub, acc_bits, ifm_depth, ofm, lim)
    force = 0
    while True:
        au = _alloc_unit(arch, ifm_depth or d, q.ifm_bits, ub)
        req = _ifm_block((h, w), q, au, ifm_depth or d)
        if w < ofm[1] or h < ofm[0] or d < ofm[2]:
            row = _ifm_block((g[0], w), q, au, ifm_depth or d)
            if ib_el - math.prod(req) < math.prod(row):
                if (h != ofm[0] or force & 2) and h > g[0]:
                    h -= g[0]
                elif (d > w or force & 1) and d > g[2]:  # Vela 5.2 steps the depth by its granule
                    d -= g[2]
                elif (w != ofm[1] or force & 4) and w > g[1]:
                    w -= g[1]
                elif force != 7:
                    force = (force << 1) | 1
                elif d > g[2]:
                    d = max(d // 2, g[2])
                else:
                    break
                continue
        break
    return (h, w, d), req, au


def _scan(q: U85Query, arch: U85Arch, ub: Shape3, acc_bits: int, ifm_depth: int,
          traversal: Traversal) -> U85BlockConfig | None:
    """Scan OFM blocks (depth, height, width order) for the least relative fetch cost in single precision:
    all at once on a (depth, height, width) grid, each term on the axes it depends on, broadcast."""
    f32 = np.float32
    equal_depth = q.op in (U85Op.RESIZE, U85Op.MEMORY_COPY)
    ifm = q.ifm if q.ifm2 is None or math.prod(q.ifm2) <= math.prod(q.ifm) else q.ifm2
    g = _granule(q, ub)
    step = [max(ub[0], g[0]), max(ub[1], g[1]), max(ub[2], ACC_DEPTH_GRANULE)]
    end = [_ru(max(min(o, m), s), u) for o, m, s, u in zip(q.ofm, q.block_max, step, ub, strict=True)]
    if q.op is U85Op.RESIZE:
        cb_bricks = (arch.cb_ram // CB_SLOTS) // (BRICK * (q.ifm_bits // 8))
        n, d_ = q.resize_scale_x
        max_w = max(1, min(math.ceil(((cb_bricks - 2) * n + 1) / d_), OFM_BLOCK_MAX[1]))
        step = [1, min(step[1], max_w), step[2]]
        end = [1, max_w, 16]
    depths = []
    depth = max(ub[2], min(end[2], OFM_SPLIT_DEPTH))
    while True:
        if depth < q.ofm[2]:
            depth = _ru(depth, OFM_SPLIT_DEPTH)
        if depth > end[2]:
            break
        depths.append(depth)
        depth += ub[2]
    # the candidate axes: depth (D, 1, 1), height (1, H, 1), width (1, 1, W), broadcast to the grid
    hs, ws = np.arange(step[0], end[0] + 1, step[0]), np.arange(step[1], end[1] + 1, step[1])
    if q.op is not U85Op.RESIZE and depths and hs.size and ws.size:
        # a height (width) whose accumulators overflow the RAM even single-buffered, at the shallowest
        # depth and the narrowest width (lowest height), fits at no depth or width: not scanned
        acc_min = _ru(depths[0], ACC_DEPTH_GRANULE)
        hs = hs[hs * ws[0] * acc_min * acc_bits // 8 <= arch.acc_ram]
        ws = ws[hs[0] * ws * acc_min * acc_bits // 8 <= arch.acc_ram] if hs.size else ws[:0]
    d, h, w = np.array(depths)[:, None, None], hs[None, :, None], ws[None, None, :]
    grid = (d.shape[0], h.shape[1], w.shape[2])
    ifm_d = d if equal_depth else np.full_like(d, ifm_depth)
    bits = ifm_d * q.ifm_bits
    au_idx = np.where(bits > 256, 2, np.where(bits > 128, 1, 0))
    aus = np.array(arch.alloc_units[ub]) * np.array([1, 1, 128 // q.ifm_bits])
    au = aus[au_idx]  # (D, 1, 1, 3): the allocation unit of each block depth
    au_h, au_w, au_c = au[..., 0], au[..., 1], au[..., 2]
    dh, dw = _dilated(q)
    ib_h = h * q.stride[0] + (min(dh, SUBKERNEL[0]) - q.stride[0])  # (h - 1) x stride + kernel rows
    ib_w = w * q.stride[1] + (min(dw, SUBKERNEL[1]) - q.stride[1])
    if q.upscale > 1:
        ib_h, ib_w = -(-ib_h // q.upscale), -(-ib_w // q.upscale)
    ib_h, ib_w = -(-ib_h // au_h) * au_h, -(-ib_w // au_w) * au_w
    ib_d = -(-ifm_d // au_c) * au_c
    fit_d = d if equal_depth else np.minimum(ib_d, ifm[2])
    fit_d = -(-fit_d // au_c) * au_c
    acc = h * w * (-(-d // ACC_DEPTH_GRANULE) * ACC_DEPTH_GRANULE) * acc_bits // 8
    ifm_bytes = ib_h * ib_w * fit_d * (q.ifm_bits // 8)
    conv = q.op is U85Op.CONV
    full_h, full_w, full_d = -(-q.ofm[0] // h), -(-q.ofm[1] // w), -(-q.ofm[2] // d)
    bx, by, bz = f32(q.ofm[1]) / w.astype(f32), f32(q.ofm[0]) / h.astype(f32), f32(q.ofm[2]) / d.astype(f32)
    wf = (f32(q.kernel[0] * q.kernel[1] if conv else 0) * f32(ifm[2])) * (full_h * full_w).astype(f32)
    wf = wf * (bz * d.astype(f32))
    repeats = math.ceil(dw / SUBKERNEL[1]) * math.ceil(dh / SUBKERNEL[0])
    ff = ((ib_h * ib_w).astype(f32) * f32(ifm[2])) * f32(repeats) * (bx * by)  # Vela's order of rounding
    if not equal_depth:
        ff = ff * full_d.astype(f32)
    ofm_el = math.prod(q.ofm)
    if q.op is U85Op.VECTOR_PRODUCT:
        cost = f32(1.0) / (h * w).astype(f32)
    elif q.op is U85Op.RESIZE:
        cost = f32(ofm_el) / ((h.astype(f32) * w.astype(f32)) * d.astype(f32))
    else:
        cost = (ff + wf) / f32(ofm_el)
    cost = np.where(math.prod(ifm) < ib_h * ib_w * ib_d * 2, cost / f32(2.0), cost).astype(f32)
    for n_ram in (2, 1):
        ok = (ifm_bytes * n_ram <= arch.ifm_ram) & (acc * n_ram <= arch.acc_ram) if q.op is not U85Op.RESIZE \
            else np.ones(grid, dtype=bool)
        if ok.any():
            break
    else:
        return None
    c = np.where(ok, cost, np.inf)
    c = (c if c.shape == grid else np.broadcast_to(c, grid)).ravel()
    ties = np.flatnonzero(c == c.min())
    t_d, t_h, t_w = np.unravel_index(ties, grid)
    t_ibh, t_ibw = ib_h[t_d, t_h, 0], ib_w[t_d, 0, t_w]  # (the IFM block's rows per depth and height, ...)
    pick = 0
    # equal cost: a small (<= 4 x 4) block that covers more of the IFM wins, the last of the best
    small = np.flatnonzero((h[0, t_h[1:], 0] <= 4) & (w[0, 0, t_w[1:]] <= 4)) + 1 if ties.size > 1 else ties[:0]
    if small.size:
        cov = f32(ifm[0] * ifm[1]) / np.maximum(np.minimum(ifm[0], t_ibh[small]) * np.minimum(ifm[1], t_ibw[small]),
                                                1).astype(f32)
        pick = int(small[np.flatnonzero(cov == cov.min())[-1]])
    pd, ph, pw = int(t_d[pick]), int(t_h[pick]), int(t_w[pick])
    return U85BlockConfig((int(h[0, ph, 0]), int(w[0, 0, pw]), depths[pd]),
                          (int(t_ibh[pick]), int(t_ibw[pick]), int(ifm_d[pd, 0, 0])),
                          ub, traversal, acc_bits, tuple(int(x) for x in au[pd, 0, 0]), n_ram)  # type: ignore[arg-type]


@lru_cache(maxsize=4096)
def find_u85_block(q: U85Query, macs: int) -> U85BlockConfig:
    """The block configuration Vela's U85 scheduler picks for `q` on the U85 with `macs` MACs."""
    arch = U85_ARCH.get(macs)
    if arch is None:
        raise HwoptError(f"no Ethos-U85 configuration with {macs} MACs")
    pooling = q.op in (U85Op.POOL, U85Op.REDUCE_MINMAX, U85Op.ARGMAX, U85Op.MEMORY_COPY)
    acc_bits = 32
    if (q.ifm_bits == 16 and not pooling and q.op is not U85Op.REDUCE_SUM and q.scaled) or q.ifm_bits > 32 \
            or q.ofm_bits > 32:
        acc_bits = 64  # 48-bit accumulators take 64 bits of RAM
    ifm = q.ifm if q.ifm2 is None or math.prod(q.ifm2) <= math.prod(q.ifm) else q.ifm2
    part = q.op in (U85Op.CONV, U85Op.VECTOR_PRODUCT) and _part_kernel(ifm[2], q.kernel[0] * q.kernel[1], q.sparse)
    ub = _ublock(q, arch, part)
    if q.op is U85Op.ELEMENTWISE:
        ofm = _elementwise(q, arch, ub)
        return U85BlockConfig(ofm, ofm, ub, Traversal.DEPTH_FIRST, acc_bits, _alloc_unit(arch, ofm[2], q.ifm_bits, ub))
    if q.op is U85Op.DEPTHWISE:
        ofm, ifmb, au = _depthwise(q, arch, ub, acc_bits, 0)
        return U85BlockConfig(ofm, ifmb, ub, Traversal.DEPTHWISE, acc_bits, au)
    ifm_depth = 64
    if part:
        ifm_depth = 16
    elif q.ifm_bits == 32 or (macs in (128, 256) and ub[2] == 16 and not q.sparse):
        ifm_depth = 32
    elif q.sparse and q.ifm_bits == 8:
        ifm_depth = 128
    if (pooling and q.op is not U85Op.MEMORY_COPY) or q.op is U85Op.REDUCE_SUM:
        ofm, ifmb, au = _depthwise(q, arch, ub, acc_bits, ifm_depth if q.op is U85Op.REDUCE_SUM else 0)
        return U85BlockConfig(ofm, ifmb, ub, Traversal.DEPTH_FIRST, acc_bits, au)
    cfg = _scan(q, arch, ub, acc_bits, ifm_depth, Traversal.PART_KERNEL if part else Traversal.DEPTH_FIRST)
    if cfg is None:
        raise HwoptError(f"no U85-{macs} block configuration fits {q}")
    return cfg

