"""The ``champ3d`` command line.

Every command exits 0 on success, 2 with a one-line ``champ3d: error: WHERE: PROBLEM``
message on bad input (:class:`champ3d.errors.Champ3dInputError`), and leaves no
half-written output behind.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

from champ3d.errors import Champ3dInputError


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _add_align_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("shape alignment (see champ3d.alignment)")
    group.add_argument("--keep-driver-shape", action="store_true",
                       help="keep the driving person's body shape instead of the reference's")
    group.add_argument("--keep-driver-camera", action="store_true",
                       help="render in the driving video's camera and placement (only the shape is swapped)")
    group.add_argument("--absolute-facing", action="store_true",
                       help="keep the driver's absolute facing instead of turning frame 0 to the reference's")
    group.add_argument("--no-reground", action="store_true",
                       help="do not move frame 0's feet onto the reference body's feet")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="champ3d", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("guidance", help="fit, align and render Champ guidance for a reference and a driving video")
    p.add_argument("--ref", type=Path, required=True, help="reference image of the person")
    p.add_argument("--driving", type=Path, required=True, help="driving video, image folder or image")
    p.add_argument("--out", type=Path, required=True, help="output folder (Champ's guidance layout)")
    p.add_argument("--size", type=_positive_int, default=512, help="longer side of the guidance images (px)")
    p.add_argument("--max-frames", type=_positive_int, default=None, help="use only the first N driving frames")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    _add_align_options(p)

    p = sub.add_parser("demo", help="guidance for a built-in example (real footage if present, else synthetic)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--size", type=_positive_int, default=512)

    p = sub.add_parser("fit", help="fit the body model to an image or a video")
    p.add_argument("media", type=Path, help="image, video or image folder")
    p.add_argument("--out", type=Path, required=True, help="fit file (NAME.json + NAME.safetensors)")
    p.add_argument("--max-frames", type=_positive_int, default=None)
    return parser


def _run(args: argparse.Namespace) -> int:
    from champ3d.body.anny_body import AnnyBody

    if args.command == "demo":
        from champ3d.demo import run_demo

        summary = run_demo(args.out, size=args.size, overwrite=True)
        print(f"demo written to {args.out} (qc.mp4, contact_sheet.png, guidance folders); "
              f"driving mask IoU {summary['driving_mask_iou']['median']:.3f}")
    elif args.command == "guidance":
        from champ3d.alignment import AlignSettings
        from champ3d.guidance import make_guidance

        settings = AlignSettings(keep_driver_shape=args.keep_driver_shape,
                                 keep_driver_camera=args.keep_driver_camera,
                                 face_like_reference=not args.absolute_facing, reground=not args.no_reground)
        summary = make_guidance(args.ref, args.driving, args.out, AnnyBody(), size=args.size,
                                max_frames=args.max_frames, align_settings=settings, overwrite=args.overwrite)
        brief = {k: summary[k] for k in ("reference_mask_iou", "root_trajectory_correlation", "frames")}
        brief["driving_mask_iou_median"] = summary["driving_mask_iou"]["median"]
        brief["driving_keypoint_error_median"] = summary["driving_keypoint_error"]["median"]
        print(json.dumps(brief, indent=2))
        print(f"guidance written to {args.out}")
    elif args.command == "fit":
        from champ3d.fitting.fit_io import save_fit
        from champ3d.guidance import fit_media

        fitted = fit_media(args.media, AnnyBody(), max_frames=args.max_frames)
        path = save_fit(args.out, fitted.fit, fitted.detections, {"media": fitted.info})
        print(json.dumps(fitted.info, indent=2))
        print(f"fit written to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="champ3d: %(message)s")
    warnings.formatwarning = lambda message, category, *rest: f"champ3d: warning: {message}\n"
    try:
        return _run(args)
    except Champ3dInputError as error:
        print(f"champ3d: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("champ3d: interrupted; no partial output was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
