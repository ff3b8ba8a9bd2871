"""numba building blocks shared by the CPU graph kernels: row prefetches and a task counter.

Gathers of random rows of an item table are latency-bound, so the kernels prefetch the rows a
few entries ahead; workers take chunks of rows from one atomic counter, so a busy core (a
shared machine) or uneven rows do not leave the other waiting.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numba
import torch
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

PREFETCH_AHEAD = 8  # entries (edges, non-zeros); random row gathers are latency-bound without it


def _prefetch_codegen(rw: int):
    """Code that prefetches the first 1 KiB of arr[row] (rw = 1: for writing) into the caches."""

    def codegen(context, builder, signature, args):
        arr_t, row_t = signature.args
        ary = context.make_array(arr_t)(context, builder, args[0])
        row = context.cast(builder, args[1], row_t, types.intp)
        i64, i32, i8p = ir.IntType(64), ir.IntType(32), ir.IntType(8).as_pointer()
        start = cgutils.get_item_pointer(
            context, builder, arr_t, ary, [row, i64(0)], wraparound=False
        )
        base = builder.bitcast(start, i8p)
        size = builder.mul(builder.extract_value(ary.shape, 1), i64(arr_t.dtype.bitwidth // 8))
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch")
        for offset in range(0, 1024, 64):
            with builder.if_then(builder.icmp_signed("<", i64(offset), size)):
                line = builder.gep(base, [i64(offset)])
                builder.call(fn, [line, i32(rw), i32(3), i32(1)])
        return context.get_dummy_value()

    return codegen


def _is_row_major(arr) -> bool:
    return isinstance(arr, types.Array) and arr.ndim == 2 and arr.layout == "C"


@intrinsic
def prefetch_read(typingctx, arr, row):  # pragma: no cover - compiled
    """Prefetch arr[row] for reading (arr a C-contiguous 2-D array)."""
    return (types.void(arr, row), _prefetch_codegen(0)) if _is_row_major(arr) else None


@intrinsic
def prefetch_write(typingctx, arr, row):  # pragma: no cover - compiled
    """Prefetch arr[row] for writing."""
    return (types.void(arr, row), _prefetch_codegen(1)) if _is_row_major(arr) else None


@intrinsic
def next_task(typingctx, counter):  # pragma: no cover - compiled
    """Atomically take the next task (chunk or block) index from counter[0] (int64 array)."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.atomic_rmw("add", ary.data, ir.IntType(64)(1), "monotonic")

    return types.int64(counter), codegen


@contextlib.contextmanager
def numba_threads() -> Iterator[int]:
    """Run kernels on as many threads as torch uses (capped by numba's pool)."""
    before = numba.get_num_threads()
    threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    try:
        yield threads
    finally:
        numba.set_num_threads(before)
