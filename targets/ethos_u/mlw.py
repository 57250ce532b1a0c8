"""The Ethos-U standard weight stream (MLW syntax) encoded the way Vela 5.x's own encoder does.

Vela 5.x encodes with Regor's C++ encoder, not with the legacy `ethosu.mlw_codec`; the two
pick palettes, zero-run mode and slice parameters differently, so their streams differ
from the first bytes. This is hwopt's numpy implementation of the same decisions, so that
a stream equals, byte for byte, the one Vela puts in its compiled model:

- a stream is cut into sections of 128 Ki weights, each with a fresh palette;
- zero-run mode when zeros are more than 5x as frequent as the commonest non-zero value
  and at least half of them lie in runs of two or more;
- a palette of up to 32 values sorted by frequency (ties: larger folded value first), used
  when it covers at least half of the coded weights;
- slices and Golomb-Rice parameters from the greedy search in `mlw_search`;
- chunks of 12 (8) unary positions, weight and zero-run chunks interleaved so that the
  weights never run 8 or more symbols ahead of the zero runs, remainders one chunk behind;
- an end-of-stream marker, 0xFF padding to a 16-byte boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwopt.targets.ethos_u import mlw_search
from hwopt.targets.ethos_u.mlw_search import W_PARAMS, Z_PARAMS

SECTION = 128 * 1024  # weights per section: Vela's encoder restarts the palette this often
MAX_SLICE = (1 << 15) - 1  # SLICELEN is 15 bits (length - 1)
ZERO_FREQ_THRESHOLD = 5
MIN_ZERO_RUN = 2
ZDIV_DISABLE, ZDIV_EOS, WDIV_UNCOMPRESSED = 6, 7, 7
STREAM_ALIGN = 16  # bytes; streams are padded with 0xFF


@dataclass(frozen=True)
class Palette:
    """A section's palette and coding mode."""

    entries: tuple[int, ...]  # folded values, most frequent first
    bits: int  # PALBITS: width of a palette entry (or of an uncompressed direct value)
    direct_offset: int
    zero_runs: bool
    only_palette: bool
    only_zeros: bool

    @property
    def size(self) -> int:
        return len(self.entries)

    def uncompressed_bits(self) -> int:
        """Bits per index in uncompressed mode (0: uncompressed mode not allowed)."""
        if self.only_palette:
            return max(0, int(self.size - 1).bit_length())
        return self.bits if self.size == 0 else 0

    def index_table(self) -> np.ndarray:
        """Symbol index of every weight -256..255 (offset 256)."""
        inv = np.empty(512, dtype=np.int64)
        k = np.arange(256)
        base = self.size - self.direct_offset
        inv[256 + k] = base + 2 * k
        inv[256 - k[1:]] = base + 2 * k[1:] + 1
        inv[256] = base + 1  # Vela's table codes a direct zero as "-0"
        inv[0] = 0
        for i, folded in enumerate(self.entries):
            mag, sign = folded >> 1, folded & 1
            inv[(-mag if sign else mag) + 256] = i
        return inv


def fold(w: np.ndarray) -> np.ndarray:
    """Sign-magnitude folding: (|w| << 1) | sign."""
    w = w.astype(np.int64)
    return (np.abs(w) << 1) | (w < 0)


def zero_run_total(w: np.ndarray) -> int:
    """Zeros that lie in runs of at least MIN_ZERO_RUN."""
    z = np.concatenate(([False], w == 0, [False]))
    edges = np.flatnonzero(np.diff(z.astype(np.int8)))
    lengths = edges[1::2] - edges[0::2]
    return int(lengths[lengths >= MIN_ZERO_RUN].sum())


def make_palette(w: np.ndarray, *, disable_lut: bool = False) -> Palette:
    """The palette and zero-run decision for one section of zero-point-corrected weights."""
    freq = np.bincount(w.astype(np.int64) + 256, minlength=512)
    zeros = int(freq[256])
    nonzero = np.delete(freq, 256)
    common = int(nonzero.max()) if nonzero.size else 0
    zero_runs = zero_run_total(w) >= zeros // 2 and zeros > ZERO_FREQ_THRESHOLD * common
    vals = np.arange(-255, 256)
    cnt = freq[1:].copy()
    if zero_runs:
        cnt[255] = 0
    folded = fold(vals)
    by_fold = np.zeros(512, dtype=np.int64)
    by_fold[folded] = cnt
    all_cnt = int(cnt.sum())
    used = np.flatnonzero(by_fold)
    all_max = int(used.max()) if used.size else 0
    only_zeros = all_cnt == 0
    direct_offset = 0
    if all_cnt:
        first = np.flatnonzero(by_fold[:31])
        direct_offset = int(first[0]) if first.size else 31
    # Descending by (count, folded value); a folded value that is never set (1 = "-0") sorts as 0.
    key = (by_fold << 16) | np.where(by_fold > 0, np.arange(512), np.where(np.arange(512) == 1, 0, np.arange(512)))
    order = np.argsort(-key, kind="stable")
    sorted_cnt = by_fold[order]
    only_palette = not disable_lut and sorted_cnt[0] > 0 and sorted_cnt[32] == 0
    if only_palette:
        max_size = 32
    else:
        max_size = min(32, 511 - all_max)
        if max_size == 1:
            max_size = 0
    take = sorted_cnt[:max_size]
    n = int(np.argmin(take > 0)) if take.size and not take.all() else int(take.size)
    entries = [int(x) for x in order[:n]]
    lut_cnt = int(sorted_cnt[:n].sum())
    max_lut = max(entries) if entries else 0
    if n == 1:
        entries.append(0)
    if not disable_lut and lut_cnt >= all_cnt // 2:
        pal, bits_val = tuple(entries), max_lut
    else:
        pal, bits_val = (), all_max
    bits = max(2, int(bits_val).bit_length())
    return Palette(pal, bits, direct_offset, bool(zero_runs), bool(only_palette), only_zeros)


class BitWriter:
    """Collects (value, width) fields and packs them LSB first into bytes, vectorised."""

    def __init__(self) -> None:
        self.values: list[np.ndarray] = []
        self.widths: list[np.ndarray] = []
        self.bits = 0

    def put(self, values: np.ndarray | int | list[int], widths: np.ndarray | int | list[int]) -> None:
        v = np.atleast_1d(np.asarray(values, dtype=np.int64))
        w = np.broadcast_to(np.asarray(widths, dtype=np.int64), v.shape)
        self.values.append(v)
        self.widths.append(np.array(w))
        self.bits += int(w.sum())

    def bit_length(self) -> int:
        return self.bits

    def to_bytes(self, align_bytes: int, fill: int) -> bytes:
        """Pack, byte-align and pad to `align_bytes` with `fill` bytes (partial byte: fill bits)."""
        total = self.bit_length()
        pad_bits = (-total) % 8
        if pad_bits:
            self.put(fill & ((1 << pad_bits) - 1), pad_bits)
            total += pad_bits
        v = np.concatenate(self.values) if self.values else np.zeros(0, dtype=np.int64)
        w = np.concatenate(self.widths) if self.widths else np.zeros(0, dtype=np.int64)
        return pack_bits(v, w, total) + _pad(total // 8, align_bytes, fill)


def _pad(n: int, align: int, fill: int) -> bytes:
    return bytes([fill]) * ((-n) % align)


def pack_bits(values: np.ndarray, widths: np.ndarray, total_bits: int) -> bytes:
    """Concatenate fields (each < 2**25 wide) LSB first; fields never overlap, so sums are ORs."""
    keep = widths > 0
    values, widths = values[keep], widths[keep]
    offs = np.cumsum(widths) - widths
    word = offs >> 5
    shifted = (values & ((1 << widths) - 1)) << (offs & 31)
    n_words = (total_bits + 31) // 32 + 1
    # Exact in float64: every partial sum stays below 2**53.
    lo = np.bincount(word, weights=(shifted & 0xFFFFFFFF).astype(np.float64), minlength=n_words)
    hi = np.bincount(word, weights=(shifted >> 32).astype(np.float64), minlength=n_words)
    words = lo.astype(np.uint64)
    words[1:] += hi[:-1].astype(np.uint64)
    return words.astype("<u4").tobytes()[: total_bits // 8]


def _chunks(q: np.ndarray, step: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Unary positions of values with quotients `q`, cut into chunks of `size` positions.

    Returns per position the unary0 bit and (where unary0 is 1) the unary1 bit, the chunk in
    which each value completes, and the number of chunks.
    """
    npos = q // step + 1
    ends = np.cumsum(npos)
    total = int(ends[-1]) if ends.size else 0
    n_chunks = max(1, -(-total // size))
    starts = ends - npos
    owner = np.repeat(np.arange(q.size), npos)
    rem_q = q[owner] - step * (np.arange(total) - starts[owner])
    u0 = np.zeros(n_chunks * size, dtype=np.int64)
    u0[:total] = rem_q > 0
    u1 = np.zeros(n_chunks * size, dtype=np.int64)
    u1[:total] = rem_q > 1
    done_chunk = (ends - 1) // size
    return u0.reshape(n_chunks, size), u1.reshape(n_chunks, size), done_chunk, n_chunks


def _schedule(w_done: np.ndarray, z_done: np.ndarray, n_w: int, n_z: int) -> tuple[np.ndarray, np.ndarray]:
    """Iteration at which each weight chunk and each zero-run chunk is written.

    An iteration writes the next weight chunk while the weights are fewer than 8 symbols
    ahead of the zero runs, and the next zero-run chunk while they are not behind.
    """
    wd = w_done.tolist()
    zd = z_done.tolist()
    cw, cz = len(wd), len(zd)
    tw: list[int] = []
    tz: list[int] = []
    iw = iz = t = 0
    wpos = zpos = 0
    while iw < cw or iz < cz:
        bal = wpos - zpos
        w_en = bal < 8 and wpos < n_w and iw < cw
        z_en = bal >= 0 and zpos < n_z and iz < cz
        if w_en:
            tw.append(t)
            wpos = wd[iw]
            iw += 1
        elif not z_en:
            raise AssertionError("weight stream interleave stalled")
        if z_en:
            tz.append(t)
            zpos = zd[iz]
            iz += 1
        t += 1
    return np.array(tw, dtype=np.int64), np.array(tz, dtype=np.int64)


def encode_slice(out: BitWriter, w_idx: np.ndarray, z_runs: np.ndarray | None, palette: Palette,
                 new_palette: bool, uncompressed_bits: int, w_cfg: int, z_cfg: int) -> None:
    """One slice: header, then weight and zero-run chunks interleaved as the decoder reads them."""
    w_param = W_PARAMS[w_cfg]
    w_trunc = (w_param >> 4) == 1
    w_unc = (w_param >> 4) == 2
    w_div = uncompressed_bits if w_unc else w_param & 15
    z_div = Z_PARAMS[z_cfg] & 15
    zr = z_runs is not None and z_runs.size > 0
    out.put([z_div if palette.zero_runs else ZDIV_DISABLE, w_idx.size - 1, WDIV_UNCOMPRESSED if w_unc else w_div,
             int(w_trunc), int(new_palette)], [3, 15, 3, 1, 1])
    if new_palette:
        out.put([palette.direct_offset, max(0, palette.size - 1), palette.bits - 2], [5, 5, 3])
        if palette.size:
            out.put(np.array(palette.entries), palette.bits)
    wq = w_idx >> w_div
    w_size = 8 if (w_unc and w_div > 5) else 12
    w_u0, w_u1, w_done_chunk, n_wc = _chunks(wq, 3 if w_trunc else 2, w_size)
    w_rem = w_idx & ((1 << w_div) - 1)
    w_done = np.cumsum(np.bincount(w_done_chunk, minlength=n_wc))
    if zr:
        assert z_runs is not None
        z_size = 12 if z_div < 3 else 8
        z_u0, _, z_done_chunk, n_zc = _chunks(z_runs >> z_div, 1, z_size)
        z_rem = z_runs & ((1 << z_div) - 1)
        z_done = np.cumsum(np.bincount(z_done_chunk, minlength=n_zc))
        tw, tz = _schedule(w_done, z_done, w_idx.size, z_runs.size)
    else:
        tw = np.arange(n_wc)
        tz = np.zeros(0, dtype=np.int64)
    # Fields as (iteration, kind, sequence): kinds in the order one iteration writes them.
    keys: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    wids: list[np.ndarray] = []

    def add(it: np.ndarray, kind: int, v: np.ndarray, wd: np.ndarray | int) -> None:
        keys.append((it * 8 + kind) * (1 << 26) + np.arange(it.size))
        vals.append(v.astype(np.int64))
        wids.append(np.broadcast_to(np.asarray(wd, dtype=np.int64), it.shape))

    pw = 1 << np.arange(w_size, dtype=np.int64)
    if not w_unc:
        add(tw, 0, w_u0 @ pw, 12)
        n1 = w_u0.sum(axis=1)
        # unary1 bits are the unary0=1 positions' second bits, packed in order
        rank = np.cumsum(w_u0, axis=1) - 1
        u1v = np.where(w_u0 == 1, w_u1 << np.maximum(rank, 0), 0).sum(axis=1)
        add(tw, 2, u1v, n1)
    add(tw[w_done_chunk] + 1, 3, w_rem, w_div)
    if zr:
        pz = 1 << np.arange(z_size, dtype=np.int64)
        add(tz, 1, z_u0 @ pz, z_size)
        if z_div > 0:
            add(tz[z_done_chunk] + 1, 4, z_rem, z_div)
    k = np.concatenate(keys)
    order = np.argsort(k, kind="stable")
    out.put(np.concatenate(vals)[order], np.concatenate(wids)[order])


def encode_section(out: BitWriter, w: np.ndarray) -> int:
    """Encode one section (≤ 128 Ki weights) with a new palette; returns zeros coded as runs."""
    pal = make_palette(w)
    unc_bits = pal.uncompressed_bits()
    inv = pal.index_table()
    if pal.zero_runs:
        nz = np.flatnonzero(w)
        if pal.only_zeros:
            nz = np.array([0])  # an all-zero section still codes one weight: the first zero
        prev = np.concatenate(([-1], nz))
        runs = np.diff(np.append(prev, w.size)) - 1
        if pal.only_zeros:
            runs[0] = 0
        w_idx = inv[w[nz].astype(np.int64) + 256]
        z_runs: np.ndarray | None = runs.astype(np.int64)
    else:
        w_idx = inv[w.astype(np.int64) + 256]
        z_runs = None
    n_w = int(w_idx.size)
    w_slices = mlw_search.search(w_idx, False, unc_bits) if n_w else []
    z_slices = mlw_search.search(z_runs, True, 0) if z_runs is not None else []
    pos = iw = iz = 0
    new_pal = True
    only_z_pass = z_runs is not None and z_runs.size > 0
    while pos < n_w or new_pal or only_z_pass:
        w_len = min(w_slices[iw].end - pos, MAX_SLICE) if iw < len(w_slices) else 0
        z_len = min(z_slices[iz].end - pos, MAX_SLICE) if iz < len(z_slices) else 0
        w_cfg = w_slices[iw].cfg if w_len else 0
        z_cfg = z_slices[iz].cfg if z_runs is not None else 0
        zbuf = None
        if z_runs is not None and z_len:
            first = pos + (0 if new_pal else 1)
            zbuf = z_runs[first:first + w_len + (1 if new_pal else 0)]
        encode_slice(out, w_idx[pos:pos + w_len], zbuf, pal, new_pal, unc_bits, w_cfg, z_cfg)
        new_pal = False
        if z_len <= 0 < w_len:
            pos += w_len
        elif w_len <= 0 < z_len:
            pos += z_len
        else:
            pos += min(z_len, w_len)
        if iw < len(w_slices) and w_slices[iw].end <= pos:
            iw += 1
        if iz < len(z_slices) and z_slices[iz].end <= pos:
            iz += 1
        only_z_pass = False
    return int(w.size - n_w) if pal.zero_runs else 0


def encode(weights: np.ndarray) -> bytes:
    """A standard weight stream for zero-point-corrected weights (-255..255), as Vela 5.x writes it."""
    return encode_sections(weights)[0]


def encode_sections(weights: np.ndarray) -> tuple[bytes, list[int]]:
    """The stream and the bit offset at which each section starts (and where the EOS marker starts)."""
    w = np.asarray(weights).reshape(-1).astype(np.int64)
    if w.size and (w.min() < -255 or w.max() > 255):
        raise ValueError("weights must lie in -255..255")
    out = BitWriter()
    starts = [0]
    for lo in range(0, w.size, SECTION):
        encode_section(out, w[lo:lo + SECTION])
        starts.append(out.bit_length())
    out.put(ZDIV_EOS, 3)
    return out.to_bytes(STREAM_ALIGN, 0xFF), starts


def section_stream(data: bytes, bit_lo: int, bit_hi: int) -> bytes:
    """The bits [bit_lo, bit_hi) of a stream as a stream of their own: EOS marker, 0xFF padding.

    Every section opens a slice with a fresh palette and the decoder carries nothing else from
    one slice to the next, so a section cut out of the packed stream decodes on its own.
    """
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")[bit_lo:bit_hi]
    eos = np.array([(ZDIV_EOS >> i) & 1 for i in range(3)], dtype=np.uint8)
    bits = np.concatenate([bits, eos, np.ones((-(bits.size + 3)) % 8, dtype=np.uint8)])
    body = np.packbits(bits, bitorder="little").tobytes()
    return body + _pad(len(body), STREAM_ALIGN, 0xFF)
