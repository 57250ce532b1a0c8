"""What the isolation worker imports first for each kind of native work (module names only).

Kept apart from `hwopt.isolation` so that the CLI's flag modules can name them without loading
the worker machinery (subprocess, pickle) into commands that never start a worker.
"""

from __future__ import annotations

# Modules named after LATER are imported once the worker has answered its first call (while the
# caller works on that answer), not before it serves: they are not needed for the first call.
LATER = "--later"

# What a worker that will compile with Vela imports first, and one that will also run LiteRT.
# (hwopt.native_calls needs neither numpy nor hwopt's packages: such a worker is ready in ~0.05 CPU s.
# Vela's weight codec imports numpy, ~0.07 s: it is needed only after the compile, to decode streams.)
# A compile alone (`hwopt compile`, the Vela estimate) never decodes a stream: its worker skips the codec.
VELA_COMPILE_PRELOAD = ("hwopt.native_calls", "ethosu.regor")
VELA_PRELOAD = (*VELA_COMPILE_PRELOAD, LATER, "ethosu.mlw_codec")
LITERT_PRELOAD = ("hwopt.analysis.litert", "ai_edge_litert.interpreter")
