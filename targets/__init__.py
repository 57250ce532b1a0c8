"""Target descriptors (TOML) and per-family backends (installed as `hwopt.targets`)."""
