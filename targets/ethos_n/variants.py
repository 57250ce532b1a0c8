"""Ethos-N78 hardware variants (engine, IG/OG and SRAM geometry) that shape the weight format.

Numbers come from the driver stack's `GetEthosN78FwHwCapabilities` (see shared/docs/ethos-n-facts.md §2).
The dataclass is built from plain values so that descriptors (e.g. TOML) can construct it later.
"""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024

#: MAC units per OG; fixed on every N78 configuration (8 MACs x 64 accumulators per OG).
MACS_PER_OG = 8


@dataclass(frozen=True)
class N78Variant:
    """One Ethos-N78 configuration; the derived sizes drive chunk widths and stream-to-SRAM mapping."""

    name: str
    engines: int
    igs_per_engine: int
    ogs_per_engine: int
    emcs_per_engine: int
    ple_lanes: int
    sram_bytes: int

    def __post_init__(self) -> None:
        for field in ("engines", "igs_per_engine", "ogs_per_engine", "emcs_per_engine", "ple_lanes", "sram_bytes"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{self.name}: {field} must be a positive int, got {value!r}")
        # The weight decoder consumes N = 8 or 16 IFM channels per chunk; other N have no chunk format.
        if self.ifm_parallel not in (8, 16):
            raise ValueError(f"{self.name}: IGs x engines must be 8 or 16, got {self.ifm_parallel}")
        # Stage 2 maps several OGs onto one SRAM bank; the OG count must be a multiple of the bank count.
        if self.num_ogs % self.num_srams != 0:
            raise ValueError(f"{self.name}: #OGs ({self.num_ogs}) must be a multiple of #SRAMs ({self.num_srams})")
        if self.sram_bytes % self.num_srams != 0:
            raise ValueError(f"{self.name}: SRAM size must divide evenly across {self.num_srams} banks")

    @property
    def num_srams(self) -> int:
        """SRAM banks (one per EMC); weights are interleaved across them 16 bytes at a time."""
        return self.engines * self.emcs_per_engine

    @property
    def ifm_parallel(self) -> int:
        """N: IFM channels consumed in parallel; sets weight slice width and chunk sizes (3N/4, N/2)."""
        return self.igs_per_engine * self.engines

    @property
    def num_ogs(self) -> int:
        """Output groups: OFMs computed in parallel, one weight stream each."""
        return self.ogs_per_engine * self.engines

    @property
    def macs_per_cycle(self) -> int:
        """Peak MACs per cycle for direct convolution, as in the driver's estimator."""
        return self.ifm_parallel * MACS_PER_OG * self.num_ogs

    @property
    def sram_bytes_per_bank(self) -> int:
        """Capacity of one SRAM bank (the compiler allocates buffers per bank)."""
        return self.sram_bytes // self.num_srams


def _v(name: str, engines: int, igs: int, ogs: int, emcs: int, ple: int, sram_kib: int) -> N78Variant:
    return N78Variant(name, engines, igs, ogs, emcs, ple, sram_kib * KIB)


#: The seven N78 configurations of the driver stack, keyed by hwopt's target names.
VARIANTS: dict[str, N78Variant] = {
    v.name: v
    for v in (
        _v("ethos-n78-1tops-2ple", 2, 4, 4, 4, 1, 448),
        _v("ethos-n78-1tops-4ple", 2, 4, 4, 4, 2, 448),
        _v("ethos-n78-2tops-2ple", 4, 2, 4, 2, 1, 768),
        _v("ethos-n78-2tops-4ple", 4, 2, 4, 2, 2, 768),
        _v("ethos-n78-4tops-2ple", 4, 4, 4, 4, 2, 1024),
        _v("ethos-n78-4tops-4ple", 8, 2, 2, 2, 2, 1024),
        _v("ethos-n78-8tops-2ple", 8, 2, 4, 2, 2, 2048),
    )
}
