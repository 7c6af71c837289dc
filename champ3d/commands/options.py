"""Argument types and option groups shared by several commands."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_align_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("shape alignment (see champ3d.alignment)")
    group.add_argument("--keep-driver-shape", action="store_true",
                       help="keep the driving person's body shape instead of the reference's")
    group.add_argument("--keep-driver-camera", action="store_true",
                       help="render in the driving video's camera and placement (only the shape is swapped)")
    group.add_argument("--absolute-facing", action="store_true",
                       help="keep the driver's absolute facing instead of turning frame 0 to the reference's")
    group.add_argument("--no-reground", action="store_true",
                       help="do not move frame 0's feet onto the reference body's feet")


def align_settings(args: argparse.Namespace):
    from champ3d.alignment import AlignSettings

    return AlignSettings(keep_driver_shape=args.keep_driver_shape, keep_driver_camera=args.keep_driver_camera,
                         face_like_reference=not args.absolute_facing, reground=not args.no_reground)
