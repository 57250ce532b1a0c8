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

from hwopt.errors import TargetError


@dataclass(frozen=True)
class EthosUConfig:
    """The Ethos-U accelerator configuration a target name denotes."""

    family: str  # "u55", "u65", "u85"
    macs: int
    streams: int  # U55/U65: cores; U85: weight-decoder streams

    @property
    def vela_name(self) -> str:
        return f"ethos-{self.family}-{self.macs}"

    @property
    def regor_arch(self) -> str:
        return {"u55": "EthosU55", "u65": "EthosU65", "u85": "EthosU85"}[self.family]


# Cores (U55/U65) or weight-decoder streams (U85) per accelerator configuration.
_ETHOS_U = {
    ("u55", 32): 1, ("u55", 64): 1, ("u55", 128): 1, ("u55", 256): 1,
    ("u65", 256): 1, ("u65", 512): 2,
    ("u85", 128): 1, ("u85", 256): 1, ("u85", 512): 2, ("u85", 1024): 4, ("u85", 2048): 4,
}


def ethos_u_config(name: str) -> EthosUConfig | None:
    """Parse 'ethos-u55-128' / 'u55-128' / 'Ethos_U55_128'; None for an Ethos-N name; TargetError otherwise."""
    text = name.strip().lower().replace("_", "-")
    if re.match(r"^(ethos-)?n\d", text):
        return None
    m = re.fullmatch(r"(?:ethos-?)?(u55|u65|u85)-?(\d+)", text)
    if m is None or (m.group(1), int(m.group(2))) not in _ETHOS_U:
        known = ", ".join(f"ethos-{f}-{n}" for f, n in _ETHOS_U)
        raise TargetError(f"unknown target {name!r} (Ethos-U targets: {known})")
    fam, macs = m.group(1), int(m.group(2))
    return EthosUConfig(fam, macs, _ETHOS_U[(fam, macs)])


def stream_of_channel(channels: int, target: str | None) -> np.ndarray:
    """The weight-stream index of every output channel (all 0 without a target or with one stream)."""
    cfg = ethos_u_config(target) if target else None
    o = np.arange(channels)
    if cfg is None or cfg.streams == 1:
        return np.zeros(channels, dtype=np.int64)
    if cfg.family == "u85":
        return (o // 4) % cfg.streams  # OFM groups of 4 dealt round-robin over the decoders
    return o % cfg.streams  # u65-512: channels interleaved over the cores
