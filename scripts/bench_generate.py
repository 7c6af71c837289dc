"""Peak memory and speed of Champ long-video generation: windowed pipeline vs the official whole-video approach.

Random-weight networks (nothing is downloaded), so only memory and time are meaningful.

Paths compared for each frame count:

* ``windowed``: :class:`champ3d.pipelines.ChampPipeline` with guidance frames pulled window by
  window from a source that makes each frame on request (as a disk reader would), encoded
  guidance cached once per frame, decoded frames handed to a sink one chunk at a time.
* ``windowed_nocache``: the same, re-encoding each window's guidance at every step.
* ``whole_video``: the official ``MultiGuidance2LongVideoPipeline`` data flow: every guidance
  frame loaded as a float tensor, guidance encoded for the whole video in one call, and the
  decoded video kept as one float tensor.

CPU (default): tiny networks; each (path, frames) runs in a fresh process and reports the
kernel's peak resident set size (``VmHWM``, reset through ``/proc/self/clear_refs`` after the
networks are built) above the resident size at that moment. Linux only.

    python scripts/bench_generate.py --out bench_cpu.json

CUDA with SD1.5-sized networks in fp16 at 512x512 (peak allocated VRAM, seconds per window):

    python scripts/bench_generate.py --device cuda --sd15 --frames 24 96 240 --out bench_sd15.json
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from champ3d.models import ChampModel, ChampModelConfig
from champ3d.models.clip import ClipImageConditioner
from champ3d.pipelines import ChampPipeline, UniformSchedule, champ_scheduler
from champ3d.pipelines.champ_pipeline import LATENT_SCALE

PATHS = ("windowed", "windowed_nocache", "whole_video")
GUIDANCE_TYPES = ("depth", "normal", "semantic_map", "dwpose")
CONTEXT_FRAMES, CONTEXT_OVERLAP, GUIDANCE_SCALE = 24, 4, 3.5  # Champ's inference settings

TINY = {
    "unet": {
        "attention_head_dim": 2,
        "block_out_channels": [32, 32, 32, 32],
        "cross_attention_dim": 48,
        "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
        "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
        "layers_per_block": 2,
        "norm_num_groups": 8,
    },
    "guidance": {"guidance_embedding_channels": 32, "guidance_input_channels": 3, "block_out_channels": [16, 32, 32, 32]},
    "vae": {"block_out_channels": [16, 16, 16, 16], "layers_per_block": 1, "norm_num_groups": 8},
    "clip": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "patch_size": 32, "projection_dim": 48},
}
SD15_VAE = {"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "norm_num_groups": 32}  # sd-vae-ft-mse
SD15_CLIP = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16, "patch_size": 14, "projection_dim": 768}


def build_pipeline(sd15: bool, device: str, dtype: torch.dtype) -> ChampPipeline:
    """Random-weight networks, built directly on ``device``."""
    torch.manual_seed(0)
    if sd15:
        config = ChampModelConfig.sd15()
        vae_kwargs, clip_kwargs = SD15_VAE, SD15_CLIP
    else:
        sd = ChampModelConfig.sd15()
        config = ChampModelConfig(
            {**sd.unet, **TINY["unet"]}, sd.unet_additional_kwargs, TINY["guidance"], source="bench-tiny"
        )
        vae_kwargs, clip_kwargs = TINY["vae"], TINY["clip"]
    with torch.device(device):
        model = ChampModel(config, GUIDANCE_TYPES)
        vae = AutoencoderKL(
            down_block_types=["DownEncoderBlock2D"] * 4,
            up_block_types=["UpDecoderBlock2D"] * 4,
            latent_channels=4,
            scaling_factor=LATENT_SCALE,
            **vae_kwargs,
        )
        clip = ClipImageConditioner(CLIPVisionModelWithProjection(CLIPVisionConfig(image_size=224, hidden_act="quick_gelu", **clip_kwargs)))
    return ChampPipeline(model.to(dtype).eval(), vae.to(dtype).eval(), clip.to(dtype).eval(), champ_scheduler())


class SyntheticGuidance:
    """A guidance source that makes frame i on request (a stand-in for reading it from disk)."""

    def __init__(self, num_frames: int, size: int):
        self.guidance_types = GUIDANCE_TYPES
        self.num_frames = num_frames
        self.size = size

    def __len__(self) -> int:
        return self.num_frames

    def frame(self, name: str, index: int) -> np.ndarray:
        rng = np.random.default_rng(index * len(GUIDANCE_TYPES) + GUIDANCE_TYPES.index(name))
        return rng.integers(0, 256, (self.size, self.size, 3), dtype=np.uint8)

    def __call__(self, frame_indices):
        out = {}
        for name in self.guidance_types:
            frames = np.stack([self.frame(name, i) for i in frame_indices])
            out[name] = torch.from_numpy(frames).float().div(255.0).permute(3, 0, 1, 2)
        return out


def run_windowed(pipe: ChampPipeline, ref_image, source, steps: int, cache: bool, counter) -> None:
    latents = pipe.generate_latents(
        ref_image,
        source,
        width=source.size,
        height=source.size,
        num_inference_steps=steps,
        guidance_scale=GUIDANCE_SCALE,
        context_schedule=UniformSchedule(CONTEXT_FRAMES, CONTEXT_OVERLAP),
        cache_guidance_features=cache,
        generator=torch.Generator(pipe.device).manual_seed(42),
    )
    for _, frames in pipe.decode_frames(latents, chunk_size=4):
        counter["decoded"] += frames.shape[0]  # a video writer would encode the frames here


@torch.no_grad()
def run_whole_video(pipe: ChampPipeline, ref_image, source, steps: int, counter) -> None:
    """Official data flow: whole guidance video and its features resident, decoded video resident."""
    model, device, dtype = pipe.model, pipe.device, pipe.dtype
    num_frames, size = len(source), source.size
    guidance = {k: v.unsqueeze(0).to(device, dtype) for k, v in source(range(num_frames)).items()}
    guidance_fea = model.encode_guidance(guidance)
    clip = pipe.clip_context(ref_image)
    bank = model.reference_bank(pipe.reference_latents(ref_image, size, size), clip)
    context = torch.cat([torch.zeros_like(clip), clip])
    gen = torch.Generator(device).manual_seed(42)
    latents = torch.randn((1, 4, num_frames, size // 8, size // 8), generator=gen, device=device, dtype=dtype)
    pipe.scheduler.set_timesteps(steps, device=device)
    windows = UniformSchedule(CONTEXT_FRAMES, CONTEXT_OVERLAP)(num_frames)
    for t in pipe.scheduler.timesteps:
        noise_pred = torch.zeros((2, *latents.shape[1:]), device=device, dtype=dtype)
        counts = torch.zeros((1, 1, num_frames, 1, 1), device=device, dtype=dtype)
        for window in windows:
            sample = latents[:, :, window].repeat(2, 1, 1, 1, 1)
            fea = guidance_fea[:, :, window].repeat(2, 1, 1, 1, 1)
            reader = model.reader(bank, num_frames=len(window), num_uncond=1)
            noise_pred[:, :, window] += model.denoising_unet(sample, t, context, fea, reader)
            counts[:, :, window] += 1
        uncond, cond = (noise_pred / counts).chunk(2)
        latents = pipe.scheduler.step(uncond + GUIDANCE_SCALE * (cond - uncond), t, latents).prev_sample
    video = [pipe.vae.decode(latents[:, :, i] / LATENT_SCALE).sample for i in range(num_frames)]
    video = (torch.stack(video, dim=2) / 2 + 0.5).clamp(0, 1).cpu().float()
    counter["decoded"] += video.shape[2]


def measure(pipe: ChampPipeline, path: str, num_frames: int, size: int, steps: int) -> dict:
    """Run one configuration; count UNet calls and time them."""
    source = SyntheticGuidance(num_frames, size)
    ref_image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    counter = {"unet_calls": 0, "unet_seconds": 0.0, "decoded": 0}
    cuda = pipe.device.type == "cuda"

    def before(module, args):
        if cuda:
            torch.cuda.synchronize()
        counter["t0"] = time.perf_counter()

    def after(module, args, output):
        if cuda:
            torch.cuda.synchronize()
        counter["unet_calls"] += 1
        counter["unet_seconds"] += time.perf_counter() - counter["t0"]

    hooks = [pipe.model.denoising_unet.register_forward_pre_hook(before), pipe.model.denoising_unet.register_forward_hook(after)]
    start = time.perf_counter()
    try:
        if path == "whole_video":
            run_whole_video(pipe, ref_image, source, steps, counter)
        else:
            run_windowed(pipe, ref_image, source, steps, cache=path == "windowed", counter=counter)
        if cuda:
            torch.cuda.synchronize()
    finally:
        for hook in hooks:
            hook.remove()
    assert counter["decoded"] == num_frames
    return {
        "path": path,
        "frames": num_frames,
        "seconds_total": round(time.perf_counter() - start, 3),
        "unet_calls": counter["unet_calls"],
        "seconds_per_window": round(counter["unet_seconds"] / max(counter["unet_calls"], 1), 4),
    }


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(args) -> dict:
    """One CPU configuration in this (fresh) process; peak RSS above the post-build baseline."""
    torch.set_num_threads(args.threads)
    pipe = build_pipeline(sd15=False, device="cpu", dtype=torch.float32)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM (peak RSS) to the current RSS
    baseline = _proc_status_kib("VmRSS")
    result = measure(pipe, args.path, args.frames[0], args.size, args.steps)
    peak = _proc_status_kib("VmHWM")
    result.update(baseline_rss_mib=round(baseline / 1024, 1), peak_rss_mib=round(peak / 1024, 1), peak_above_baseline_mib=round((peak - baseline) / 1024, 1))
    return result


def run_cpu(args) -> list[dict]:
    results = []
    for frames in args.frames:
        for path in args.paths:
            cmd = [sys.executable, __file__, "--child", "--path", path, "--frames", str(frames), "--size", str(args.size)]
            cmd += ["--steps", str(args.steps), "--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{path} / {frames} frames failed:\n{proc.stderr}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), file=sys.stderr)
    return results


def run_cuda(args) -> list[dict]:
    pipe = build_pipeline(sd15=args.sd15, device="cuda", dtype=torch.float16)
    weights_mib = torch.cuda.memory_allocated() / 2**20
    results = []
    for frames in args.frames:
        for path in args.paths:
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            try:
                result = measure(pipe, path, frames, args.size, args.steps)
                peak = torch.cuda.max_memory_allocated() / 2**20
                result.update(peak_vram_mib=round(peak, 1), peak_above_weights_mib=round(peak - weights_mib, 1))
            except torch.cuda.OutOfMemoryError:
                result = {"path": path, "frames": frames, "error": "out of memory"}
            results.append(result)
            print(json.dumps(result), file=sys.stderr)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--sd15", action="store_true", help="SD1.5-sized networks (use with --device cuda)")
    parser.add_argument("--frames", type=int, nargs="+", help="frame counts (default: 24 240 on CPU, 24 96 240 on CUDA)")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--size", type=int, help="square frame size in pixels (default: 128 tiny, 512 SD1.5)")
    parser.add_argument("--steps", type=int, default=2, help="denoising steps (Champ uses 20; time per window does not depend on it)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per run (tiny networks run fastest on one)")
    parser.add_argument("--out", help="write the JSON report here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--path", choices=PATHS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.frames = args.frames or ([24, 96, 240] if args.device == "cuda" else [24, 240])
    args.size = args.size or (512 if args.sd15 else 128)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    if args.sd15 and args.device != "cuda":
        parser.error("--sd15 needs --device cuda")
    results = run_cuda(args) if args.device == "cuda" else run_cpu(args)
    report = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "networks": "sd15" if args.sd15 else "tiny",
        "dtype": "float16" if args.device == "cuda" else "float32",
        "size": args.size,
        "steps": args.steps,
        "context": {"schedule": "uniform", "frames": CONTEXT_FRAMES, "overlap": CONTEXT_OVERLAP},
        "cpu_threads": args.threads if args.device == "cpu" else None,
        "results": results,
    }
    text = json.dumps(report, indent=2)
    if args.out:
        out = Path(args.out)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent or ".")
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
