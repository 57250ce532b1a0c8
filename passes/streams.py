"""How an NPU splits a layer's output channels into separately encoded weight streams.

Ethos-U encoders start a new palette (≤ 32 entries) per weight stream, so clusters pay off
only when they are shared by all channels of a stream. U55 and u65-256 have one stream per
OFM slice covering every channel; u65-512 interleaves OFM channels over its 2 cores (core c
gets c, c+2, ...); U85 with N weight-decoder streams gives stream s the OFM groups of 4
numbered s, s+N, s+2N, ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EthosUConfig:
    """The Ethos-U accelerator configuration a target denotes."""

    family: str  # "u55", "u65", "u85"
    macs: int  # MACs per cycle of the whole accelerator (Vela's configuration number)
    streams: int  # U55/U65: cores; U85: weight-decoder streams

    @property
    def vela_name(self) -> str:
        return f"ethos-{self.family}-{self.macs}"


def ethos_u_config(name: str) -> EthosUConfig | None:
    """The stream layout of a target: 'ethos-u55-128', 'u55-128', 'Ethos_U55_128' or a descriptor path.

    None for an Ethos-N target; TargetError for an unknown one. Cores and decoder streams
    come from the target descriptor, so a user's descriptor works too.
    """
    from hwopt.targets.descriptor import Family, load_target

    text = name.strip().lower().replace("_", "-")
    if re.match(r"^(ethos-)?n\d", text):
        return None
    m = re.fullmatch(r"(?:ethos-?)?(u55|u65|u85)-?(\d+)", text)
    target = load_target(f"ethos-{m.group(1)}-{m.group(2)}" if m else name)
    if not target.family.is_ethos_u:
        return None
    family, macs = target.vela_accelerator().removeprefix("ethos-").split("-")
    streams = target.npu.weight_streams if target.family is Family.ETHOS_U85 else target.npu.cores
    return EthosUConfig(family, int(macs), streams)


def stream_of_channel(channels: int, target: str | None) -> np.ndarray:
    """The weight-stream index of every output channel (all 0 without a target or with one stream)."""
    cfg = ethos_u_config(target) if target else None
    o = np.arange(channels)
    if cfg is None or cfg.streams == 1:
        return np.zeros(channels, dtype=np.int64)
    if cfg.family == "u85":
        return (o // 4) % cfg.streams  # OFM groups of 4 dealt round-robin over the decoders
    return o % cfg.streams  # u65-512: channels interleaved over the cores
