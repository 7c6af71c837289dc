"""Argument types and option groups shared by several commands."""
from __future__ import annotations

import argparse
from pathlib import Path


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_reenactment_inputs(parser: argparse.ArgumentParser, out_help: str) -> None:
    """The reference photo, the driving video, the output folder and its frame size."""
    parser.add_argument("--ref", type=Path, required=True, help="reference image of the person")
    parser.add_argument("--driving", type=Path, required=True, help="driving video, image folder or image")
    parser.add_argument("--out", type=Path, required=True, help=out_help)
    parser.add_argument("--size", type=positive_int, default=512, help="longer side of the output images (px)")
    parser.add_argument("--max-frames", type=positive_int, default=None, help="use only the first N driving frames")


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


def add_texture_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("texture (see champ3d.appearance)")
    group.add_argument("--atlas-size", type=int, default=1024, help="texture atlas size (a power of two)")
    group.add_argument("--texture-views", type=Path, nargs="+", default=(), metavar="MEDIA",
                       help="more photos or videos of the reference person, fused into its texture (a turn-around "
                            "clip; the driving video in self-reenactment); give photos as separate files")
    group.add_argument("--texture-every", type=positive_int, default=10, metavar="N",
                       help="bake every N-th frame of a --texture-views video (default 10)")
    group.add_argument("--texture-refine", action="store_true",
                       help="refine each baked frame's pose photometrically against the other views before fusing "
                            "(sharper fused textures; about 2.5 s per baked frame on 2 cores)")
    group.add_argument("--infill-weights", type=Path, default=None, metavar="DIR",
                       help="fill unseen texels with this Stable Diffusion inpainting pipeline folder (diffusers "
                            "layout, read locally) instead of the weight-free in-filling")


def texture_views(args: argparse.Namespace):
    """The ``--texture-views`` settings; each file is opened, so bad ones fail early."""
    from champ3d.appearance import TextureViews

    check_media(*args.texture_views)
    return TextureViews(tuple(args.texture_views), args.texture_every, args.texture_refine)


def add_body_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("body model (see champ3d.body)")
    group.add_argument("--body", choices=("anny", "smplx"), default="anny",
                       help="body model backend: anny (bundled, default) or smplx (your licensed model files)")
    group.add_argument("--body-model", type=Path, default=None,
                       help="smplx: model file or folder (SMPLX_<GENDER>.npz or SMPL_<GENDER>.pkl)")
    group.add_argument("--body-type", choices=("smplx", "smpl"), default="smplx", help="smplx: model type")
    group.add_argument("--body-gender", choices=("neutral", "female", "male"), default="neutral",
                       help="smplx: model gender")
    group.add_argument("--body-uv", type=Path, default=None, help="smplx: OBJ file with the model's UV layout")


def make_body_from_args(args: argparse.Namespace):
    """The body model the options name; a missing ``--body-model`` for smplx is a user error."""
    from champ3d.body import make_body
    from champ3d.errors import Champ3dInputError

    if args.body == "anny":
        return make_body("anny")
    if args.body_model is None:
        raise Champ3dInputError("--body-model", "the smplx body needs its model file or folder")
    return make_body("smplx", model_path=args.body_model, model_type=args.body_type, gender=args.body_gender,
                     uv_obj=args.body_uv)


def check_media(*paths: Path) -> None:
    """Open each input once (cheap: header only) so bad files fail before any slow work."""
    from champ3d.io.frames import open_frames

    for path in paths:
        open_frames(path)
