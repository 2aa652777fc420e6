"""A small causal transformer trained on a copy task in bfloat16 autocast, three variants side by side (not a test).

    PYTHONPATH=. python bench/train_transformer.py [--steps 300] [--depth 4] [--width 64]
        [--lrs 1e-3,3e-3,1e-2] [--threads 1]

The variants are momentcalc.torch.transformer's: unit-scaling (unit-scaling 0.3.5's ops, skipped where the
package is not installed), exact (momentcalc's exact ops) and standard (torch's ops and default init). The
blocks are the measured transformer's, shrunk to fit a CPU (depth 4, width 64, 4 heads, sequence 16, batch 32 by
default); around them an nn.Embedding (N(0, 1) rows: unit scale for all three), an RMS normalization and a
readout linear (the variant's linear, scale 1 / sqrt(width)), and torch's cross entropy.

Task: [SEP, x_1 .. x_7, SEP, x_1 .. x_7] with x_i uniform over 15 symbols; the loss counts only the seven copied
symbols (each is predictable from the first half: the floor is 0; guessing gives ln 15 = 2.708). Every variant
sees the same batches (one seed). Adam, one learning rate for all parameters, each rate of --lrs tried; the table
prints the loss (mean over the last 10 steps) every --every steps and the seconds per step, with the load.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

# This folder holds a file named like the unit-scaling package (unit_scaling.py): keep it off the path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from momentcalc.torch import transformer as T  # noqa: E402
from momentcalc.torch import unit as U  # noqa: E402

SYMBOLS, HALF = 15, 7
SEP = SYMBOLS  # vocabulary: 15 symbols and the separator


class LM(nn.Module):
    def __init__(self, config: T.Config, variant: str):
        super().__init__()
        self.variant = variant
        self.embed = nn.Embedding(SYMBOLS + 1, config.width)  # N(0, 1) rows
        self.stack = T.Stack(config, variant)
        self.readout = nn.Parameter(torch.empty(SYMBOLS + 1, config.width))
        if variant == "standard":
            nn.init.kaiming_uniform_(self.readout, a=math.sqrt(5))
        else:
            nn.init.normal_(self.readout)

    def forward(self, tokens):
        h = F.rms_norm(self.stack(self.embed(tokens)), (self.readout.shape[1],))
        if self.variant == "standard":
            return F.linear(h, self.readout)
        ops = T.unit_scaling_functional() if self.variant == "unit-scaling" else U
        return ops.linear(h, self.readout, None, "to_output_scale")


def batch(gen: torch.Generator, size: int) -> torch.Tensor:
    x = torch.randint(0, SYMBOLS, (size, HALF), generator=gen)
    sep = torch.full((size, 1), SEP)
    return torch.cat([sep, x, sep, x], dim=1)  # length 2 * HALF + 2 = 16


def copy_loss(model: LM, tokens: torch.Tensor) -> torch.Tensor:
    logits = model(tokens[:, :-1])[:, -HALF:]  # predictions of the seven copied symbols
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tokens[:, -HALF:].reshape(-1))


def train(config: T.Config, variant: str, lr: float, steps: int, batch_size: int, every: int, seed: int):
    torch.manual_seed(seed)
    model = LM(config, variant)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed + 1)
    losses, start = [], time.perf_counter()
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = copy_loss(model, batch(gen, batch_size))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item() if math.isfinite(loss.item()) else math.nan)
    seconds = (time.perf_counter() - start) / steps
    curve = [sum(losses[max(0, s - 10) : s]) / len(losses[max(0, s - 10) : s]) for s in range(every, steps + 1, every)]
    return curve, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lrs", default="1e-3,3e-3,1e-2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: a shared machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = T.Config(depth=args.depth, width=args.width, heads=4, seq=2 * HALF + 1, batch=args.batch)
    variants = T.available_variants()
    t0 = time.perf_counter()
    T.warm_attention_scales(config, lambda done, total: None)  # the exact variant's scales, before any timing
    print(f"exact attention scales for 1..{config.seq} keys: {time.perf_counter() - t0:.0f} s (once per process)")
    print(
        f"depth {config.depth}, width {config.width}, 4 heads, sequence {config.seq}, batch {args.batch}, "
        f"{args.threads} torch thread(s), "
        f"bfloat16 autocast, Adam, {args.steps} steps; loss of the copied half, ln {SYMBOLS} = {math.log(SYMBOLS):.3f}"
    )
    steps = list(range(args.every, args.steps + 1, args.every))
    print(f"{'variant':13s} {'lr':>7s} " + " ".join(f"{s:>6d}" for s in steps) + "   s/step  load")
    for variant in variants:
        for lr in (float(x) for x in args.lrs.split(",")):
            curve, seconds = train(config, variant, lr, args.steps, args.batch, args.every, args.seed)
            load = os.getloadavg()[0]
            cells = " ".join(f"{c:6.3f}" for c in curve)
            print(f"{variant:13s} {lr:7.0e} {cells}   {seconds:6.3f}  {load:4.1f}", flush=True)


if __name__ == "__main__":
    main()
