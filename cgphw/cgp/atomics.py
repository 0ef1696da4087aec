"""The few thread-synchronisation primitives the parallel loop needs, as numba intrinsics:
sequentially consistent load / store / fetch-add / compare-and-swap on an element of an
int64 array, and a yield of the CPU (POSIX ``sched_yield``) for waiting politely on a
shared machine.

numba has no atomics of its own on the CPU; these compile to single LLVM instructions and
keep functions cacheable (the only external symbol is libc's ``sched_yield``).
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_ORDER = "seq_cst"


def _element_pointer(context, builder, signature, args):
    aryty, idxty = signature.args[0], signature.args[1]
    ary = context.make_array(aryty)(context, builder, args[0])
    idx = context.cast(builder, args[1], idxty, types.intp)
    return cgutils.get_item_pointer(context, builder, aryty, ary, [idx])


def _check(arr):
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1):
        raise TypeError("atomics work on 1-d int64 arrays")


@intrinsic
def atomic_load(typingctx, arr, idx):
    """arr[idx], read atomically."""
    _check(arr)

    def codegen(context, builder, signature, args):
        return builder.load_atomic(_element_pointer(context, builder, signature, args), _ORDER, 8)

    return types.int64(arr, idx), codegen


@intrinsic
def atomic_store(typingctx, arr, idx, value):
    """arr[idx] = value, written atomically."""
    _check(arr)

    def codegen(context, builder, signature, args):
        val = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(val, _element_pointer(context, builder, signature, args), _ORDER, 8)
        return context.get_dummy_value()

    return types.void(arr, idx, value), codegen


@intrinsic
def atomic_add(typingctx, arr, idx, value):
    """arr[idx] += value atomically; returns the old value."""
    _check(arr)

    def codegen(context, builder, signature, args):
        val = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", _element_pointer(context, builder, signature, args), val, _ORDER)

    return types.int64(arr, idx, value), codegen


@intrinsic
def cpu_yield(typingctx):
    """Let the OS run another thread (sched_yield); returns its status."""

    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
        return builder.call(fn, [])

    return types.int32(), codegen


@intrinsic
def atomic_cas(typingctx, arr, idx, expected, value):
    """If arr[idx] == expected, set it to value, atomically; True when it did."""
    _check(arr)

    def codegen(context, builder, signature, args):
        exp = context.cast(builder, args[2], signature.args[2], types.int64)
        val = context.cast(builder, args[3], signature.args[3], types.int64)
        pair = builder.cmpxchg(_element_pointer(context, builder, signature, args), exp, val, _ORDER, _ORDER)
        return builder.extract_value(pair, 1)

    return types.boolean(arr, idx, expected, value), codegen
