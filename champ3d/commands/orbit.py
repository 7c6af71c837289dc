"""``champ3d orbit``: the reference person in their own pose, seen from every view of a
camera path (3DHM's turntable by default: 30 views every 12 degrees). See
:mod:`champ3d.orbit` for the output folder and :mod:`render.camera_paths` for the paths.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from champ3d.commands.options import (add_body_options, add_texture_options, check_media, make_body_from_args,
                                      positive_int, texture_views)

HELP = "render the reference person from every view of an orbit or camera path"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ref", type=Path, required=True, help="reference image of the person")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--views", type=int, default=None, help="orbit views, evenly over a full turn (default 30)")
    p.add_argument("--elevation", type=float, default=None, help="orbit elevation, degrees (default 0)")
    p.add_argument("--path", default=None, metavar="PATH.yaml",
                   help="a camera-path YAML file or shortcut instead of --views/--elevation")
    p.add_argument("--size", type=positive_int, default=512, help="longer side of the views (px)")
    p.add_argument("--background", default="#000000", metavar="inpaint|#RRGGBB|IMAGE",
                   help="backdrop of orbit.mp4: black (default), the reference photo with the person removed, "
                        "a colour or an image file")
    p.add_argument("--fps", type=float, default=15.0, help="frame rate of orbit.mp4")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    add_texture_options(p)
    add_body_options(p)


def camera_path_from_args(args: argparse.Namespace):
    from champ3d.errors import Champ3dInputError
    from render.camera_paths import camera_path_from_text, parse_camera_path

    if args.path is not None:
        if args.views is not None or args.elevation is not None:
            raise Champ3dInputError("--path", "give either --path or --views/--elevation, not both")
        return camera_path_from_text(args.path, where="--path")
    spec = {"type": "orbit"}
    spec |= {} if args.views is None else {"views": args.views}
    spec |= {} if args.elevation is None else {"elevation": args.elevation}
    return parse_camera_path(spec, "--views/--elevation")


def run(args: argparse.Namespace) -> int:
    from champ3d.appearance import console_record
    from champ3d.background import parse_background
    from champ3d.errors import Champ3dInputError
    from champ3d.orbit import render_orbit
    from texture.atlas import check_atlas_size

    path = camera_path_from_args(args)
    check_atlas_size(args.atlas_size)
    if not args.fps > 0:
        raise Champ3dInputError("--fps", f"must be positive, got {args.fps}")
    background = parse_background(args.background)
    check_media(args.ref)
    views = texture_views(args)
    summary = render_orbit(args.ref, args.out, make_body_from_args(args), path, size=args.size,
                           atlas_size=args.atlas_size, texture_views=views, infill_weights=args.infill_weights,
                           background=background, fps=args.fps, overwrite=args.overwrite)
    print(json.dumps(summary | {"texture": console_record(summary["texture"])}, indent=2))
    print(f"{summary['views']} views written to {args.out} (orbit.mp4, orbit_grid.png)")
    return 0
