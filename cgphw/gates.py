"""The CGP function set: the one place where gate behaviour is defined.

Every gate has a stable id, a name, an arity, its int8 semantics (numpy, used by the
evaluator and to build the compiled kernels' lookup tables) and its Amaranth expression
(used by HDL emission and by calibration), so software and hardware cannot disagree.
All values are int8; results wrap modulo 256; right shifts are arithmetic.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from cgphw.errors import UserError

WIRE_ID = 100


@dataclass(frozen=True)
class Gate:
    id: int
    name: str
    arity: int  # 0 (constant), 1 (reads in0) or 2 (reads in0, in1)
    numpy_fn: Callable[[np.ndarray, np.ndarray], np.ndarray | int]  # int32 in, any int out (constants: a scalar)
    amaranth_fn: Callable  # (a, b) Amaranth signed(8) values -> Amaranth value

    def apply(self, a, b=None) -> np.ndarray:
        """int8 semantics on arrays (or scalars); b is ignored below arity 2."""
        a32 = np.asarray(a, dtype=np.int8).astype(np.int32)
        b32 = a32 if b is None else np.asarray(b, dtype=np.int8).astype(np.int32)
        out = self.numpy_fn(a32, b32)
        return np.broadcast_to(np.asarray(out), np.broadcast(a32, b32).shape).astype(np.int8)

    @property
    def is_logic(self) -> bool:
        """Counts as a gate: neither a constant nor the wire, which are no logic in hardware."""
        return self.arity > 0 and self.id != WIRE_ID

    def amaranth(self, a, b=None):
        """The gate as an Amaranth expression of shape signed(8)."""
        return to_int8(self.amaranth_fn(a, b))


def to_int8(value):
    """Bring an Amaranth value to signed(8): keep the low 8 bits of wide results (the
    hardware form of "wraps mod 256"), sign- or zero-extend narrow ones by their shape."""
    from amaranth.hdl import Cat, Const, Value

    value = Value.cast(value)
    width, is_signed = value.shape().width, value.shape().signed
    if width >= 8:
        return value.as_unsigned()[:8].as_signed()
    fill = value[-1].replicate(8 - width) if is_signed else Const(0, 8 - width)
    return Cat(value, fill).as_signed()


def _const(v: int) -> Callable:
    def amaranth_const(a, b):
        from amaranth.hdl import Const, signed

        return Const(v, signed(8))

    return amaranth_const


def _c(v: int):
    from amaranth.hdl import Const, signed

    return Const(v, signed(8))


_GATES = (
    Gate(0, "rev_max", 1, lambda a, b: 127 - a, lambda a, b: _c(127) - a),
    Gate(1, "add", 2, lambda a, b: a + b, lambda a, b: a + b),
    Gate(2, "sub", 2, lambda a, b: a - b, lambda a, b: a - b),
    Gate(3, "mul", 2, lambda a, b: a * b, lambda a, b: a * b),
    Gate(4, "neg", 1, lambda a, b: -a, lambda a, b: -a),
    Gate(5, "rev_min", 1, lambda a, b: a - 128, lambda a, b: a + _c(-128)),
    Gate(6, "shr2", 1, lambda a, b: a >> 2, lambda a, b: a >> 2),
    Gate(7, "shr1", 1, lambda a, b: a >> 1, lambda a, b: a >> 1),
    Gate(8, "and", 2, lambda a, b: a & b, lambda a, b: a & b),
    Gate(9, "or", 2, lambda a, b: a | b, lambda a, b: a | b),
    Gate(10, "xor", 2, lambda a, b: a ^ b, lambda a, b: a ^ b),
    Gate(11, "not", 1, lambda a, b: ~a, lambda a, b: ~a),
    Gate(12, "shl1", 1, lambda a, b: a << 1, lambda a, b: a << 1),
    Gate(13, "inc", 1, lambda a, b: a + 1, lambda a, b: a + _c(1)),
    Gate(14, "dec", 1, lambda a, b: a - 1, lambda a, b: a - _c(1)),
    Gate(15, "shr3", 1, lambda a, b: a >> 3, lambda a, b: a >> 3),
    Gate(16, "shr4", 1, lambda a, b: a >> 4, lambda a, b: a >> 4),
    Gate(17, "shr5", 1, lambda a, b: a >> 5, lambda a, b: a >> 5),
    Gate(18, "shl2", 1, lambda a, b: a << 2, lambda a, b: a << 2),
    Gate(19, "shl3", 1, lambda a, b: a << 3, lambda a, b: a << 3),
    Gate(20, "shl4", 1, lambda a, b: a << 4, lambda a, b: a << 4),
    Gate(21, "shl5", 1, lambda a, b: a << 5, lambda a, b: a << 5),
    Gate(22, "const_1", 0, lambda a, b: 1, _const(1)),
    Gate(23, "const_m1", 0, lambda a, b: -1, _const(-1)),
    Gate(24, "const_0", 0, lambda a, b: 0, _const(0)),
    Gate(25, "const_m128", 0, lambda a, b: -128, _const(-128)),
    Gate(26, "const_127", 0, lambda a, b: 127, _const(127)),
    Gate(WIRE_ID, "id", 1, lambda a, b: a, lambda a, b: a),
)

GATES: dict[int, Gate] = {g.id: g for g in _GATES}
GATES_BY_NAME: dict[str, Gate] = {g.name: g for g in _GATES}

FUNCTION_SETS: dict[str, tuple[int, ...]] = {
    "seed27": tuple(range(27)) + (WIRE_ID,),
    "seed27-nowire": tuple(range(27)),
    "add-shift": (1, 2, 4, 6, 7, 12, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, WIRE_ID),
}
DEFAULT_FUNCTION_SET = "seed27"


def gate(gate_id: int) -> Gate:
    try:
        return GATES[int(gate_id)]
    except KeyError:
        raise UserError(f"unknown gate id {gate_id}; known ids are {sorted(GATES)}") from None


def function_set(spec: str | Sequence[int] | None = None) -> tuple[int, ...]:
    """Resolve a function set given by name ("seed27"), by comma-separated ids or names
    ("1,2,shr1"), or as a sequence of ids. Returns sorted unique gate ids."""
    if spec is None:
        spec = DEFAULT_FUNCTION_SET
    if isinstance(spec, str):
        if spec in FUNCTION_SETS:
            return FUNCTION_SETS[spec]
        items: list = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        items = list(spec)
    ids = set()
    for item in items:
        if isinstance(item, str) and not item.lstrip("-").isdigit():
            if item not in GATES_BY_NAME:
                raise UserError(
                    f"unknown function set or gate {item!r}; use one of "
                    f"{', '.join(FUNCTION_SETS)} or gate ids/names from {sorted(GATES_BY_NAME)}"
                )
            ids.add(GATES_BY_NAME[item].id)
        else:
            ids.add(gate(int(item)).id)
    if not ids:
        raise UserError("the function set is empty; name one (e.g. seed27) or list gate ids")
    return tuple(sorted(ids))


def lookup_table(ids: Sequence[int]) -> np.ndarray:
    """int8 table [len(ids), 256, 256]: entry [k, a & 255, b & 255] = gate ids[k](a, b).

    Compiled kernels evaluate gates through this table, so gates.py stays the only
    definition of gate behaviour."""
    v = np.arange(256, dtype=np.uint8).view(np.int8)
    a, b = np.meshgrid(v, v, indexing="ij")
    return np.stack([gate(i).apply(a, b) for i in ids])
