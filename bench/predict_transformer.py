"""Predicted beside measured per-block statistics of the transformer of momentcalc.torch.transformer (causal
attention and a SwiGLU MLP per block): variant "standard" (torch's ops and init) and "exact" (momentcalc's unit
ops, u-muP's residual rule). The table of docs/predict.md.

    python bench/predict_transformer.py [--depth 4] [--width 256] [--heads 4] [--seq 128] [--batch 8]

Per block: the block's output (the stream), its attention branch's output (before the residual weight) and the
attention op's output; predicted std / measured std, and the gradient RMS at the block's output.
"""

from __future__ import annotations

import argparse
import time

import torch

from momentcalc.torch import predict
from momentcalc.torch.transformer import DATA_SEED, Config, Stack


def rows(variant: str, config: Config, seed: int = 0):
    torch.manual_seed(seed)
    model = Stack(config, variant)
    gen = torch.Generator().manual_seed(DATA_SEED + seed)
    x = torch.randn((config.batch, config.seq, config.width), generator=gen)
    p = predict(model, x, seed=seed)
    for b in range(config.depth):
        nodes = [n for n in p.nodes if n.module == f"blocks.{b}"]
        attention = [n for n in nodes if n.kind == "scaled_dot_product_attention"][0]
        after = nodes[nodes.index(attention) + 1 :]
        at = next(i for i, n in enumerate(after) if n.kind == "linear")
        scaled = after[at + 1].kind.startswith("apply_")  # a unit linear: F.linear, then its forward scale
        branch = after[at + 1] if scaled else after[at]
        yield b, nodes[-1], branch, attention, p


def main() -> None:
    parser = argparse.ArgumentParser()
    for name, default in (("depth", 4), ("width", 256), ("heads", 4), ("seq", 128), ("batch", 8)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--variants", default="standard,exact")
    a = parser.parse_args()
    # the exact variant with the op's default scales: predict carries no covariance across positions, which the
    # transformer's default ("propagated") tells each attention
    config = Config(depth=a.depth, width=a.width, heads=a.heads, seq=a.seq, batch=a.batch, positions="independent")
    for variant in a.variants.split(","):
        start = time.time()
        print(f"{variant}: depth {a.depth}, width {a.width}, heads {a.heads}, seq {a.seq}, batch {a.batch}")
        print("block  stream pred/meas (ratio)     attn branch pred/meas   attention op pred/meas  grad pred/meas")
        for b, out, branch, att, p in rows(variant, config):  # noqa: B007 (p: the last one, after)
            print(
                f"{b:5d}  {out.std:6.4f} {out.measured_std:6.4f} ({out.std / out.measured_std:6.4f})   "
                f"{branch.std:7.4f} {branch.measured_std:7.4f}      {att.std:6.4f} {att.measured_std:6.4f}"
                f"         {out.grad_rms:6.4f} {out.measured_grad_rms:6.4f}"
            )
        print(f"unmodeled: {[n.name for n in p.unmodeled]}; {time.time() - start:.0f} s\n")


if __name__ == "__main__":
    main()
