"""Predicted beside measured per-block statistics of timm's NF-ResNets, a ResNet-18 and a 50-block plain CNN,
before and after momentcalc.torch.autoinit: the tables of docs/predict.md.

    python bench/predict.py [--batch 4] [--size 128] [--models nf_resnet26,nf_regnet_b0,resnet18,plain50]

timm is used where it is installed (pip install timm, after torch==2.13.0); the test suite never needs it. Where
the installed torchvision's compiled ops do not load against the CPU build of torch (its op registrations fail at
import), the bench skips those registrations: timm's models do not call them.
"""

from __future__ import annotations

import argparse
import sys
import time
import types

import torch
from torch import nn

from momentcalc.torch import autoinit

BLOCK_DEPTH = {"nf_resnet26": 2, "nf_regnet_b0": 2, "resnet18": 2, "plain50": 1}


def _timm():
    try:
        import timm  # noqa: F401
    except RuntimeError:  # torchvision's op registrations against a torch build they were not compiled for
        for name in [m for m in sys.modules if m.startswith(("torchvision", "timm"))]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    except ImportError:
        return None
    import timm

    return timm


def plain_cnn(depth: int = 50, width: int = 64) -> nn.Sequential:
    """depth blocks of conv3x3 | relu, He (fan_in) initialisation, after a 3 -> width stem."""
    blocks = [nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU())]
    for _ in range(depth - 1):
        conv = nn.Conv2d(width, width, 3, padding=1)
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        nn.init.zeros_(conv.bias)
        blocks.append(nn.Sequential(conv, nn.ReLU()))
    return nn.Sequential(*blocks)


def table(prediction, depth: int) -> list[str]:
    lines = [
        "| block | output of | pred std | meas std | pred/meas var | pred grad RMS | meas grad RMS |",
        "|---" * 7 + "|",
    ]
    for n in prediction.blocks(depth):
        lines.append(
            f"| {n.module} | {n.kind} | {n.std:.4g} | {n.measured_std:.4g} | {n.variance_ratio:.3f} | "
            f"{n.grad_rms:.3g} | {n.measured_grad_rms:.3g} |"
        )
    return lines


def summary(prediction, depth: int) -> str:
    rows = prediction.blocks(depth)
    ratios = [n.variance_ratio for n in rows]
    meas = [n.measured_std**2 for n in rows]
    return (
        f"{len(rows)} blocks: pred/meas variance {min(ratios):.3f} to {max(ratios):.3f}; measured variance "
        f"{min(meas):.3g} to {max(meas):.3g}; unmodeled nodes: {len(prediction.unmodeled)}"
        + "".join(f"\n  - {n.name} ({n.kind}): {n.note}" for n in prediction.unmodeled[:6])
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--models", default="nf_resnet26,nf_regnet_b0,resnet18,plain50")
    parser.add_argument("--measured", action="store_true", help="autoinit's correction by measurement, reported")
    args = parser.parse_args()
    timm = _timm()
    for name in args.models.split(","):
        torch.manual_seed(0)
        if name == "plain50":
            model, shape = plain_cnn(), (args.batch, 3, 16, 16)
        elif timm is None:
            print(f"## {name}: skipped (pip install timm)\n")
            continue
        else:
            model, shape = timm.create_model(name, pretrained=False), (args.batch, 3, args.size, args.size)
        model.train()
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        start = time.perf_counter()
        report = autoinit(model, x, measured=args.measured)
        seconds = time.perf_counter() - start
        depth = BLOCK_DEPTH.get(name, 1)
        print(f"## {name}, input {shape}, train mode ({seconds:.0f} s for predict, autoinit and its check)\n")
        for label, p in (("before", report.before), ("after autoinit", report.after)):
            print(f"### {label}\n\n{summary(p, depth)}\n")
            if label != "before":
                held = [s.measured_std**2 for s in report.layers]
                print(f"{len(held)} rescaled nodes, measured variance {min(held):.3f} to {max(held):.3f}\n")
                if args.measured:
                    fixed = ", ".join(f"{node} {ratio:.3f}" for node, ratio in report.corrections) or "none"
                    print(f"corrected by measurement (measured/target variance before): {fixed}\n")
            print("\n".join(table(p, depth)) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
