"""llama.cpp's own GGUF parser and dequantizers, called through ctypes from
the libggml-base.so that llama-cpp-python builds from source. An oracle
independent of both ggufscope and gguf-py (test and bench time only)."""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

import numpy as np


def _lib() -> ctypes.CDLL:
    import llama_cpp  # noqa: F401  (only to find its lib folder)
    path = os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so")
    return ctypes.CDLL(path)


class _TypeTraits(ctypes.Structure):
    # struct ggml_type_traits in ggml.h
    _fields_ = [("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64),
                ("blck_size_interleave", ctypes.c_int64), ("type_size", ctypes.c_size_t),
                ("is_quantized", ctypes.c_bool), ("to_float", ctypes.c_void_p),
                ("from_float_ref", ctypes.c_void_p)]


class _InitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]


_TO_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_int64)
_FROM_FLOAT = ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_float), ctypes.c_void_p, ctypes.c_int64)

LIB = _lib()
LIB.ggml_get_type_traits.restype = ctypes.POINTER(_TypeTraits)
LIB.ggml_get_type_traits.argtypes = [ctypes.c_int]
LIB.gguf_init_from_file.restype = ctypes.c_void_p
LIB.gguf_init_from_file.argtypes = [ctypes.c_char_p, _InitParams]
LIB.gguf_free.argtypes = [ctypes.c_void_p]
LIB.gguf_get_n_tensors.restype = ctypes.c_int64
LIB.gguf_get_n_tensors.argtypes = [ctypes.c_void_p]
LIB.gguf_get_tensor_name.restype = ctypes.c_char_p
LIB.gguf_get_tensor_name.argtypes = [ctypes.c_void_p, ctypes.c_int64]
LIB.gguf_get_tensor_offset.restype = ctypes.c_size_t
LIB.gguf_get_tensor_offset.argtypes = [ctypes.c_void_p, ctypes.c_int64]
LIB.gguf_get_tensor_type.restype = ctypes.c_int
LIB.gguf_get_tensor_type.argtypes = [ctypes.c_void_p, ctypes.c_int64]
LIB.gguf_get_tensor_size.restype = ctypes.c_size_t
LIB.gguf_get_tensor_size.argtypes = [ctypes.c_void_p, ctypes.c_int64]
LIB.gguf_get_data_offset.restype = ctypes.c_size_t
LIB.gguf_get_data_offset.argtypes = [ctypes.c_void_p]
LIB.ggml_quantize_init.argtypes = [ctypes.c_int]
LIB.ggml_quantize_requires_imatrix.restype = ctypes.c_bool
LIB.ggml_quantize_requires_imatrix.argtypes = [ctypes.c_int]
LIB.gguf_get_n_kv.restype = ctypes.c_int64
LIB.gguf_get_n_kv.argtypes = [ctypes.c_void_p]


@dataclass
class TypeInfo:
    name: str
    block_size: int
    type_size: int
    has_to_float: bool
    has_from_float: bool


def type_info(type_id: int) -> TypeInfo:
    t = LIB.ggml_get_type_traits(type_id).contents
    return TypeInfo(t.type_name.decode(), t.blck_size, t.type_size, bool(t.to_float), bool(t.from_float_ref))


def to_float(type_id: int, raw: bytes | np.ndarray, n_elements: int) -> np.ndarray | None:
    """llama.cpp's dequantize_row for type_id, or None where ggml has none."""
    if type_id == 0:  # F32: ggml has no to_float for it; the bytes are the values
        return np.frombuffer(bytes(raw), dtype=np.float32).copy()
    t = LIB.ggml_get_type_traits(type_id).contents
    if not t.to_float:
        return None
    src = np.ascontiguousarray(np.frombuffer(bytes(raw), dtype=np.uint8))
    out = np.empty(n_elements, dtype=np.float32)
    _TO_FLOAT(t.to_float)(src.ctypes.data, out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), n_elements)
    return out


def from_float(type_id: int, values: np.ndarray) -> bytes | None:
    """llama.cpp's reference quantizer (quantize_row_*_ref), or None."""
    t = LIB.ggml_get_type_traits(type_id).contents
    if not t.from_float_ref or LIB.ggml_quantize_requires_imatrix(type_id):
        return None
    LIB.ggml_quantize_init(type_id)  # builds the IQ grids' inverse tables; a no-op otherwise
    x = np.ascontiguousarray(values, dtype=np.float32).ravel()
    n_bytes = x.size // t.blck_size * t.type_size
    out = np.zeros(n_bytes, dtype=np.uint8)
    _FROM_FLOAT(t.from_float_ref)(x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), out.ctypes.data, x.size)
    return out.tobytes()


@dataclass
class Tensor:
    name: str
    type_id: int
    file_offset: int
    n_bytes: int


def read_tensor_table(path: str) -> tuple[list[Tensor], int] | None:
    """llama.cpp's gguf_init_from_file view of a file: tensors and KV count,
    or None when llama.cpp refuses the file."""
    ctx = LIB.gguf_init_from_file(path.encode(), _InitParams(True, None))
    if not ctx:
        return None
    try:
        base = LIB.gguf_get_data_offset(ctx)
        out = []
        for i in range(LIB.gguf_get_n_tensors(ctx)):
            out.append(Tensor(LIB.gguf_get_tensor_name(ctx, i).decode("utf-8", "replace"),
                              LIB.gguf_get_tensor_type(ctx, i),
                              base + LIB.gguf_get_tensor_offset(ctx, i),
                              LIB.gguf_get_tensor_size(ctx, i)))
        return out, LIB.gguf_get_n_kv(ctx)
    finally:
        LIB.gguf_free(ctx)
