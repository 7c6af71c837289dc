"""``champ3d demo``: the weight-free path on a built-in example."""
from __future__ import annotations

import argparse
from pathlib import Path

from champ3d.commands.options import positive_int

HELP = "animate a built-in example, weight-free (real footage if present, else synthetic)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--size", type=positive_int, default=512)


def run(args: argparse.Namespace) -> int:
    from champ3d.demo import run_demo

    summary = run_demo(args.out, size=args.size, overwrite=True)
    guidance = summary["guidance"]
    print(f"demo written to {args.out}: animation.mp4 ({summary['frames']} frames at {summary['fps']} fps), "
          f"texture.png, guidance folders, qc.mp4, contact_sheet.png; driving mask IoU "
          f"{guidance['driving_mask_iou']['median']:.3f}, frame-0 reference IoU {guidance['reference_mask_iou']:.3f}")
    return 0
