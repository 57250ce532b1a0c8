"""How an Ethos-U splits a layer's output channels into separately encoded weight streams.

Ethos-U encoders start a new palette (≤ 32 entries) per weight stream, so clusters pay off
only when they are shared by all channels of a stream. U55 and u65-256 have one stream per
OFM slice covering every channel; u65-512 interleaves OFM channels over its 2 cores (core c
gets c, c+2, ...); U85 with N weight-decoder streams gives stream s the OFM groups of 4
numbered s, s+N, s+2N, ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

U85_OFM_GROUP = 4  # U85 deals OFM channels to its weight decoders in groups of 4


def stream_of_channel(channels: int, streams: int, *, u85: bool) -> np.ndarray:
    """The weight-stream index of each of `channels` output channels over `streams` streams."""
    import numpy as np  # here, not at the top: hwopt.targets (target resolution) loads without numpy

    o = np.arange(channels, dtype=np.int64)
    if streams <= 1:
        return np.zeros(channels, dtype=np.int64)
    if u85:
        return (o // U85_OFM_GROUP) % streams  # OFM groups of 4 dealt round-robin over the decoders
    return o % streams  # u65-512: channels interleaved over the cores
