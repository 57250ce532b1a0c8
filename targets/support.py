"""Operator-support models: one constraint = one named rule with a message and a fix.

A family's support model (Ethos-U55/U65, Ethos-U85, Ethos-N78) is a table from TFLite
operator name to the rules that operator must pass. A rule's check reads an `OpView` (the
operator's tensors sorted into the roles the NPU compilers use: feature maps, weights, bias,
parameters) and returns the failing values as text, or None when the rule holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hwopt.ir import DType, Model, Operator, Subgraph, Tensor

# Input roles of TFLite operators (the tensor index in `op.inputs`), family independent:
# "ifm" feature maps, "w" weights, "b" bias, "p" parameters (shapes, axes, paddings...).
_ROLES: dict[str, tuple[str, ...]] = {
    "CONV_2D": ("ifm", "w", "b"), "DEPTHWISE_CONV_2D": ("ifm", "w", "b"), "CONV_3D": ("ifm", "w", "b"),
    "FULLY_CONNECTED": ("ifm", "w", "b"), "TRANSPOSE_CONV": ("p", "w", "ifm", "b"),
    "PAD": ("ifm", "p"), "PADV2": ("ifm", "p", "p"), "MIRROR_PAD": ("ifm", "p"),
    "MEAN": ("ifm", "p"), "SUM": ("ifm", "p"), "REDUCE_MAX": ("ifm", "p"), "REDUCE_MIN": ("ifm", "p"),
    "REDUCE_ANY": ("ifm", "p"), "REDUCE_ALL": ("ifm", "p"), "REDUCE_PROD": ("ifm", "p"),
    "RESHAPE": ("ifm", "p"), "TRANSPOSE": ("ifm", "p"), "SLICE": ("ifm", "p", "p"),
    "STRIDED_SLICE": ("ifm", "p", "p", "p"), "SPLIT": ("p", "ifm"), "SPLIT_V": ("ifm", "p", "p"),
    "ARG_MAX": ("ifm", "p"), "ARG_MIN": ("ifm", "p"), "EXPAND_DIMS": ("ifm", "p"), "TILE": ("ifm", "p"),
    "REVERSE_V2": ("ifm", "p"), "RESIZE_BILINEAR": ("ifm", "p"), "RESIZE_NEAREST_NEIGHBOR": ("ifm", "p"),
    "GATHER": ("ifm", "ifm"), "SCATTER_ND": ("ifm", "ifm", "p"),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": ("ifm",) + ("w",) * 8 + ("w",) * 3 + ("b",) * 4 + ("w", "b") + ("ifm", "ifm")
    + ("b",) * 4,
}
_DEFAULT_ROLE = "ifm"


@dataclass(frozen=True)
class Reason:
    """Why an operator cannot run on the NPU: the rule, the values that fail it, the fix."""

    rule: str
    message: str
    fix: str


@dataclass(frozen=True)
class Rule:
    """One constraint: `check` returns the failing values as text, or None when it holds."""

    id: str
    doc: str
    fix: str
    check: Callable[[OpView], str | None] = field(repr=False, compare=False)


@dataclass(frozen=True)
class OpView:
    """An operator with its tensors sorted by role; `None` marks an omitted optional input."""

    sg: Subgraph
    op: Operator
    roles: tuple[tuple[str, Tensor | None], ...]
    outputs: tuple[Tensor, ...]
    _by_role: dict[str, list[Tensor]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:  # the roles sorted once: every rule asks for some of them
        by: dict[str, list[Tensor]] = {}
        for r, t in self.roles:
            if t is not None:
                by.setdefault(r, []).append(t)
        object.__setattr__(self, "_by_role", by)

    @property
    def name(self) -> str:
        return self.op.op

    @property
    def options(self) -> Any:
        return self.op.options

    def role(self, kind: str) -> list[Tensor]:
        return list(self._by_role.get(kind, ()))

    @property
    def ifms(self) -> list[Tensor]:
        return self.role("ifm")

    @property
    def ifm(self) -> Tensor | None:
        ifms = self.ifms
        return ifms[0] if ifms else None

    @property
    def ofm(self) -> Tensor | None:
        return self.outputs[0] if self.outputs else None

    @property
    def weights(self) -> Tensor | None:
        w = self.role("w")
        return w[0] if w else None

    @property
    def bias(self) -> Tensor | None:
        b = self.role("b")
        return b[0] if b else None

    @property
    def params(self) -> list[Tensor]:
        return self.role("p")

    def feature_maps(self) -> list[Tensor]:
        """Every IFM and OFM (the tensors the NPU streams)."""
        return [*self.ifms, *self.outputs]

    def all_tensors(self) -> list[Tensor]:
        return [t for _, t in self.roles if t is not None] + list(self.outputs)


def op_view(sg: Subgraph, op: Operator) -> OpView:
    """Sort an operator's inputs into roles (unknown operators: every input is a feature map)."""
    roles = _ROLES.get(op.op, ())
    pairs = []
    for pos, idx in enumerate(op.inputs):
        kind = roles[pos] if pos < len(roles) else _DEFAULT_ROLE
        pairs.append((kind, sg.tensor(idx) if 0 <= idx < len(sg.tensors) else None))
    outs = tuple(sg.tensors[i] for i in op.outputs if 0 <= i < len(sg.tensors))
    return OpView(sg, op, tuple(pairs), outs)


def bits(dtype: DType) -> int:
    """Element size in bits of a TFLite tensor type (0 for types without a fixed size)."""
    np_dtype = dtype.numpy
    if np_dtype is not None:
        return 8 if dtype is DType.BOOL else np_dtype.itemsize * 8
    return {DType.INT4: 4, DType.UINT4: 4, DType.INT2: 2}.get(dtype, 0)


@dataclass(frozen=True)
class OperatorSupport:
    """A family's support table: the operators it takes and the rules each must pass."""

    family: str
    rules: Mapping[str, Sequence[Rule]]
    unsupported: Rule  # the reason given for an operator type the family does not take

    def reasons(self, view: OpView) -> list[Reason]:
        """Every failing rule of one operator (all of them, not only the first)."""
        rules = self.rules.get(view.name)
        if rules is None:
            msg = self.unsupported.check(view)
            return [Reason(self.unsupported.id, msg or view.name, self.unsupported.fix)]
        out = []
        for rule in rules:
            msg = rule.check(view)
            if msg is not None:
                out.append(Reason(rule.id, msg, rule.fix))
        return out

    def all_rules(self) -> list[Rule]:
        seen: dict[str, Rule] = {self.unsupported.id: self.unsupported}
        for rules in self.rules.values():
            for r in rules:
                seen.setdefault(r.id, r)
        return list(seen.values())


def place_model(model: Model, support: OperatorSupport) -> dict[tuple[int, int], list[Reason]]:
    """Reasons per (subgraph, op_index); an empty list means the operator runs on the NPU."""
    return {(sg.index, op.index): support.reasons(op_view(sg, op)) for sg in model.subgraphs for op in sg.operators}
