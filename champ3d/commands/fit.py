"""``champ3d fit``: fit the body model to an image or a video and save the fit."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from champ3d.commands.options import add_body_options, check_media, make_body_from_args, positive_int

HELP = "fit the body model to an image or a video"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("media", type=Path, help="image, video or image folder")
    p.add_argument("--out", type=Path, required=True, help="fit file (NAME.json + NAME.safetensors)")
    p.add_argument("--max-frames", type=positive_int, default=None)
    add_body_options(p)


def run(args: argparse.Namespace) -> int:
    from champ3d.fitting.fit_io import save_fit
    from champ3d.guidance import fit_media

    check_media(args.media)
    fitted = fit_media(args.media, make_body_from_args(args), max_frames=args.max_frames)
    path = save_fit(args.out, fitted.fit, fitted.detections, {"media": fitted.info})
    print(json.dumps(fitted.info, indent=2))
    print(f"fit written to {path}")
    return 0
