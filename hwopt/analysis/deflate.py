"""DEFLATE size of a model file as TF-MOT reports compression: a ZIP_DEFLATED archive's size.

Exact: the file is compressed once in a streaming zlib compressor whose output is only
counted (what `zipfile` writes, without building the archive), and the ZIP headers around it
are sized by hand the way `zipfile` lays them out. Sampled (the default above a size): the
large constant buffers are compressed in a stratified sample of blocks, everything else
exactly, and the figure carries a stated error bound (see `sample_plan`). The arithmetic is
`hwopt.analysis.deflate_core` (no records, nothing heavy: the CLI forks the compressing child
with only it loaded); `hwopt.analysis.deflate_job` has the figure computed beside the caller.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hwopt.analysis.deflate_core import BLOCK as BLOCK
from hwopt.analysis.deflate_core import EXACT_LIMIT as EXACT_LIMIT
from hwopt.analysis.deflate_core import SAMPLE_BLOCKS as SAMPLE_BLOCKS
from hwopt.analysis.deflate_core import SamplePlan as SamplePlan
from hwopt.analysis.deflate_core import buffer_regions as buffer_regions
from hwopt.analysis.deflate_core import deflate_size as deflate_size
from hwopt.analysis.deflate_core import deflated_bytes as deflated_bytes
from hwopt.analysis.deflate_core import measure, sized
from hwopt.analysis.deflate_core import sample_plan as sample_plan
from hwopt.analysis.deflate_core import sampled_deflated_bytes as sampled_deflated_bytes
from hwopt.analysis.deflate_core import zip_size as zip_size


class DeflateMethod(str, enum.Enum):
    EXACT = "exact"
    SAMPLED = "sampled"


@dataclass(frozen=True)
class DeflateSize:
    """A ZIP_DEFLATED size and how it was had; the exact figure lies within `bytes * (1 ± max_error)`."""

    bytes: int
    method: DeflateMethod
    max_error: float  # relative bound on |bytes - exact| / bytes; 0.0 when exact


def measure_deflate(data: bytes, name: str = "model.tflite", *, exact: bool = False) -> DeflateSize:
    """The ZIP_DEFLATED size: exact for files up to EXACT_LIMIT or when asked, else a sampled estimate."""
    size, method, error = measure(data, name, exact)
    return DeflateSize(size, DeflateMethod(method), error)


def sampled_size(name: str, file_size: int, estimate: tuple[int, int]) -> DeflateSize:
    """The archive's size and relative error bound from a sampled estimate of its DEFLATE stream."""
    size, error = sized(name, file_size, estimate)
    return DeflateSize(size, DeflateMethod.SAMPLED, error)
