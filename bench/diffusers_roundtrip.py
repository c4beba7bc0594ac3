#!/usr/bin/env python3
"""Round trip of a pipeline folder written by `imagen train` through the REAL diffusers/transformers.

Dev-only (not part of `npm test`): needs torch, transformers and safetensors, plus diffusers (an
installed copy, or a source checkout given with --diffusers-src). It checks that what imagen-ts
saves is a folder the upstream libraries load with no conversion, and that they compute the same
thing from it:

  1. the whole folder loads with `DiffusionPipeline.from_pretrained` (model_index.json, scheduler,
     tokenizer, and the pipeline class we name);
  2. `UNet2DConditionModel.from_pretrained(DIR/unet)` and `T5EncoderModel.from_pretrained(
     DIR/text_encoder)` load with no missing or unexpected weights;
  3. fixed inputs are saved to safetensors, `imagen forward` (our side, ONNX Runtime) runs on the
     same folder, the upstream modules run on the same inputs in float32, and the max abs
     difference is reported (UNet with and without an encoder attention mask, T5 with padding).

Usage:
  imagen train --data shapes/ --out /tmp/tiny --resolution 16 --steps 20
  python3 bench/diffusers_roundtrip.py --folder /tmp/tiny --diffusers-src /tmp/diffusers-src
Exit status 1 when a difference exceeds --tol (relative to the reference output's max |value|).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", required=True, type=Path, help="pipeline folder written by `imagen train`")
    p.add_argument("--diffusers-src", type=Path, help="diffusers checkout (its src/ is put first on sys.path)")
    p.add_argument("--work", type=Path, help="where to keep inputs/outputs (default: a temp folder)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--tokens", type=int, default=12, help="text length for the T5 and UNet inputs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=float, default=1e-4, help="max |ours − upstream| / max |upstream|")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    return p.parse_args()


def import_upstream(src: Path | None):
    if src is not None:
        # Accept the checkout root or its src/ folder.
        root = src / "src" if (src / "src" / "diffusers").is_dir() else src
        sys.path.insert(0, str(root))
    import diffusers  # noqa: E402
    import torch  # noqa: E402
    import transformers  # noqa: E402

    return torch, diffusers, transformers


def imagen_forward(model: Path, inputs: Path, out: Path) -> str | None:
    """Our side: the same CLI users run (`imagen forward`), from the TypeScript sources.
    Returns None on success, else its error message (reported as a failed check)."""
    out.unlink(missing_ok=True)
    cmd = ["node", str(REPO / "bin" / "imagen.js"), "forward", "--model", str(model), "--inputs", str(inputs), "--out", str(out)]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        return f"imagen forward exited {r.returncode}: {r.stderr.strip().splitlines()[0] if r.stderr.strip() else ''}"
    return None


def failed(name: str, error: str) -> dict:
    return {"check": name, "ok": False, "error": error}


def compare(name: str, ours, ref, tol: float) -> dict:
    diff = (ours.double() - ref.double()).abs()
    scale = ref.double().abs().max().item()
    row = {
        "check": name,
        "shape": list(ref.shape),
        "max_abs_diff": diff.max().item(),
        "mean_abs_diff": diff.mean().item(),
        "ref_max_abs": scale,
    }
    row["relative"] = row["max_abs_diff"] / max(scale, 1e-30)
    row["ok"] = row["relative"] <= tol
    return row


def main() -> int:
    a = parse_args()
    torch, diffusers, transformers = import_upstream(a.diffusers_src)
    from safetensors.torch import load_file, save_file

    folder = a.folder.resolve()
    work = a.work or Path(tempfile.mkdtemp(prefix="diffusers-roundtrip-"))
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(a.seed)
    results: list[dict] = []
    info = {
        "folder": str(folder),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "diffusers_file": diffusers.__file__,
        "transformers": transformers.__version__,
    }

    # 1. The whole folder, as a user of diffusers would load it.
    index = json.loads((folder / "model_index.json").read_text())
    pipe = diffusers.DiffusionPipeline.from_pretrained(str(folder), torch_dtype=torch.float32)
    info["pipeline_class"] = type(pipe).__name__
    if type(pipe).__name__ != index["_class_name"]:
        raise SystemExit(f"DiffusionPipeline loaded {type(pipe).__name__}, model_index.json says {index['_class_name']}")
    info["scheduler"] = type(pipe.scheduler).__name__
    info["tokenizer"] = type(pipe.tokenizer).__name__ if pipe.tokenizer is not None else None

    # 1b. Prompt → embeddings through diffusers' own IFPipeline.encode_prompt (its tokenizer, loaded
    # from our tokenizer/ files, and T5) against `imagen encode` on the same folder. diffusers
    # pads IF prompts to 77 tokens and, with clean_caption=False, only lower-cases and strips.
    if pipe.tokenizer is not None and pipe.text_encoder is not None:
        prompts = ["A Red Square, on grey  ", "a blue square"]
        label = "prompt → T5 embeddings (encode_prompt)"
        fout = work / "encode_out.safetensors"
        fout.unlink(missing_ok=True)
        cmd = ["node", str(REPO / "bin" / "imagen.js"), "encode", *prompts, "--text-encoder", str(folder),
               "--no-clean-caption", "--max-length", "77", "--out", str(fout)]
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if r.returncode != 0:
            results.append(failed(label, f"imagen encode exited {r.returncode}: {r.stderr.strip()}"))
        else:
            with torch.no_grad():
                ref, _ = pipe.encode_prompt(prompts, do_classifier_free_guidance=False, clean_caption=False)
            results.append(compare(label, load_file(str(fout))["prompt_embeds"], ref, a.tol))
    del pipe

    # 2 + 3a. The UNet.
    unet, loading = diffusers.UNet2DConditionModel.from_pretrained(
        str(folder / "unet"), torch_dtype=torch.float32, output_loading_info=True
    )
    bad = {k: v for k, v in loading.items() if v}
    if bad:
        raise SystemExit(f"diffusers reported loading problems for unet/: {bad}")
    unet.eval()
    cfg = unet.config
    b, s, n = a.batch, cfg.sample_size, a.tokens
    text_dim = cfg.encoder_hid_dim or cfg.cross_attention_dim
    sr = cfg.class_embed_type == "timestep"
    inputs = {
        "sample": torch.randn(b, cfg.in_channels, s, s),
        # A late and an early timestep, so both ends of the time embedding are exercised.
        "timestep": torch.tensor([981, 17][:b] + [500] * max(0, b - 2), dtype=torch.int64),
        "encoder_hidden_states": torch.randn(b, n, text_dim),
    }
    if sr:
        inputs["class_labels"] = torch.tensor([250, 0][:b] + [100] * max(0, b - 2), dtype=torch.int64)
    mask = torch.ones(b, n, dtype=torch.int64)
    mask[0, n // 2 :] = 0  # the first prompt is shorter: its tail tokens are padding
    for label, with_mask in (("unet", False), ("unet + encoder_attention_mask", True)):
        feed = dict(inputs)
        if with_mask:
            feed["encoder_attention_mask"] = mask
        fin, fout = work / f"{label.split()[0]}{'_mask' if with_mask else ''}_in.safetensors", work / "out.safetensors"
        save_file({k: v.contiguous() for k, v in feed.items()}, str(fin))
        err = imagen_forward(folder / "unet", fin, fout)
        if err:
            results.append(failed(label, err))
            continue
        ours = load_file(str(fout))["sample"]
        try:
            with torch.no_grad():
                ref = unet(
                    feed["sample"],
                    feed["timestep"],
                    encoder_hidden_states=feed["encoder_hidden_states"],
                    class_labels=feed.get("class_labels"),
                    encoder_attention_mask=feed.get("encoder_attention_mask"),
                ).sample
        except RuntimeError as e:
            # e.g. diffusers' AttnAddedKVProcessor2_0 pads a text mask to the query length, which
            # fails for only_cross_attention layers (IF's pipelines never pass a mask).
            results.append(failed(label, f"diffusers: {e}"))
            continue
        results.append(compare(label, ours, ref, a.tol))
    del unet

    # 2 + 3b. The text encoder.
    if (folder / "text_encoder").is_dir():
        t5, loading = transformers.T5EncoderModel.from_pretrained(
            str(folder / "text_encoder"), torch_dtype=torch.float32, output_loading_info=True
        )
        # T5EncoderModel ties encoder.embed_tokens to shared; only truly missing weights count.
        missing = [k for k in loading.get("missing_keys", []) if k != "encoder.embed_tokens.weight"]
        bad = {k: v for k, v in loading.items() if v and k != "missing_keys"}
        if missing or bad:
            raise SystemExit(f"transformers reported loading problems for text_encoder/: missing {missing}, {bad}")
        t5.eval()
        # ByT5 byte tokens, or any id of a smaller (word-level) vocabulary.
        ids = torch.randint(3, min(259, t5.config.vocab_size), (b, n), dtype=torch.int64)
        ids[:, -1] = 1  # </s>
        t_mask = torch.ones(b, n, dtype=torch.int64)
        ids[0, n // 2 :] = 0  # <pad>
        t_mask[0, n // 2 :] = 0
        fin, fout = work / "t5_in.safetensors", work / "t5_out.safetensors"
        save_file({"input_ids": ids, "attention_mask": t_mask}, str(fin))
        label = "text_encoder (T5EncoderModel)"
        err = imagen_forward(folder / "text_encoder", fin, fout)
        if err:
            results.append(failed(label, err))
        else:
            ours = load_file(str(fout))["last_hidden_state"]
            with torch.no_grad():
                ref = t5(input_ids=ids, attention_mask=t_mask).last_hidden_state
            results.append(compare(label, ours, ref, a.tol))

    if a.json:
        print(json.dumps({"info": info, "results": results}, indent=2))
    else:
        for k, v in info.items():
            print(f"{k}: {v}")
        print(f"\n{'check':34} {'shape':18} {'max |Δ|':>10} {'max |ref|':>10} {'relative':>10}")
        for r in results:
            if "error" in r:
                print(f"{r['check']:34} FAIL: {r['error']}")
                continue
            print(
                f"{r['check']:34} {str(r['shape']):18} {r['max_abs_diff']:10.3e} {r['ref_max_abs']:10.3e} "
                f"{r['relative']:10.3e} {'ok' if r['ok'] else 'FAIL'}"
            )
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
