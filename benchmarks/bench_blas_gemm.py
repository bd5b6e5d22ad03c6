"""Would a BLAS GEMM of our own make the tiny step faster? XLA's dots against OpenBLAS, in one step.

    python benchmarks/bench_blas_gemm.py [--rounds 3] [--steps 937]

The tiny profile (``profile_tiny_step.py``) puts 44% of the step in XLA:CPU's first-layer forward
``x [64, 784] @ W₁ [784, 128]``, which runs at about half of oneDNN's rate. This checks the one
remedy left: the GEMMs done by a BLAS through an XLA FFI custom call (a 40-line C handler built
here with the system C compiler, calling the OpenBLAS that NumPy's wheel ships), with a custom VJP
so the backward pass uses it too.

The same hand-written SGD step (784-128-10, ReLU, softmax cross-entropy, batch 64, the batch's rows
gathered from the 60k-row matrix inside the scan, as ``train()`` does) is jitted with three dots:
XLA's own, OpenBLAS for the first-layer forward only, OpenBLAS for every GEMM (forward and both
backward products). Each runs one epoch of ``--steps`` steps, alternated (A B C A B C …) for
``--rounds`` rounds after a warm-up; the table gives the median µs per step, for OpenBLAS with one
thread and with all cores. Needs Linux, a C compiler and NumPy's bundled OpenBLAS; else it says why.
"""

import argparse
import ctypes
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np


_HANDLER_C = r"""
#include <stddef.h>
#include <stdint.h>
#include "xla/ffi/api/c_api.h"

typedef void sgemm_fn(int order, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                      float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                      float beta, float* c, int64_t ldc);
static sgemm_fn* sgemm;
void bench_set_sgemm(void* f) { sgemm = (sgemm_fn*)f; }

/* c [m, n] = op(a) @ op(b), row-major, op = transpose when the flag is set. */
static XLA_FFI_Error* gemm(XLA_FFI_CallFrame* frame, int trans_a, int trans_b) {
  for (XLA_FFI_Extension_Base* e = frame->extension_start; e; e = e->next) {
    if (e->type == XLA_FFI_Extension_Metadata) {
      XLA_FFI_Metadata* metadata = ((XLA_FFI_Metadata_Extension*)e)->metadata;
      metadata->api_version.major_version = XLA_FFI_API_MAJOR;
      metadata->api_version.minor_version = XLA_FFI_API_MINOR;
      metadata->traits = 0;
      return NULL;
    }
  }
  if (frame->stage != XLA_FFI_ExecutionStage_EXECUTE) return NULL;
  XLA_FFI_Buffer* a = (XLA_FFI_Buffer*)frame->args.args[0];
  XLA_FFI_Buffer* b = (XLA_FFI_Buffer*)frame->args.args[1];
  XLA_FFI_Buffer* c = (XLA_FFI_Buffer*)frame->rets.rets[0];
  int64_t k = trans_a ? a->dims[0] : a->dims[1];
  sgemm(101, trans_a ? 112 : 111, trans_b ? 112 : 111, c->dims[0], c->dims[1], k, 1.0f,
        (const float*)a->data, a->dims[1], (const float*)b->data, b->dims[1], 0.0f,
        (float*)c->data, c->dims[1]);
  return NULL;
}
XLA_FFI_Error* bench_sgemm_nn(XLA_FFI_CallFrame* f) { return gemm(f, 0, 0); }
XLA_FFI_Error* bench_sgemm_tn(XLA_FFI_CallFrame* f) { return gemm(f, 1, 0); }
XLA_FFI_Error* bench_sgemm_nt(XLA_FFI_CallFrame* f) { return gemm(f, 0, 1); }
"""


def _openblas():
    """NumPy's bundled OpenBLAS (ctypes library), or None with the reason."""
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "libscipy_openblas*"))
    if not libs:
        return None, "NumPy here does not bundle scipy-openblas (numpy.libs)"
    return ctypes.CDLL(libs[0]), ""


def _build_handler(folder: str):
    import jax

    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None, "no C compiler"
    source, library = os.path.join(folder, "gemm.c"), os.path.join(folder, "libgemm.so")
    with open(source, "w") as file:
        file.write(_HANDLER_C)
    subprocess.run(
        [compiler, "-O2", "-shared", "-fPIC", "-I", jax.ffi.include_dir(), source, "-o", library], check=True
    )
    return ctypes.CDLL(library), ""


def _blas_dots(handler, openblas):
    import jax

    handler.bench_set_sgemm(ctypes.cast(openblas.scipy_cblas_sgemm64_, ctypes.c_void_p))
    for variant in ("nn", "tn", "nt"):
        jax.ffi.register_ffi_target(
            f"bench_sgemm_{variant}", jax.ffi.pycapsule(getattr(handler, f"bench_sgemm_{variant}")), platform="cpu"
        )

    def call(variant, a, b, rows, cols):
        return jax.ffi.ffi_call(f"bench_sgemm_{variant}", jax.ShapeDtypeStruct((rows, cols), a.dtype))(a, b)

    @jax.custom_vjp
    def blas_dot(a, b):
        return call("nn", a, b, a.shape[0], b.shape[1])

    def forward(a, b):
        return blas_dot(a, b), (a, b)

    def backward(saved, g):
        a, b = saved
        return call("nt", g, b, g.shape[0], b.shape[0]), call("tn", a, g, a.shape[1], g.shape[1])

    blas_dot.defvjp(forward, backward)
    return blas_dot


def _epoch_program(first_dot, other_dot, steps: int, batch: int):
    """A jitted epoch of SGD steps on (W₁, b₁, W₂, b₂); the batch's rows are gathered per step."""
    import jax
    import jax.numpy as jnp

    def loss(params, x, y):
        w1, b1, w2, b2 = params
        h = jax.nn.relu(first_dot(x, w1) + b1)
        scores = other_dot(h, w2) + b2
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(scores), y[:, None], axis=1))

    @jax.jit
    def epoch(params, x, y, order):
        def step(params, rows):
            grads = jax.grad(loss)(params, x[rows], y[rows])
            return jax.tree.map(lambda p, g: p - 0.01 * g, params, grads), None

        return jax.lax.scan(step, params, order.reshape(steps, batch))[0]

    return epoch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=937)
    args = parser.parse_args(argv)
    openblas, why = _openblas()
    if openblas is None:
        print(f"skipped: {why}")
        return 0
    import jax.numpy as jnp

    folder = tempfile.mkdtemp(prefix="bench-blas-")
    try:
        handler, why = _build_handler(folder)
        if handler is None:
            print(f"skipped: {why}")
            return 0
        blas_dot = _blas_dots(handler, openblas)
        batch, rng = 64, np.random.default_rng(0)
        x = jnp.asarray(rng.random((60_000, 784), dtype=np.float32))
        y = jnp.asarray(rng.integers(0, 10, 60_000, dtype=np.int32))
        order = jnp.asarray(rng.permutation(60_000)[: args.steps * batch].astype(np.int32))
        params = (
            jnp.asarray(rng.normal(0, 0.05, (784, 128)).astype(np.float32)),
            jnp.zeros(128, jnp.float32),
            jnp.asarray(rng.normal(0, 0.1, (128, 10)).astype(np.float32)),
            jnp.zeros(10, jnp.float32),
        )
        variants = {
            "XLA dots": _epoch_program(jnp.dot, jnp.dot, args.steps, batch),
            "OpenBLAS first-layer forward": _epoch_program(blas_dot, jnp.dot, args.steps, batch),
            "OpenBLAS every GEMM": _epoch_program(blas_dot, blas_dot, args.steps, batch),
        }
        reference = variants["XLA dots"](params, x, y, order)
        for name, epoch in variants.items():  # warm-up, and the same numbers from every variant
            result = epoch(params, x, y, order)
            error = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(result, reference))
            print(f"{name}: compiled; largest parameter difference from XLA's after {args.steps} steps {error:.2e}")
        cores = len(os.sched_getaffinity(0))
        set_threads = openblas.scipy_openblas_set_num_threads64_
        times = {}
        for _ in range(args.rounds):
            for threads in sorted({1, cores}):
                set_threads(threads)
                for name, epoch in variants.items():
                    label = name if name == "XLA dots" else f"{name}, {threads} thread(s)"
                    start = time.perf_counter()
                    epoch(params, x, y, order)[0].block_until_ready()
                    times.setdefault(label, []).append(time.perf_counter() - start)
        base = np.median(times["XLA dots"])
        print(f"\n{args.steps} steps of batch {batch}, {cores} cores, medians of {len(times['XLA dots'])} epochs")
        print("| dots | µs / step | time / XLA's |\n|---|---|---|")
        for label, values in times.items():
            print(f"| {label} | {np.median(values) / args.steps * 1e6:.1f} | {np.median(values) / base:.3f} |")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
