"""Benchmark and measure the UV texture pipeline: atlas build, bake, fusion, in-filling.

Usage::

    python scripts/bench_texture.py --out bench_texture.json [--atlas-size 1024] [--repeats 5]
        [--skip-video] [--video-step 10]

Measures, on the real footage (``$CHAMP3D_FIXTURES``, default ``../shared/fixtures``):

* ``atlas``: building the atlas without cache (UV rasterisation, mirror and front maps,
  exposure views) and loading it from the cache;
* ``photos``: per reference photo, the fit (once), then the bake and the fill (median of
  ``--repeats``), the bake's coverage of island and exposed texels, and the PSNR of the
  filled texture re-rendered through the photo's camera inside the body mask (the render's
  coverage and the person mask eroded by 3 px);
* ``video``: the UBC-Fashion 360-degree turn is fitted, every ``--video-step``-th frame is
  baked and the bakes are fused, as ``--texture-views`` does (:mod:`champ3d.appearance`);
  coverage is measured before in-filling, then the filled
  texture is rendered with the fitted pose and camera of the frames halfway between fused
  ones (never used for the texture) and compared with them (PSNR inside the body mask):
  ``held_out``. The same again after the baked frames are refined photometrically, as
  ``--texture-refine`` does (``refined_views_held_out``), and with the held-out frames'
  poses refined too, against the fused texture (``refined_views_and_held_out``: the
  test-time pose optimisation of avatar papers; the held-out frames' pixels then enter
  their own pose, never the texture). Last, ``nearest_view_and_held_out``: each held-out
  frame's texture is the single fused frame just before it (``--video-step`` / 2 frames
  away), its pose refined against that view: what a texture can explain of the frame
  when the fusion is left out.

Wall-clock times depend on other load on the machine, reported as the load average.
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

from champ3d.animation import posed_vertices  # noqa: E402
from champ3d.appearance import bake_fitted, frames_to_bake, refine_views  # noqa: E402
from champ3d.body.anny_body import AnnyBody  # noqa: E402
from champ3d.fitting.photometric import PhotometricRefiner  # noqa: E402
from champ3d.guidance import fit_media  # noqa: E402
from champ3d.io.atomic import atomic_write_path  # noqa: E402
from champ3d.io.frames import open_frames  # noqa: E402
from champ3d.io.images import read_image  # noqa: E402
from texture.atlas import UVAtlas  # noqa: E402
from texture.bake import bake_texture, eroded_mask  # noqa: E402
from texture.fusion import fuse_textures  # noqa: E402
from texture.infill import fill_texture  # noqa: E402
from texture.preview import masked_psnr, render_textured  # noqa: E402

PHOTOS = ("images/deepfashion_00004955.jpg", "images/musepose_ref.png")
VIDEO = "video/ubc_fashion_91BjuE6irxS.mp4"
MASK_EROSION_PX = 3


def timed(function, repeats: int):
    """(result of the last call, median seconds over ``repeats`` calls)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def body_mask(covered: np.ndarray, person_mask: np.ndarray) -> np.ndarray:
    return covered & eroded_mask(person_mask, MASK_EROSION_PX)


def coverage(sample, atlas: UVAtlas) -> dict:
    seen = atlas.gather(sample.seen)
    return {"island_texels": float(seen.mean()), "exposed_texels": float(seen[atlas.exposed].mean())}


def bench_atlas(body, size: int, cache_dir: Path) -> tuple[UVAtlas, dict]:
    start = time.perf_counter()
    UVAtlas.from_body(body, size, cache=False)
    build = time.perf_counter() - start
    UVAtlas.from_body(body, size, cache_dir=cache_dir)  # writes the cache
    atlas, load = timed(lambda: UVAtlas.from_body(body, size, cache_dir=cache_dir), 3)
    return atlas, {
        "size": size, "island_texels": atlas.num_texels, "exposed_fraction": float(atlas.exposed.mean()),
        "islands": atlas.num_islands, "build_s": build, "cached_load_s": load,
    }


def bench_photo(body, atlas: UVAtlas, path: Path, repeats: int) -> dict:
    start = time.perf_counter()
    fitted = fit_media(path, body)
    fit_s = time.perf_counter() - start
    vertices = posed_vertices(fitted.fit, body, slice(0, 1))[0][0]
    image, mask, camera = read_image(path), fitted.detections.full_mask(0), fitted.fit.camera
    sample, bake_s = timed(lambda: bake_texture(image, mask, vertices, camera, atlas), repeats)
    texture, fill_s = timed(lambda: fill_texture(sample, atlas), repeats)
    render, covered = render_textured(body, vertices[None], texture, camera.to_cameras())
    visible = body_mask(covered[0], mask)
    return {
        "image_size": [camera.height, camera.width], "fit_s": fit_s, "bake_ms": 1000 * bake_s,
        "fill_ms": 1000 * fill_s, "coverage": coverage(sample, atlas),
        "psnr_db": masked_psnr(render[0], image, visible), "psnr_pixels": int(visible.sum()),
    }


def held_out_psnr(body, fit, detections, frames, held_out, texture_for, refiner=None) -> dict:
    """PSNR of each held-out frame ``k``'s texture ``texture_for(k) -> (TextureSample, filled
    uint8 texture)`` rendered with k's fitted pose (refined against the sample first when
    ``refiner`` is given) against frame k."""
    cameras = fit.camera.to_cameras()
    psnr = []
    for i in held_out:
        sample, texture = texture_for(i)
        params, person_mask = fit.params.select(slice(i, i + 1)), detections.full_mask(i)
        if refiner is not None:
            params = refiner(frames[i], person_mask, params, sample).params
        with torch.no_grad():
            vertices = body(params).vertices.numpy()
        render, covered = render_textured(body, vertices, texture, cameras)
        psnr.append(masked_psnr(render[0], frames[i], body_mask(covered[0], person_mask)))
    return {
        "frames": held_out, "psnr_db": psnr, "psnr_db_mean": float(np.mean(psnr)),
        "psnr_db_median": float(np.median(psnr)), "psnr_db_min": float(np.min(psnr)),
        "fraction_at_least_20db": float(np.mean(np.array(psnr) >= 20.0)),
    }


def nearest_view(baked, used: list, atlas: UVAtlas):
    """``texture_for`` of :func:`held_out_psnr` giving held-out frame k the bake of the last
    fused frame before it alone (filled): how much of frame k one view nearby explains."""
    def texture_for(k):
        view = baked[max(j for j, i in enumerate(used) if i < k)]
        return view.sample, fill_texture(view.sample, atlas)
    return texture_for


def bench_video(body, atlas: UVAtlas, path: Path, step: int, repeats: int) -> dict:
    start = time.perf_counter()
    fitted = fit_media(path, body, tight=True)  # as --texture-views fits its views
    fit_s = time.perf_counter() - start
    fit, detections = fitted.fit, fitted.detections
    used = frames_to_bake(detections.found, step).tolist()
    start = time.perf_counter()
    baked = bake_fitted(path, fit, detections, body, atlas, used, keep_frames=True)
    bake_s = (time.perf_counter() - start) / len(used)
    fused, fuse_s = timed(lambda: fuse_textures([view.sample for view in baked]), max(1, repeats // 2))
    texture, fill_s = timed(lambda: fill_texture(fused, atlas), repeats)
    held_out = [i + step // 2 for i in used if i + step // 2 < detections.num_frames]
    wanted = set(held_out)
    frames = {i: image for i, image in enumerate(open_frames(path)) if i in wanted}  # only these are compared
    start = time.perf_counter()
    refined, record = refine_views(baked, [], body, atlas)  # as --texture-refine does
    refine_s = time.perf_counter() - start
    refined_fused = fuse_textures([view.sample for view in refined])
    refined_texture = fill_texture(refined_fused, atlas)
    refiner = PhotometricRefiner(body, fit.camera)
    return {
        "frames": detections.num_frames, "image_size": [fit.camera.height, fit.camera.width], "fit_s": fit_s,
        "fused_frames": used, "bake_ms_per_view_incl_decoding": 1000 * bake_s, "fuse_s": fuse_s,
        "fill_ms": 1000 * fill_s,
        "coverage_before_fill": coverage(fused, atlas),
        "held_out": held_out_psnr(body, fit, detections, frames, held_out, lambda k: (fused, texture)),
        "refined_views": record | {"refine_s": refine_s},
        "refined_views_held_out": held_out_psnr(body, fit, detections, frames, held_out,
                                                lambda k: (refined_fused, refined_texture)),
        "refined_views_and_held_out": held_out_psnr(body, fit, detections, frames, held_out,
                                                    lambda k: (refined_fused, refined_texture), refiner),
        "nearest_view_and_held_out": held_out_psnr(body, fit, detections, frames, held_out,
                                                   nearest_view(baked, used, atlas), refiner),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON result file")
    parser.add_argument("--atlas-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--video-step", type=int, default=10)
    parser.add_argument("--skip-video", action="store_true", help="leave out the (slow) video fit and fusion")
    default_fixtures = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
    parser.add_argument("--fixtures", type=Path, default=Path(os.environ.get("CHAMP3D_FIXTURES", default_fixtures)))
    parser.add_argument("--cache-dir", type=Path, default=None, help="atlas cache (default: a folder beside --out)")
    args = parser.parse_args()
    if args.video_step < 2:
        parser.error("--video-step must be at least 2 (held-out frames lie halfway between fused ones)")
    if not args.fixtures.is_dir():
        parser.error(f"fixtures folder {args.fixtures} not found (set CHAMP3D_FIXTURES or --fixtures)")

    body = AnnyBody()
    cache_dir = args.cache_dir or args.out.parent / "bench_texture_atlas_cache"
    atlas, atlas_result = bench_atlas(body, args.atlas_size, cache_dir)
    result = {
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg(), "platform": platform.platform(),
                    "torch_threads": torch.get_num_threads()},
        "atlas": atlas_result,
        "photos": {name: bench_photo(body, atlas, args.fixtures / name, args.repeats) for name in PHOTOS},
    }
    if not args.skip_video:
        result["video"] = {VIDEO: bench_video(body, atlas, args.fixtures / VIDEO, args.video_step, args.repeats)}
    result["machine"]["load_average_end"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write_path(args.out, overwrite=True) as temp:
        Path(temp).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
