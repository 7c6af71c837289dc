"""Convert a Champ weights folder (``pretrained_models/champ``, ``.pth``) to safetensors.

The checkpoints are loaded with the same checks as inference (weights-only unpickling, full
key coverage, shapes), then each component is written as ``<name>.safetensors`` in the same
layout. Example::

    python scripts/convert_champ_weights.py pretrained_models/champ champ_safetensors

``--config-dir`` holds ``unet_config.json``, ``unet_additional_kwargs.json`` and
``guidance_encoder_kwargs.json``; without it the released SD1.5-sized configuration is used.
"""
from __future__ import annotations

import argparse
import sys

from champ3d.errors import Champ3dInputError
from champ3d.models import CHAMP_GUIDANCE_TYPES, ChampModelConfig, convert_champ_weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights_dir", help="folder with denoising_unet, motion_module, reference_unet, guidance_encoder_<type> checkpoints")
    parser.add_argument("out_dir", help="folder to write the .safetensors files to (created if needed)")
    parser.add_argument("--config-dir", help="folder with the three Champ config JSON files (default: released SD1.5 configuration)")
    parser.add_argument("--guidance-types", nargs="+", default=list(CHAMP_GUIDANCE_TYPES), help="guidance encoders to convert")
    args = parser.parse_args(argv)
    try:
        config = ChampModelConfig.from_dir(args.config_dir) if args.config_dir else ChampModelConfig.sd15()
        written = convert_champ_weights(args.weights_dir, args.out_dir, config, args.guidance_types)
    except Champ3dInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
