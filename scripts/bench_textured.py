"""Benchmark textured rendering: what the textured colour (with its anti-aliasing) adds to
Champ's guidance-map pass.

Usage::

    python scripts/bench_textured.py --out bench_textured.json [--frames 64] [--size 512] [--atlas 1024]

Renders the Anny body (its real UV layout), turning and swaying in front of Champ's camera,
``--frames`` frames per call (batched in GPU passes), with

* ``guidance``: :class:`render.renderer.ChampMapRenderer` (depth, normal, semantic, mask,
  read back into reused uint8 arrays);
* ``textured``: :class:`render.textured.TexturedRenderer` (the same maps from the same
  draw call, plus the texture sampled bilinearly and the contour anti-aliasing), with a
  random ``--atlas``-sized texture;
* ``composite``: the textured frames composited over a background plate (numpy).

The two renderers alternate, ``--repeats`` times, so both see the same machine load.
Per frame, wall-clock and process CPU time (all threads: llvmpipe renders on
``LP_NUM_THREADS`` threads, default one per CPU) are reported, min and median; the budget
line is ``textured_added_ms_per_frame``: textured minus guidance, wall-clock (min).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from champ3d.body.anny_body import AnnyBody  # noqa: E402
from render.cameras import PerspectiveCameras  # noqa: E402
from render.context import renderer_name  # noqa: E402
from render.renderer import ChampMapRenderer  # noqa: E402
from render.textured import TexturedMaps, TexturedRenderer, composite  # noqa: E402


def posed_sequence(body: AnnyBody, frames: int, distance: float) -> np.ndarray:
    """(frames, V, 3): the body turning about its vertical axis and waving, at ``distance`` metres."""
    params = body.zero_params(frames)
    turn = torch.linspace(0, 2 * np.pi, frames + 1)[:-1]
    params.global_orient[:, 1] = turn
    params.body_pose[:, 9, 2] = 0.6 * torch.sin(3 * turn)
    params.body_pose[:, 10, 2] = -0.6 * torch.cos(2 * turn)
    params.transl[:, 2] = distance
    with torch.no_grad():
        return body(params).vertices.numpy().astype(np.float32)


def timed(fn, frames: int):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - wall) / frames * 1e3, (time.process_time() - cpu) / frames * 1e3


def summary(samples) -> dict:
    wall, cpu = zip(*samples)
    return {"wall_ms_per_frame_min": min(wall), "wall_ms_per_frame_median": statistics.median(wall),
            "cpu_ms_per_frame_min": min(cpu), "cpu_ms_per_frame_median": statistics.median(cpu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="JSON result file")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--atlas", type=int, default=1024)
    parser.add_argument("--frames-per-pass", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    load_before = os.getloadavg()
    body = AnnyBody()
    size = (args.size, args.size)
    faces, labels = body.faces.numpy(), body.face_parts.numpy()
    corner_uvs = body.corner_uvs()
    poses = posed_sequence(body, args.frames, distance=40.0 * args.size / 512)
    cameras = PerspectiveCameras.champ(size)
    texture = np.random.default_rng(0).integers(0, 256, (args.atlas, args.atlas, 3), dtype=np.uint8)
    background = np.random.default_rng(1).integers(0, 256, size + (3,), dtype=np.uint8)

    guidance = ChampMapRenderer(faces, labels, size, frames_per_pass=args.frames_per_pass)
    textured = TexturedRenderer(faces, labels, corner_uvs, texture, size, frames_per_pass=args.frames_per_pass)
    guidance_maps = guidance(poses, cameras)  # compile, allocate
    textured_maps = textured(poses, cameras, out=TexturedMaps.empty(args.frames, size))
    for name in ("depth", "normal", "semantic", "mask"):
        if not np.array_equal(getattr(guidance_maps, name), getattr(textured_maps, name)):
            raise AssertionError(f"the textured pass changed the {name} maps")

    results = {"guidance": [], "textured": [], "composite": []}

    def composite_all():
        for k in range(args.frames):
            composite(textured_maps.colour[k], textured_maps.alpha[k], background)

    for _ in range(args.repeats):
        results["guidance"].append(timed(lambda: guidance(poses, cameras, out=guidance_maps), args.frames))
        results["textured"].append(timed(lambda: textured(poses, cameras, out=textured_maps), args.frames))
        results["composite"].append(timed(composite_all, args.frames))
    report = {name: summary(samples) for name, samples in results.items()}
    added_wall = report["textured"]["wall_ms_per_frame_min"] - report["guidance"]["wall_ms_per_frame_min"]
    added_cpu = report["textured"]["cpu_ms_per_frame_min"] - report["guidance"]["cpu_ms_per_frame_min"]
    alpha = textured_maps.alpha
    result = {
        "command": " ".join(["python"] + sys.argv),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "gl_renderer": renderer_name(),
                    "LP_NUM_THREADS": os.environ.get("LP_NUM_THREADS"), "load_average_before": load_before,
                    "load_average_after": os.getloadavg()},
        "mesh": {"vertices": int(poses.shape[1]), "faces": int(len(faces))},
        "image_size": list(size),
        "atlas_size": args.atlas,
        "frames": args.frames,
        "frames_per_pass": args.frames_per_pass,
        "foreground_fraction": float((guidance_maps.mask > 0).mean()),
        "antialiased_pixels_per_frame": float(((alpha > 0) & (alpha < 255)).sum() / args.frames),
        **report,
        "textured_added_ms_per_frame": added_wall,
        "textured_added_cpu_ms_per_frame": added_cpu,
        "budget_ms_per_frame": 5.0,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
