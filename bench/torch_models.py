#!/usr/bin/env python3
"""Dev-only PyTorch twin of bench/models.ts: times diffusers' own UNet2DConditionModel and
transformers' T5EncoderModel built from the SAME config.json files, on the same batch.

  python3 bench/torch_models.py --json --threads 2 --unet-config U.json --t5-config T.json \
      --batch 4 --size 64 [--diffusers-src DIR | $DIFFUSERS_SRC] [--quick]

diffusers is used from a source checkout (never vendored): pass --diffusers-src or set
DIFFUSERS_SRC to the folder containing `src/diffusers`. Missing pieces → one JSON object with an
"error" field and exit status 0, so `npm run bench` degrades gracefully.
"""
import argparse, json, os, resource, sys, time


def out(obj):
    print(json.dumps(obj))
    sys.exit(0)


def stats(fn, warmup, min_runs, min_s, max_runs):
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < min_s):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return times[len(times) // 2], times[0], len(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--json", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--unet-config", required=True)
    p.add_argument("--t5-config", required=True)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--diffusers-src", default=os.environ.get("DIFFUSERS_SRC"))
    a = p.parse_args()
    try:
        import torch
    except ImportError:
        out({"error": "torch not installed: python3 -m pip install torch"})
    src = a.diffusers_src
    if not src:
        out({"error": "diffusers source not given: --diffusers-src DIR or DIFFUSERS_SRC (a huggingface/diffusers checkout)"})
    sys.path.insert(0, os.path.join(src, "src") if os.path.isdir(os.path.join(src, "src")) else src)
    try:
        from diffusers import UNet2DConditionModel
        from transformers import T5Config, T5EncoderModel
    except Exception as e:  # noqa: BLE001 — report any import problem as a note
        out({"error": f"cannot import diffusers/transformers: {e}"})

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    warm, runs, secs, maxr = (1, 3, 0.2, 50) if a.quick else (3, 10, 2.0, 500)
    cfg = json.load(open(a.unet_config))
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    unet = UNet2DConditionModel(**cfg).eval()
    text = cfg.get("encoder_hid_dim") or cfg["cross_attention_dim"]
    b, s = a.batch, a.size
    x = torch.randn(b, cfg["in_channels"], s, s)
    e = torch.randn(b, 77, text)
    t = torch.tensor([500])
    res = {"version": torch.__version__, "threads": a.threads}
    with torch.no_grad():
        m, best, n = stats(lambda: unet(x, t, encoder_hidden_states=e), warm, runs, secs, maxr)
        res.update(unet_forward_ms=round(m, 3), unet_forward_best_ms=round(best, 3))
        x2, e2 = torch.randn(2 * b, cfg["in_channels"], s, s), torch.randn(2 * b, 77, text)
        m, best, n = stats(lambda: unet(x2, t, encoder_hidden_states=e2), warm, runs, secs, maxr)
        res.update(sample_step_ms=round(m, 3), sample_step_best_ms=round(best, 3))

    unet.train()
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    noise = torch.randn(b, 3, s, s)

    def train_step():
        tt = torch.randint(0, 1000, (b,))
        outp = unet(x, tt, encoder_hidden_states=e).sample
        loss = ((outp[:, :3] - noise) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()

    m, best, n = stats(train_step, 1, min(runs, 5), secs, maxr)
    res.update(unet_train_step_ms=round(m, 3), unet_train_step_best_ms=round(best, 3))

    tcfg = json.load(open(a.t5_config))
    t5 = T5EncoderModel(T5Config(**{k: v for k, v in tcfg.items() if k not in ("architectures",)})).eval()
    ids = torch.arange(154).reshape(2, 77) * 37 % 1000
    mask = torch.ones(2, 77, dtype=torch.long)
    with torch.no_grad():
        m, best, n = stats(lambda: t5(input_ids=ids, attention_mask=mask), warm, runs, secs, maxr)
    res.update(t5_encode_ms=round(m, 3), t5_encode_best_ms=round(best, 3))
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out(res)


if __name__ == "__main__":
    main()
