"""The `--target` argument of the commands that take one (kept apart from `_common` so that
commands without a target, `hwopt audit` first, never load the target descriptors)."""

from __future__ import annotations

import sys

from hwopt.targets import Target, family_default, resolve_target


def resolve_target_arg(spec: str, system_config: str | None = None, memory_mode: str | None = None, *,
                       accelerator: str | None = None) -> Target:
    """The Target a `--target` value names; a family name gets a note saying which configuration it means."""
    target = resolve_target(spec, system_config=system_config, memory_mode=memory_mode, accelerator=accelerator)
    if accelerator is None and family_default(spec):
        sys.stderr.write(f"hwopt: note: target {spec} is a family name; using its default configuration {target.name}\n")
    return target
