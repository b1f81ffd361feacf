"""Test-only kernels for the compile gate: a small tiled matmul (tensor cores), an elementwise
kernel with a constexpr flag, and a deliberately broken kernel (`tl.dot` on 8x8 blocks, which
Triton's interpreter runs but the GPU compiler rejects). Loaded by file path, not collected."""
import triton
import triton.language as tl

from tritonnx.triton_kernels import catalog

HERE = __file__


@triton.jit
def matmul_kernel(
    # pointers
    a_ptr, b_ptr, c_ptr,
    # sizes
    M, N, K,
    # strides
    stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
    # meta-parameters
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, K, BLOCK_K):
        a = tl.load(a_ptr + offs_m[:, None] * stride_am + (k + offs_k)[None, :] * stride_ak,
                    mask=(offs_m[:, None] < M) & ((k + offs_k)[None, :] < K), other=0.0)
        b = tl.load(b_ptr + (k + offs_k)[:, None] * stride_bk + offs_n[None, :] * stride_bn,
                    mask=((k + offs_k)[:, None] < K) & (offs_n[None, :] < N), other=0.0)
        acc += tl.dot(a, b)
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    tl.store(c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn,
             acc.to(c_ptr.dtype.element_ty), mask=mask)


def matmul_configs():
    return [triton.Config({"BLOCK_M": bm, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=w, num_stages=2)
            for bm, w in ((64, 4), (32, 2))]


def _matmul_signature(fn, dtype, flags, config):
    return catalog.make_spec(fn, config, pointers={"a_ptr": dtype, "b_ptr": dtype, "c_ptr": dtype},
                             divisible=("stride_am", "stride_bk", "stride_cm"))


MATMUL = catalog.KernelEntry(
    name="test_matmul", kernel=f"{HERE}:matmul_kernel", configs=matmul_configs,
    dtypes=("fp16",), signature=_matmul_signature, matmul=True,
    expect_tensor_core=lambda cfg, dtype, flags, arch: cfg.kwargs["BLOCK_M"] >= 64 and cfg.num_warps >= 4,
)


@triton.jit
def scale_kernel(x_ptr, y_ptr, n, alpha, BLOCK: tl.constexpr, RELU: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs, mask=offs < n, other=0.0).to(tl.float32) * alpha
    if RELU:
        x = tl.maximum(x, 0.0)
    tl.store(y_ptr + offs, x.to(y_ptr.dtype.element_ty), mask=offs < n)


def scale_configs():
    return [triton.Config({"BLOCK": b}, num_warps=4, num_stages=1) for b in (256, 1024, 4096)]


def _scale_signature(fn, dtype, flags, config):
    return catalog.make_spec(fn, config, pointers={"x_ptr": dtype, "y_ptr": dtype},
                             floats=("alpha",), constexprs={"RELU": flags["RELU"]})


SCALE = catalog.KernelEntry(
    name="test_scale", kernel=f"{HERE}:scale_kernel", configs=scale_configs,
    dtypes=("fp32", "bf16"), signature=_scale_signature, flags={"RELU": (0, 1)},
)


@triton.jit
def broken_kernel(a_ptr, c_ptr, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    a = tl.load(a_ptr + offs[:, None] * BLOCK + offs[None, :])
    c = tl.dot(a, a)
    tl.store(c_ptr + offs[:, None] * BLOCK + offs[None, :], c)


def broken_configs():
    return [triton.Config({"BLOCK": 8}, num_warps=1, num_stages=1)]


def _broken_signature(fn, dtype, flags, config):
    return catalog.make_spec(fn, config, pointers={"a_ptr": dtype, "c_ptr": "fp32"})


BROKEN = catalog.KernelEntry(
    name="test_broken", kernel=f"{HERE}:broken_kernel", configs=broken_configs,
    dtypes=("fp16",), signature=_broken_signature, matmul=True,
)


def _crash_signature(fn, dtype, flags, config):
    import os

    if os.environ.get("TRITON_INTERPRET") == "0":  # only in a compile worker
        os._exit(3)  # as a compiler crash takes its worker process down
    return _scale_signature(fn, dtype, flags, config)


def _hang_signature(fn, dtype, flags, config):
    import os
    import time

    if os.environ.get("TRITON_INTERPRET") == "0":
        time.sleep(120)  # as a compile that never ends
    return _scale_signature(fn, dtype, flags, config)


HANG = catalog.KernelEntry(
    name="test_hang", kernel=f"{HERE}:scale_kernel", configs=lambda: scale_configs()[:1],
    dtypes=("fp32",), signature=_hang_signature, flags={"RELU": (0,)},
)

CRASH = catalog.KernelEntry(
    name="test_crash", kernel=f"{HERE}:scale_kernel", configs=scale_configs,
    dtypes=("fp32",), signature=_crash_signature, flags={"RELU": (0,)},
)


@triton.autotune(configs=scale_configs()[:2], key=["n"])  # the catalog lists 3: they disagree
@triton.jit
def tuned_scale_kernel(x_ptr, y_ptr, n, alpha, BLOCK: tl.constexpr, RELU: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs, mask=offs < n, other=0.0) * alpha
    tl.store(y_ptr + offs, x, mask=offs < n)


TUNED = catalog.KernelEntry(
    name="test_tuned", kernel=f"{HERE}:tuned_scale_kernel", configs=scale_configs,
    dtypes=("fp32",), signature=_scale_signature, flags={"RELU": (0,)},
)
