"""``champ3d animate``: the reference person performing the driving motion.

Runs guidance (fit, align, render Champ's layout), bakes the reference photo's texture
onto the body and renders it along the motion (see :mod:`champ3d.animation` for the
output folder). The default ``mesh`` generator needs no weights: it composites the
textured body over the background. ``--generator champ --weights DIR`` runs Champ's
diffusion pipeline on the guidance instead.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from champ3d.commands.options import (add_align_options, add_body_options, add_reenactment_inputs,
                                      add_texture_options, align_settings, check_media, make_body_from_args,
                                      texture_views)

HELP = "animate a reference photo with a driving video (weight-free textured body by default)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_reenactment_inputs(p, out_help="output folder (guidance layout plus texture and animation.mp4)")
    p.add_argument("--camera-path", default=None, metavar="PATH",
                   help="move the camera: a camera-path YAML file or a shortcut such as orbit:views=120,elevation=10 "
                        "(see render.camera_paths)")
    p.add_argument("--background", default="inpaint", metavar="inpaint|#RRGGBB|IMAGE",
                   help="the reference photo with the person removed (default), a colour or an image file")
    p.add_argument("--generator", choices=("mesh", "champ"), default="mesh",
                   help="mesh: textured body composite (no weights); champ: Champ diffusion (needs --weights)")
    p.add_argument("--weights", type=Path, default=None, help="Champ weights folder (with --generator champ)")
    p.add_argument("--generator-config", type=Path, default=None, metavar="YAML",
                   help="champ generator settings overriding configs/generate/champ.yaml (steps, cfg, windows, dtype)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    add_texture_options(p)
    add_align_options(p)
    add_body_options(p)


def settings_from_args(args: argparse.Namespace):
    """The run's settings, every input checked before any work starts."""
    from champ3d.animation import AnimationSettings, check_settings
    from champ3d.background import parse_background
    from render.camera_paths import camera_path_from_text

    settings = AnimationSettings(
        size=args.size, max_frames=args.max_frames, atlas_size=args.atlas_size, texture_views=texture_views(args),
        infill_weights=args.infill_weights,
        background=parse_background(args.background),
        camera_path=None if args.camera_path is None else camera_path_from_text(args.camera_path),
        generator=args.generator, weights=args.weights, generator_config=args.generator_config,
        align=align_settings(args),
    )
    check_settings(settings)
    return settings


def run(args: argparse.Namespace) -> int:
    from champ3d.animation import animate
    from champ3d.appearance import console_record

    settings = settings_from_args(args)
    check_media(args.ref, args.driving)
    summary = animate(args.ref, args.driving, args.out, make_body_from_args(args), settings, overwrite=args.overwrite)
    brief = {k: summary[k] for k in ("frames", "fps", "size", "generator", "seconds")}
    brief["texture"] = console_record(summary["texture"])
    print(json.dumps(brief, indent=2))
    print(f"animation written to {args.out / 'animation.mp4'}")
    return 0
