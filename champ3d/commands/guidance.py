"""``champ3d guidance``: fit both inputs, align, render Champ's guidance layout."""
from __future__ import annotations

import argparse
import json

from champ3d.commands.options import (add_align_options, add_body_options, add_reenactment_inputs, align_settings,
                                      check_media, make_body_from_args)

HELP = "fit, align and render Champ guidance for a reference and a driving video"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_reenactment_inputs(p, out_help="output folder (Champ's guidance layout)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    add_align_options(p)
    add_body_options(p)


def run(args: argparse.Namespace) -> int:
    from champ3d.guidance import make_guidance

    check_media(args.ref, args.driving)
    summary = make_guidance(args.ref, args.driving, args.out, make_body_from_args(args), size=args.size,
                            max_frames=args.max_frames, align_settings=align_settings(args),
                            overwrite=args.overwrite)
    brief = {k: summary[k] for k in ("reference_mask_iou", "root_trajectory_correlation", "frames")}
    brief["driving_mask_iou_median"] = summary["driving_mask_iou"]["median"]
    brief["driving_keypoint_error_median"] = summary["driving_keypoint_error"]["median"]
    print(json.dumps(brief, indent=2))
    print(f"guidance written to {args.out}")
    return 0
