#!/usr/bin/env python3
"""PyTorch twin of `npm run bench` (dev-only; the test suite never needs it).

Times the same workloads as bench/engine.ts with the same statistics:
  * Conv 3x3, 64->64 channels, 64x64, batch 8, padding 1, bias, fp32: forward, and
    forward + backward with loss = (y * R).sum() (grads of input, weight and bias);
  * MatMul 1024^3 fp32.
Prints ONE JSON object on stdout. Without torch it prints {"error": ...} and exits 0.

Usage: python3 bench/torch_conv.py --json [--threads N] [--quick]
"""

import argparse
import json
import statistics
import sys
import time


def time_fn(fn, warmup, min_runs, min_time_s, max_runs):
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < min_time_s):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return {
        "median_ms": statistics.median(times),
        "best_ms": min(times),
        "mean_ms": statistics.fmean(times),
        "runs": len(times),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true", help="print one JSON object (the default output)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    args = ap.parse_args()

    try:
        import torch
    except Exception:  # ImportError, or a broken install
        print(json.dumps({"error": "torch not installed: python3 -m pip install torch"}))
        return 0

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.quick:
        opts = dict(warmup=1, min_runs=3, min_time_s=0.2, max_runs=50)
    else:
        opts = dict(warmup=3, min_runs=10, min_time_s=2.0, max_runs=500)

    n, c, s = 8, 64, 64
    fwd_flops = 2 * n * c * c * 9 * s * s
    x = torch.rand(n, c, s, s) * 2 - 1
    w = (torch.rand(c, c, 3, 3) * 2 - 1) / (c * 9) ** 0.5
    b = torch.rand(c) * 2 - 1
    r = torch.rand(n, c, s, s) * 2 - 1
    conv = torch.nn.functional.conv2d

    def fwd():
        with torch.no_grad():
            return conv(x, w, b, padding=1)

    xg = x.clone().requires_grad_(True)
    wg = w.clone().requires_grad_(True)
    bg = b.clone().requires_grad_(True)

    def fwd_bwd():
        y = conv(xg, wg, bg, padding=1)
        loss = (y * r).sum()
        gx, gw, gb = torch.autograd.grad(loss, (xg, wg, bg))
        return loss.item(), gx, gw, gb

    conv_fwd = time_fn(fwd, **opts)
    conv_fwd_bwd = time_fn(fwd_bwd, **opts)

    m = 1024
    a = torch.rand(m, m) * 2 - 1
    bm = torch.rand(m, m) * 2 - 1
    mm = time_fn(lambda: torch.matmul(a, bm), **opts)

    out = {
        "version": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "conv3x3_64ch_64px_b8_fwd_ms": conv_fwd["median_ms"],
        "conv3x3_64ch_64px_b8_fwd_best_ms": conv_fwd["best_ms"],
        "conv3x3_64ch_64px_b8_fwd_gflops": fwd_flops / (conv_fwd["median_ms"] * 1e6),
        "conv3x3_64ch_64px_b8_fwd_bwd_ms": conv_fwd_bwd["median_ms"],
        "conv3x3_64ch_64px_b8_fwd_bwd_best_ms": conv_fwd_bwd["best_ms"],
        "conv3x3_64ch_64px_b8_fwd_bwd_gflops": 3 * fwd_flops / (conv_fwd_bwd["median_ms"] * 1e6),
        "matmul_1024_gflops": 2 * m**3 / (mm["best_ms"] * 1e6),
        "matmul_1024_median_gflops": 2 * m**3 / (mm["median_ms"] * 1e6),
        "runs": {"conv_fwd": conv_fwd["runs"], "conv_fwd_bwd": conv_fwd_bwd["runs"], "matmul": mm["runs"]},
    }
    out = {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
