#!/usr/bin/env python3
"""Does a stage-I pipeline folder place objects where the prompt says? Dev-only (diffusers,
transformers, torch; see bench/diffusers_roundtrip.md for the setup), not part of `npm test`.

For prompt pairs that differ only in the corner they name, it runs the UNet on the same 32 noise
draws at a few timesteps and reports how much more of the named colour the predicted x0 puts in
the named corner's quadrant than in the opposite one, under the first prompt minus under the second
(0 = the corner words change nothing). It also reports, per attention layer, the share of
attention that goes to the text tokens and how much the spread over those tokens varies across
spatial positions (near 0 = every position reads the text alike, i.e. the text is a global signal).

  python3 training/probe_layout.py models/imagen-ts-shapes/base --diffusers-src /tmp/diffusers-src
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

PAIRS = [
    ("a red circle in the top left corner", "a red circle in the bottom right corner", "red", ("tl", "br")),
    ("a blue square in the top right corner", "a blue square in the bottom left corner", "blue", ("tr", "bl")),
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="stage-I pipeline folder (unet/, text_encoder/, tokenizer/, scheduler/)")
    p.add_argument("--diffusers-src", type=Path, help="diffusers checkout (its src/ is put first on sys.path)")
    p.add_argument("--samples", type=int, default=32)
    a = p.parse_args()
    if a.diffusers_src:
        root = a.diffusers_src / "src" if (a.diffusers_src / "src" / "diffusers").is_dir() else a.diffusers_src
        sys.path.insert(0, str(root))
    import torch
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, T5EncoderModel

    d = a.folder
    unet = UNet2DConditionModel.from_pretrained(str(d / "unet"), torch_dtype=torch.float32).eval()
    enc = T5EncoderModel.from_pretrained(str(d / "text_encoder"), torch_dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(d / "tokenizer"))
    alphas = DDPMScheduler.from_pretrained(str(d / "scheduler")).alphas_cumprod
    length = json.loads((d / "tokenizer" / "tokenizer_config.json").read_text()).get("model_max_length", 77)

    def embed(prompt: str):
        t = tok(prompt, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
        with torch.no_grad():
            return enc(t.input_ids, attention_mask=t.attention_mask).last_hidden_state

    n, s = a.samples, unet.config.sample_size
    noise = torch.randn(n, 3, s, s, generator=torch.Generator().manual_seed(0))
    h = s // 2

    def quadrant(m, q: str) -> float:
        ys = slice(0, h) if q[0] == "t" else slice(h, s)
        xs = slice(0, h) if q[1] == "l" else slice(h, s)
        return m[ys, xs].mean().item()

    def colour_mass(x0, colour: str):
        r, g, b = x0[:, 0], x0[:, 1], x0[:, 2]
        m = r - (g + b) / 2 if colour == "red" else b - (r + g) / 2
        return m.clamp(min=0).mean(0)

    print(f"{d}: colour mass in the named quadrant minus the opposite one, prompt A minus prompt B")
    for t in (950, 850, 700):
        ab = alphas[t].item()
        parts = []
        for pa, pb, colour, (qa, qb) in PAIRS:
            maps = []
            for prompt in (pa, pb):
                with torch.no_grad():
                    eps = unet(noise, t, encoder_hidden_states=embed(prompt).repeat(n, 1, 1)).sample[:, :3]
                x0 = ((noise - math.sqrt(1 - ab) * eps) / math.sqrt(ab)).clamp(-1, 1)
                maps.append(colour_mass(x0, colour))
            signal = (quadrant(maps[0], qa) - quadrant(maps[0], qb)) - (quadrant(maps[1], qa) - quadrant(maps[1], qb))
            scale = maps[0].mean().item()
            parts.append(f"{colour} {signal:+.4f} (mean mass {scale:.3f})")
        print(f"  t={t}: " + ", ".join(parts))

    # Attention: share on the text keys and how position-dependent the spread over tokens is.
    stats: dict[str, tuple[float, float]] = {}

    def recorder(name: str, inner):
        def call(attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kw):
            b, c = hidden_states.shape[:2]
            hs = hidden_states.view(b, c, -1).transpose(1, 2)
            ehs = attn.norm_encoder_hidden_states(encoder_hidden_states) if attn.norm_cross else encoder_hidden_states
            hs = attn.group_norm(hs.transpose(1, 2)).transpose(1, 2)
            q = attn.head_to_batch_dim(attn.to_q(hs))
            text_k = attn.head_to_batch_dim(attn.add_k_proj(ehs))
            k = text_k if attn.only_cross_attention else torch.cat([text_k, attn.head_to_batch_dim(attn.to_k(hs))], 1)
            probs = attn.get_attention_scores(q, k, None)
            text = probs[:, :, : text_k.shape[1]]
            share = text.sum(-1)
            spread = text / share.unsqueeze(-1).clamp(min=1e-9)
            stats[name] = (share.mean().item(), spread.std(1).mean().item())
            return inner(attn, hidden_states, encoder_hidden_states, attention_mask, **kw)

        return call

    for name, mod in unet.named_modules():
        if hasattr(mod, "processor") and "AddedKV" in type(mod.processor).__name__:
            mod.processor = recorder(name, mod.processor)
    with torch.no_grad():
        unet(noise[:8], 900, encoder_hidden_states=embed(PAIRS[0][0]).repeat(8, 1, 1))
    print(f"attention at t=900 ({length} text tokens; uniform spread would be {1 / length:.3f} per token):")
    for name, (share, var) in stats.items():
        print(f"  {name:32s} text share {share:.3f}, spread varies across positions by {var:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
