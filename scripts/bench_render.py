"""Benchmark Champ guidance-map rendering (depth, normal, semantic, mask) and PNG writing.

Usage::

    python scripts/bench_render.py --out bench_render.json [--frames 128] [--size 512]

Measures per frame, on a mesh of Anny's size (13,718 vertices / 27,420 triangles: the real
Anny mesh when ``anny`` and its cache are available, else a synthetic body-sized mesh of
the same size), a body turning and swaying in front of Champ's camera:

* ``render``: upload the posed vertices, rasterise, shade all four maps and read them back
  into uint8 arrays (reused across calls), ``--frames`` frames per call (batched in GPU
  passes);
* ``png``: write the four maps of a frame as PNG files, per lossless setting, with one
  thread and with a thread pool (OpenCV and PIL release the GIL while encoding); every
  setting is checked to decode back to the same pixels;
* ``render_and_png``: both, the pool writing one batch while the next renders;
* ``threads``: ``render`` per llvmpipe thread count (``LP_NUM_THREADS``), each in a fresh
  process since llvmpipe reads it once.

Wall-clock and process CPU time (all threads) are both reported: on a shared machine the
wall time depends on the other load, reported as the load average.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from render.cameras import PerspectiveCameras  # noqa: E402
from render.context import renderer_name  # noqa: E402
from render.palette import NUM_PARTS  # noqa: E402
from render.renderer import ChampMapRenderer  # noqa: E402

#: Lossless PNG settings compared. OpenCV's default (no parameters) is zlib level 1 with
#: the SUB filter and the RLE strategy; naming a level switches libpng to adaptive filtering.
PNG_SETTINGS = {
    "opencv_default": ("cv2", []),
    "opencv_level1": ("cv2", [cv2.IMWRITE_PNG_COMPRESSION, 1]),
    "opencv_level0": ("cv2", [cv2.IMWRITE_PNG_COMPRESSION, 0]),
    "pil_level1": ("pil", 1),
}


def anny_mesh():
    """Anny's rest mesh (z up) stood upright facing the camera, and per-face part labels
    (the dominant bone of the first corner, folded into 24 labels)."""
    import anny
    import torch

    model = anny.Anny(skinning_method="lbs")
    with torch.no_grad():
        rest = model(pose_parameters=None)["rest_vertices"][0].double().numpy()
    faces = model.get_triangular_faces().numpy().astype(np.int32)
    bones = model.vertex_bone_indices.gather(1, model.vertex_bone_weights.argmax(dim=1, keepdim=True))[:, 0]
    labels = bones.numpy()[faces[:, 0]] % NUM_PARTS
    verts = np.stack([rest[:, 0], -rest[:, 2], rest[:, 1]], axis=1)  # up -> -y, front (-y) -> -z
    return verts.astype(np.float32), faces, labels.astype(np.int64), "anny"


def synthetic_mesh():
    """A closed body-sized blob (ellipsoid with a waist) with Anny's vertex and face counts."""
    rows, cols = 108, 127  # rows * cols + 2 = 13,718 vertices, 2 * rows * cols = 27,432 faces
    theta = np.linspace(0, np.pi, rows + 2)[1:-1]
    phi = np.linspace(0, 2 * np.pi, cols, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    waist = 1.0 - 0.35 * np.exp(-((t - 1.2) ** 2) / 0.05)
    ring = np.stack([0.25 * np.sin(t) * np.cos(p) * waist, -0.85 * np.cos(t), 0.15 * np.sin(t) * np.sin(p) * waist],
                    -1)
    verts = np.concatenate([ring.reshape(-1, 3), [[0, -0.85, 0], [0, 0.85, 0]]]).astype(np.float32)
    idx = np.arange(rows * cols).reshape(rows, cols)
    a, b = idx[:-1], np.roll(idx, -1, axis=1)[:-1]
    c, d = idx[1:], np.roll(idx, -1, axis=1)[1:]
    top, bottom = rows * cols, rows * cols + 1
    faces = np.concatenate([
        np.stack([a, b, c], -1).reshape(-1, 3),
        np.stack([b, d, c], -1).reshape(-1, 3),
        np.stack([np.full(cols, top), np.roll(idx[0], -1), idx[0]], -1),
        np.stack([np.full(cols, bottom), idx[-1], np.roll(idx[-1], -1)], -1),
    ]).astype(np.int32)
    labels = (np.arange(len(faces)) // 1200) % NUM_PARTS
    return verts, faces, labels, "synthetic"


def animate(verts: np.ndarray, num_frames: int) -> np.ndarray:
    """(N, V, 3): the body turning about its vertical axis and swaying, one pose per frame."""
    out = np.empty((num_frames,) + verts.shape, np.float32)
    for i, a in enumerate(np.linspace(0, 2 * np.pi, num_frames, endpoint=False)):
        c, s = np.cos(a), np.sin(a)
        rotation = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float32)
        sway = 0.05 * np.sin(3 * a) * (verts[:, 1:2] + 0.8)
        out[i] = verts @ rotation.T + np.concatenate([sway, 0 * sway, 0 * sway], 1)
    return out


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def summary(per_frame_wall, per_frame_cpu) -> dict:
    return {
        "wall_ms_per_frame_min": min(per_frame_wall) * 1e3,
        "wall_ms_per_frame_median": statistics.median(per_frame_wall) * 1e3,
        "cpu_ms_per_frame_min": min(per_frame_cpu) * 1e3,
        "cpu_ms_per_frame_median": statistics.median(per_frame_cpu) * 1e3,
    }


def frame_images(maps, index: int) -> dict:
    """The four maps of frame ``index`` (RGB)."""
    return {"depth": maps.depth[index], "normal": maps.normal[index], "semantic": maps.semantic[index],
            "mask": maps.mask[index]}


def write_png(path: Path, image: np.ndarray, setting: str) -> int:
    library, params = PNG_SETTINGS[setting]
    if library == "cv2":
        bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(path), bgr, params):
            raise OSError(f"{path}: cv2.imwrite failed")
    else:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG", compress_level=params)
        path.write_bytes(buffer.getvalue())
    return path.stat().st_size


def write_frames(pool, maps, frames, folder: Path, setting: str):
    jobs = [(folder / f"{name}_{i:05d}.png", image, setting)
            for i in frames for name, image in frame_images(maps, i).items()]
    if pool is None:
        return [write_png(*job) for job in jobs]
    return [pool.submit(write_png, *job) for job in jobs]


def bench_png(maps, folder: Path, frames: int, workers: int, repeats: int) -> dict:
    results = {}
    for setting in PNG_SETTINGS:
        for threads in sorted({1, workers}):
            walls, cpus = [], []
            for repeat in range(repeats):
                target = folder / f"{setting}_{threads}_{repeat}"
                target.mkdir()
                if threads == 1:
                    wall, cpu, sizes = timed(lambda: write_frames(None, maps, range(frames), target, setting))
                else:
                    with ThreadPoolExecutor(threads) as pool:
                        wall, cpu, sizes = timed(
                            lambda: [f.result() for f in write_frames(pool, maps, range(frames), target, setting)])
                walls.append(wall / frames)
                cpus.append(cpu / frames)
            decoded = cv2.imread(str(target / "normal_00000.png"), cv2.IMREAD_UNCHANGED)
            lossless = np.array_equal(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), maps.normal[0]) and all(
                np.array_equal(cv2.imread(str(target / f"{name}_00000.png"), cv2.IMREAD_UNCHANGED),
                               getattr(maps, name)[0]) for name in ("depth", "mask"))
            results[f"{setting}/threads{threads}"] = dict(summary(walls, cpus), bytes_per_frame=sum(sizes) / frames,
                                                         lossless=lossless)
    return results


def bench_render_and_png(renderer, poses, cameras, folder: Path, setting: str, workers: int) -> tuple:
    """Render batch after batch; the pool writes each batch while the next renders."""
    batch = renderer.rasterizer.frames_per_pass

    def run():
        with ThreadPoolExecutor(workers) as pool:
            pending = []
            for first in range(0, len(poses), batch):
                maps = renderer(poses[first:first + batch], cameras)
                target = folder / f"batch{first}"
                target.mkdir(exist_ok=True)
                pending += write_frames(pool, maps, range(len(maps.depth)), target, setting)
            for future in pending:
                future.result()

    wall, cpu, _ = timed(run)
    return wall / len(poses), cpu / len(poses)


def thread_scan(args) -> dict:
    results = {}
    for threads in args.thread_counts:
        env = dict(os.environ, LP_NUM_THREADS=str(threads))
        cmd = [sys.executable, __file__, "--render-only", "--frames", str(args.frames), "--size", str(args.size),
               "--frames-per-pass", str(args.frames_per_pass), "--repeats", str(args.repeats)]
        output = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        results[str(threads)] = json.loads(output.strip().splitlines()[-1])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="JSON result file")
    parser.add_argument("--frames", type=int, default=128)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames-per-pass", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--png-frames", type=int, default=32)
    parser.add_argument("--png-workers", type=int, default=2)
    parser.add_argument("--thread-counts", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--synthetic", action="store_true", help="use the synthetic mesh even if Anny is available")
    parser.add_argument("--render-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    load_before = os.getloadavg()
    try:
        if args.synthetic:
            raise ImportError("synthetic mesh requested")
        verts, faces, labels, mesh = anny_mesh()
    except (ImportError, OSError):
        verts, faces, labels, mesh = synthetic_mesh()
    size = (args.size, args.size)
    poses = animate(verts, args.frames)
    cameras = PerspectiveCameras.champ(size, T=(0.0, 0.0, 35.0))
    renderer = ChampMapRenderer(faces, labels, size, frames_per_pass=args.frames_per_pass)
    maps = renderer(poses, cameras)  # compile shaders, allocate buffers and the output maps
    walls, cpus = [], []
    for _ in range(args.repeats):
        wall, cpu, maps = timed(lambda: renderer(poses, cameras, out=maps))
        walls.append(wall / args.frames)
        cpus.append(cpu / args.frames)
    render = dict(summary(walls, cpus), foreground_fraction=float((maps.mask > 0).mean()))
    if args.render_only:
        print(json.dumps(render))
        return

    result = {
        "command": " ".join(["python"] + sys.argv),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "gl_renderer": renderer_name(),
                    "LP_NUM_THREADS": os.environ.get("LP_NUM_THREADS"), "load_average_before": load_before},
        "mesh": {"source": mesh, "vertices": int(verts.shape[0]), "faces": int(faces.shape[0])},
        "image_size": list(size),
        "frames": args.frames,
        "frames_per_pass": renderer.rasterizer.frames_per_pass,
        "render": render,
    }
    with tempfile.TemporaryDirectory() as tmp:
        png = bench_png(maps, Path(tmp), args.png_frames, args.png_workers, repeats=3)
        fastest = min((k for k in png if png[k]["lossless"]), key=lambda k: png[k]["wall_ms_per_frame_min"])
        result["png"] = png
        result["png_fastest"] = fastest
        setting = fastest.split("/")[0]
        walls, cpus = [], []
        for repeat in range(3):
            folder = Path(tmp, f"combined{repeat}")
            folder.mkdir()
            wall, cpu = bench_render_and_png(renderer, poses, cameras, folder, setting, args.png_workers)
            walls.append(wall)
            cpus.append(cpu)
        result["render_and_png"] = dict(summary(walls, cpus), setting=setting, workers=args.png_workers)
    if args.thread_counts:
        result["threads"] = thread_scan(args)
    result["machine"]["load_average_after"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
