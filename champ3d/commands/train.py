"""``champ3d train``: train Champ's networks on clip folders (stage 1 or 2, set by the config).

``--make-clip VIDEO GUIDANCE OUT`` first turns a video and its guidance (made with
``champ3d guidance --ref FRAME --driving VIDEO --keep-driver-shape --keep-driver-camera``)
into a clip folder. Several GPUs: ``accelerate launch -m champ3d.cli train --config ...``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "train Champ (stage 1: image pairs, stage 2: motion modules) on clip folders"


def add_arguments(p: argparse.ArgumentParser) -> None:
    task = p.add_mutually_exclusive_group(required=True)
    task.add_argument("--config", type=Path, help="training config (configs/train/stage1.yaml, stage2.yaml)")
    task.add_argument("--make-clip", nargs=3, type=Path, metavar=("VIDEO", "GUIDANCE", "OUT"),
                      help="write the clip folder OUT from VIDEO and the guidance folder rendered from it")
    p.add_argument("--resume", type=Path, help="a checkpoint-<step> folder, or a run's output folder (its newest checkpoint)")
    p.add_argument("--overwrite", action="store_true", help="with --make-clip: replace an existing OUT")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. solver.batch_size=2")


def run(args: argparse.Namespace) -> int:
    from champ3d.errors import Champ3dInputError

    if args.make_clip and (args.resume or args.overrides):
        raise Champ3dInputError("--make-clip", "takes no --resume and no config overrides")
    if args.config and args.overwrite:
        raise Champ3dInputError("--overwrite", "only applies to --make-clip")
    if args.make_clip:
        from champ3d.train.clips import write_training_clip

        video, guidance, out = args.make_clip
        write_training_clip(video, guidance, out, overwrite=args.overwrite)
        print(f"training clip written to {out}")
        return 0
    from champ3d.train.checkpoints import resolve_checkpoint
    from champ3d.train.config import load_train_config
    from champ3d.train.trainer import ChampTrainer

    config = load_train_config(args.config, args.overrides)
    resume = resolve_checkpoint(args.resume) if args.resume else None  # refused before the networks load
    history = ChampTrainer(config).train(resume=resume)
    if history:
        print(f"stage {config.stage}: step {history[-1][0]}, loss {history[-1][1]:.4f}; outputs in {config.output_dir}")
    return 0
