"""Typed JSON records: frozen dataclasses that cgphw writes to JSON and reads back with every
field's type checked, so a hand-edited file fails with one sentence, never a KeyError later.

A record is a dataclass whose fields are annotated with ``bool``, ``int``, ``float``, ``str``,
``tuple[T, ...]``, ``dict`` (a free-form JSON object), another record, or ``T | None``. A field
without a default must be present; one with a default may be missing (so adding a field to a
record keeps older files readable); a key the record does not know is refused. The JSON key
is the field name unless the field says otherwise: ``field(metadata={"json": "lambda"})``.
Floats must be finite; a whole number is accepted for a float, never a bool for a number.
"""
from __future__ import annotations

import math
import types
import typing
from dataclasses import MISSING, fields, is_dataclass

from cgphw.errors import UserError


def json_key(f) -> str:
    return f.metadata.get("json", f.name)


def to_json(record) -> dict:
    """The record as a JSON object (tuples as lists, nested records as objects)."""
    return {json_key(f): _dump(getattr(record, f.name)) for f in fields(record)}


def _dump(value):
    if is_dataclass(value):
        return to_json(value)
    if isinstance(value, tuple):
        return [_dump(v) for v in value]
    return value


def from_json(cls, doc, source: str):
    """Build ``cls`` from a JSON object, checking every field; UserError names ``source``
    and the field. ``cls.__post_init__`` may add checks of its own (ValueError -> UserError)."""
    if not isinstance(doc, dict):
        raise UserError(f"{source} is malformed: expected a JSON object, found {_show(doc)}")
    hints = typing.get_type_hints(cls)
    values, keys = {}, set()
    for f in fields(cls):
        if not f.init:
            continue
        key = json_key(f)
        keys.add(key)
        if key not in doc:
            if f.default is MISSING and f.default_factory is MISSING:
                raise UserError(f"{source} is malformed: it lacks {key!r}")
            continue
        values[f.name] = _load(hints[f.name], doc[key], source, key)
    unknown = sorted(set(doc) - keys)
    if unknown:
        raise UserError(f"{source} is malformed: unknown field {unknown[0]!r}")
    try:
        return cls(**values)
    except UserError:  # the record's own check (a MismatchError: exit 1) keeps its kind and text
        raise
    except (TypeError, ValueError) as exc:
        raise UserError(f"{source} is malformed: {exc}") from None


def _load(tp, value, source: str, key: str):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _load(options[0], value, source, key)
        raise TypeError(f"records support only T | None unions, not {tp}")  # a programming error
    ok, out = True, value
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        out = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    elif tp is dict or origin is dict:
        ok = isinstance(value, dict)
    elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, list):
            ok = False
        else:
            out = tuple(_load(args[0], v, source, f"{key}[{i}]") for i, v in enumerate(value))
    elif is_dataclass(tp):
        return from_json(tp, value, f"{source} ({key})")
    elif tp is typing.Any:
        pass
    else:
        raise TypeError(f"records do not support the type {tp}")  # a programming error
    if not ok:
        raise UserError(f"{source} is malformed: {key} must be {_describe(tp)}, found {_show(value)}")
    return out


def _describe(tp) -> str:
    names = {bool: "true or false", int: "a whole number", float: "a finite number", str: "a string",
             dict: "a JSON object"}
    if tp in names:
        return names[tp]
    if typing.get_origin(tp) is dict:
        return "a JSON object"
    return "a list"


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
