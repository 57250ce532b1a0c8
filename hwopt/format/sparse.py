"""Densify TFLite sparse tensors (SparsityParameters), bounded by what the file can hold.

A sparse tensor's dense size is declared, not stored: a few bytes can claim a 32768x32768
tensor. Every intermediate and the dense result are checked against limits the reader
derives from the file size before anything is allocated.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwopt._generated.tflite.DimensionType import DimensionType
from hwopt.errors import ModelFormatError


def _ints(value: Any) -> tuple[int, ...]:
    return () if value is None else tuple(int(v) for v in value)


def _index_vector(union: Any) -> np.ndarray:
    values = getattr(union, "values", None)
    return np.zeros(0, dtype=np.int64) if values is None else np.asarray(values, dtype=np.int64)


CHUNK_VALUES = 1 << 18  # stored values walked at a time: bounds the index arrays to a few MB


def _walk(dims: list[Any], pos: np.ndarray, coords: list[np.ndarray], limit: int,
          name: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """Apply traversal levels `dims` to positions `pos` (and their coordinates so far)."""
    for meta in dims:
        if meta.format == DimensionType.DENSE:
            size = int(meta.denseSize)
            if size < 0 or pos.size * max(size, 1) > limit:
                raise ModelFormatError(f"tensor {name!r}: dense size {size} in its sparsity parameters declares more "
                                       "values than the file holds")
            coords = [np.repeat(c, size) for c in coords]
            coords.append(np.tile(np.arange(size, dtype=np.int64), pos.size))
            pos = (pos[:, None] * size + np.arange(size, dtype=np.int64)).ravel()
        else:
            seg = _index_vector(meta.arraySegments)
            idx = _index_vector(meta.arrayIndices)
            if pos.size and (pos.max() + 1 >= seg.size):
                raise ModelFormatError(f"tensor {name!r}: sparse segment index out of range")
            starts, ends = seg[pos], seg[pos + 1]
            counts = ends - starts
            if np.any(counts < 0) or (ends.size and ends.max() > idx.size):
                raise ModelFormatError(f"tensor {name!r}: malformed sparse segments")
            total = int(counts.sum())
            if total > limit:
                raise ModelFormatError(f"tensor {name!r}: sparse segments declare more values than the file holds")
            offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
            new_pos = np.arange(total, dtype=np.int64) + offsets
            coords = [np.repeat(c, counts) for c in coords]
            coords.append(idx[new_pos])
            pos = new_pos
    return pos, coords


def densify(values: np.ndarray, sparsity: Any, shape: tuple[int, ...], name: str = "", *,
            max_positions: int | None = None, max_bytes: int | None = None) -> np.ndarray:
    """Expand a TFLite sparse tensor (SparsityParameters) to its dense array.

    Walks the traversal order level by level with numpy (DENSE levels enumerate, CSR levels
    follow segments/indices), then folds block dimensions back into their original axes.
    The first level's positions are walked in chunks of about CHUNK_VALUES stored values,
    so the index arrays stay small next to the dense result. `max_positions` bounds the index arrays of any level (a real file
    stores at least one byte per position), `max_bytes` the dense result; beyond either,
    ModelFormatError.
    """
    order = _ints(sparsity.traversalOrder)
    block_map = _ints(sparsity.blockMap)
    dims = list(sparsity.dimMetadata or [])
    rank = len(shape)
    if len(order) != len(dims) or len(order) != rank + len(block_map) or sorted(order) != list(range(len(order))):
        raise ModelFormatError(f"tensor {name!r}: inconsistent sparsity parameters")
    dense_bytes = int(np.prod(shape, dtype=np.float64)) * values.dtype.itemsize if shape else values.dtype.itemsize
    if max_bytes is not None and dense_bytes > max_bytes:
        raise ModelFormatError(f"tensor {name!r}: sparse tensor of shape {list(shape)} would take {dense_bytes:,} bytes "
                               f"dense, beyond the {max_bytes:,} this file's size allows")
    limit = max_positions if max_positions is not None else 1 << 34
    level_of = {dim: lvl for lvl, dim in enumerate(order)}
    dense = np.zeros(shape, dtype=values.dtype)
    first_pos, first_coords = _walk(dims[:1], np.zeros(1, dtype=np.int64), [], limit, name)
    stored = 0
    # First-level positions per chunk, in proportion to the values they lead to (uniform
    # on average: a chunk reaches about CHUNK_VALUES values through the later levels).
    step = max(1, CHUNK_VALUES * first_pos.size // max(values.size, 1))
    for start in range(0, max(first_pos.size, 1), step):
        pos, coords = _walk(dims[1:], first_pos[start : start + step], [c[start : start + step] for c in first_coords],
                            limit, name)
        stored += pos.size
        if stored > values.size or (pos.size and (pos.min() < 0 or pos.max() >= values.size)):
            raise ModelFormatError(f"tensor {name!r}: sparsity addresses more values than the {values.size} stored")
        full = []
        for d in range(rank):
            c = coords[level_of[d]]
            for k, bd in enumerate(block_map):
                if bd == d:
                    lvl = level_of[rank + k]
                    c = c * int(dims[lvl].denseSize) + coords[lvl]
            if c.size and (c.min() < 0 or c.max() >= shape[d]):
                raise ModelFormatError(f"tensor {name!r}: sparse index out of range")
            full.append(c)
        if pos.size:
            dense[tuple(full)] = values[pos]
    if stored != values.size:
        raise ModelFormatError(f"tensor {name!r}: {values.size} stored values, sparsity expects {stored}")
    return dense
