"""Streaming (non-temporal) stores for Numba kernels whose output does not fit in cache.

A plain store to a line that is not in cache first reads the line from memory (read for
ownership), so writing an output larger than the cache moves every byte twice. A streaming
store writes the line without reading it and without evicting useful data, which takes a
large forward to about the time of a plain fill. The values stored are the same bits; only
the path to memory differs.

These are LLVM intrinsics: a 16-byte vector store tagged ``!nontemporal`` (``movntps`` on
x86-64, a plain or non-temporal pair store elsewhere) and a fence that orders them before
the kernel returns.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

STREAM_BYTES = 16  # bytes per streaming store; destinations must be aligned to it


def _data_pointer(context, builder, array_type, array_value):
    return cgutils.create_struct_proxy(array_type)(context, builder, value=array_value).data


@intrinsic
def stream_chunk(typingctx, destination, destination_offset, source, source_offset):
    """Copy ``STREAM_BYTES`` from ``source`` to ``destination`` with a streaming store.

    Offsets count elements from each array's first element, whatever its strides: the
    caller guarantees that both ranges are contiguous and that the destination address is
    a multiple of ``STREAM_BYTES`` (an unaligned streaming store faults).
    """
    if not (isinstance(destination, types.Array) and isinstance(source, types.Array)
            and destination.dtype == source.dtype
            and isinstance(destination_offset, types.Integer)
            and isinstance(source_offset, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        destination_value, destination_index, source_value, source_index = args
        element = context.get_data_type(signature.args[0].dtype)
        vector = ir.VectorType(element, STREAM_BYTES // context.get_abi_sizeof(element))
        source_pointer = builder.gep(
            _data_pointer(context, builder, signature.args[2], source_value), [source_index])
        value = builder.load(builder.bitcast(source_pointer, vector.as_pointer()),
                             align=context.get_abi_sizeof(element))
        destination_pointer = builder.gep(
            _data_pointer(context, builder, signature.args[0], destination_value),
            [destination_index])
        store = builder.store(value, builder.bitcast(destination_pointer, vector.as_pointer()),
                              align=STREAM_BYTES)
        store.set_metadata("nontemporal",
                           builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))
        return context.get_dummy_value()

    return types.void(destination, destination_offset, source, source_offset), codegen


@intrinsic
def store_fence(typingctx):
    """Order this thread's streaming stores before everything after it (they are weakly
    ordered: without a fence another thread may not see them yet when the kernel returns)."""
    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen
