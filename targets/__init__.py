"""Targets: TOML descriptors resolved into one checked `Target`, and per-family backends.

`resolve_target` is the one way from a name, a family name or a descriptor path to a
`Target`; every engine, pass and report takes the `Target` it returns.
"""

from hwopt.targets.resolve import FAMILY_DEFAULTS, family_default, list_targets, resolve_target
from hwopt.targets.target import Family, Target

__all__ = ["FAMILY_DEFAULTS", "Family", "Target", "family_default", "list_targets", "resolve_target"]
