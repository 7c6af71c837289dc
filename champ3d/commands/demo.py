"""``champ3d demo``: the weight-free path on a built-in example."""
from __future__ import annotations

import argparse
from pathlib import Path

from champ3d.commands.options import positive_int

HELP = "guidance for a built-in example (real footage if present, else synthetic)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--size", type=positive_int, default=512)


def run(args: argparse.Namespace) -> int:
    from champ3d.demo import run_demo

    summary = run_demo(args.out, size=args.size, overwrite=True)
    print(f"demo written to {args.out} (qc.mp4, contact_sheet.png, guidance folders); "
          f"driving mask IoU {summary['driving_mask_iou']['median']:.3f}")
    return 0
