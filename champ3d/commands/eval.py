"""``champ3d eval``: compare predicted videos with ground truth under an evaluation protocol.

The prediction and ground-truth folders hold one video per id (an mp4 file or a folder of
frames, paired by name; see :mod:`champ3d.eval.frames`). Writes per-video results and the
tables (CSV, JSON, Markdown, LaTeX) into ``--out``; metrics whose weight files are not in
``--weights-dir`` (default ``$CHAMP3D_WEIGHTS``), or that need ``--guidance`` when it is not
given, are listed as needing them. Protocols: ``configs/protocols/*.yaml`` or a YAML path.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from champ3d.commands.options import positive_int
from champ3d.errors import Champ3dInputError

HELP = "evaluate predicted videos against ground truth under a protocol"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--protocol", required=True, help="protocol name (tiktok_self, ubc_self, orbit) or YAML file")
    p.add_argument("--pred", type=Path, required=True, help="folder of predicted videos")
    p.add_argument("--gt", type=Path, required=True, help="folder of ground-truth videos with the same ids")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default runs/eval/<protocol>/<method>)")
    p.add_argument("--weights-dir", type=Path, default=None,
                   help="folder of metric network weights (default $CHAMP3D_WEIGHTS)")
    p.add_argument("--guidance", type=Path, default=None,
                   help="folder of per-video guidance folders (masks, fits/aligned, views.safetensors)")
    p.add_argument("--profile", choices=("legacy", "clean"), default=None, help="override the protocol's profile")
    p.add_argument("--metrics", nargs="+", default=None, metavar="NAME",
                   help="evaluate only these of the protocol's metrics (generic names, e.g. PSNR PoseError)")
    p.add_argument("--method", default=None, help="row label in the tables (default: the --pred folder's name)")
    p.add_argument("--fit-cache", type=Path, default=None, help="folder for cached body fits (default OUT/fits)")
    p.add_argument("--device", default="cpu", help="torch device of the metric networks")
    p.add_argument("--batch-size", type=positive_int, default=8)


def run(args: argparse.Namespace) -> int:
    from champ3d.eval import evaluate, load_protocol

    for option, folder in (("--pred", args.pred), ("--gt", args.gt)):
        if not folder.is_dir():
            raise Champ3dInputError(option, f"folder {folder} does not exist")
    protocol = load_protocol(args.protocol)
    method = args.method or args.pred.name
    out = args.out or Path("runs") / "eval" / protocol.name / method
    result = evaluate(protocol, args.pred, args.gt, out, profile=args.profile, metrics=args.metrics,
                      weights_dir=args.weights_dir, guidance_dir=args.guidance, fit_cache=args.fit_cache,
                      method=method, device=args.device, batch_size=args.batch_size)
    print(result.files["table_md"].read_text(encoding="utf-8"))
    print(json.dumps({"out": str(out), "unavailable": {n: m["reason"] for n, m in result.summary["unavailable"].items()}},
                     indent=2))
    return 0
