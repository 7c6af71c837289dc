"""Metric registry and the two metric profiles.

Every concrete metric has one :class:`MetricSpec` in :data:`METRICS`, under a unique
column name that says which definition it is (``PSNR_star`` and ``PSNR_legacy_uint8`` are
never one column). A spec declares its kind, the weight files it needs and how to build
its computer; adding a metric (e.g. pose following) is one entry here plus the generic
name in a profile.

Kinds and inputs:
- ``"frame"`` with ``input="pixels"``: ``computer(pred, gt) -> [N]`` per-frame values for
  paired uint8 frame chunks;
- ``"frame"`` with ``input="video"``: ``computer(context) -> [N]`` per-frame values at the
  evaluated frames, from a :class:`champ3d.eval.video_metrics.VideoContext` (fits, guidance);
- ``"video"``: ``computer(context) -> float``, one value per video (temporal measures);
- ``"distribution"``: ``computer() -> extractor`` with ``add_frames`` / ``end_video``
  (:mod:`champ3d.eval.features`) giving one feature row per frame or per clip
  (``row_unit``); the value is the Fréchet distance between the pooled feature rows of all
  predicted and all ground-truth videos.

``weights`` names the network files a metric needs (:mod:`champ3d.eval.weights`); ``needs``
names other inputs that an evaluation may lack (``"guidance"``: a guidance folder per
video). A metric whose files or inputs are absent is reported as needing them.

Profiles map the generic metric names used by protocols to concrete metrics:
- ``legacy`` reproduces the tables of DisCo / MagicAnimate / Animate Anyone / Champ /
  UniAnimate / Animate-X ("disco-compat"), quirks included;
- ``clean`` uses the correct definitions, for new tables.
They differ exactly in ``L1``, ``PSNR``, ``SSIM``, ``LPIPS``, ``FID`` and ``FVD``
(evaluation_protocols §0); ``FID-VID`` and the weight-free metrics ``PoseError``
(MPJPE, PA-MPJPE), ``PCK``, ``Jitter``, ``FootSkating``, ``MaskIoU`` and ``MultiView`` have
one definition, shared by both.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Literal, Mapping

import torch

from champ3d.errors import Champ3dInputError
from champ3d.eval import pixel, video_metrics
from champ3d.eval.features import ClipFeatures, ClipSampling, FrameFeatures, InputSpec
from champ3d.eval.i3d import InceptionI3dLogits
from champ3d.eval.lpips import LpipsMetric, LpipsNetwork, LpipsSpec
from champ3d.eval.resnet3d import ResNet3dFeatures
from champ3d.eval.weights import WeightsStore, load_matching


@dataclass(frozen=True)
class BuildContext:
    """What a metric needs to build its computer."""

    weights: WeightsStore
    device: torch.device
    batch_size: int
    clips: ClipSampling


@dataclass(frozen=True)
class MetricSpec:
    name: str                      # column name, unique
    generic: str                   # the protocol-level metric it implements
    label: str                     # table header
    higher_is_better: bool
    kind: Literal["frame", "video", "distribution"]
    definition: str                # one line for the run record
    table_format: str              # format spec for Markdown/LaTeX tables
    build: Callable[[BuildContext], object]
    weights: tuple[str, ...] = field(default=())
    row_unit: Literal["frame", "clip"] = "frame"   # distribution metrics: one feature row per frame or clip
    input: Literal["pixels", "video"] = "pixels"   # frame metrics: paired frame chunks or a VideoContext
    needs: tuple[str, ...] = field(default=())     # inputs besides weights, e.g. "guidance"

    def describe(self) -> dict:
        """The metric's description for run records and tables."""
        return {"label": self.label, "generic": self.generic, "kind": self.kind,
                "higher_is_better": self.higher_is_better, "definition": self.definition,
                "table_format": self.table_format, "weights": list(self.weights), "needs": list(self.needs)}


def _pixel(function, spec, context: BuildContext):
    return partial(function, spec=spec)


def _video(function, context: BuildContext):
    return function


def _lpips(spec: LpipsSpec, backbone_file: str, heads_file: str, name: str, context: BuildContext):
    features = context.weights.load_state_dict(backbone_file, name)
    heads = context.weights.load_state_dict(heads_file, name)
    try:
        network = LpipsNetwork.from_weights(spec.backbone, features, heads)
    except (KeyError, RuntimeError) as exc:
        where = f"{context.weights.path(backbone_file, name)} + {context.weights.path(heads_file, name)}"
        raise Champ3dInputError(
            where, f"weights do not fit the LPIPS-{spec.backbone} network of {name}: {exc}") from exc
    return LpipsMetric(network, spec, context.device, context.batch_size)


def _inception_frames(spec: InputSpec, name: str, context: BuildContext):
    """FID: the TF Inception TorchScript's ``layers`` submodule (pool3, 2048-d) on 299x299
    inputs prepared outside the network, as clean-fid does."""
    script = context.weights.load_torchscript("inception-2015-12-05.pt", name, context.device)
    return lambda: FrameFeatures(script.layers, spec, context.device, context.batch_size)


def _state_dict_network(network_class, weights_file: str, name: str, context: BuildContext):
    state = context.weights.load_state_dict(weights_file, name)
    state = {k: v for k, v in state.items() if not k.startswith(network_class.unused_weight_prefixes)}
    where = str(context.weights.path(weights_file, name))
    try:
        network = network_class(**network_class.config_from_weights(state))
    except KeyError as exc:
        raise Champ3dInputError(where, f"weights do not fit the {name} network: no key {exc}") from exc
    load_matching(network, state, where, name)
    return network.eval().to(context.device)


def _clip_network(network_class, weights_file: str, spec: InputSpec, name: str, context: BuildContext):
    network = _state_dict_network(network_class, weights_file, name, context)
    return lambda: ClipFeatures(network, spec, context.clips, context.device, context.batch_size)


def _styleganv_i3d(spec: InputSpec, name: str, context: BuildContext):
    """StyleGAN-V I3D TorchScript, called with its internal rescale/resize off on inputs
    prepared outside (common_metrics_on_video_quality); features = 400-d pre-softmax output."""
    script = context.weights.load_torchscript("i3d_torchscript.pt", name, context.device)

    def network(clips: torch.Tensor) -> torch.Tensor:
        return script(clips, rescale=False, resize=False, return_features=True)

    return lambda: ClipFeatures(network, spec, context.clips, context.device, context.batch_size)


_MINUS_ONE_ONE = dict(offset=(127.5, 127.5, 127.5), scale=127.5)
_KINETICS_MEAN = (114.7748, 107.7354, 99.4750)


def _specs() -> tuple[MetricSpec, ...]:
    l1_disco = pixel.L1Spec("pixel_count")
    l1_unit = pixel.L1Spec("unit_range")
    psnr_star_disco = pixel.PSNRSpec(uint8_wraparound=False, zero_mse_db=100.0)
    psnr_legacy = pixel.PSNRSpec(uint8_wraparound=True, zero_mse_db=100.0)
    psnr_clean = pixel.PSNRSpec(uint8_wraparound=False, zero_mse_db=float("inf"))
    ssim_gray7 = pixel.SSIMSpec("gray_bt601", "uniform", radius=3, sample_covariance=True)
    ssim_rgb_gauss = pixel.SSIMSpec("rgb", "gaussian", radius=5, sample_covariance=False, sigma=1.5)
    lpips_vgg_disco = LpipsSpec("vgg", "zero_one")
    lpips_alex = LpipsSpec("alex", "minus_one_one")
    fid_pytorch = InputSpec(299, "torch_bilinear", clip_to_uint8_range=False, **_MINUS_ONE_ONE)
    fid_clean = InputSpec(299, "pil_bicubic_float", clip_to_uint8_range=True, offset=(128.0, 128.0, 128.0), scale=128.0)
    fid_vid_input = InputSpec(112, "pil_bicubic_float", clip_to_uint8_range=False, offset=_KINETICS_MEAN, scale=1.0)
    fvd_disco_input = InputSpec(224, "pil_bicubic_float", clip_to_uint8_range=False, **_MINUS_ONE_ONE)
    fvd_styleganv_input = InputSpec(224, "torch_bilinear_short_side", clip_to_uint8_range=False, **_MINUS_ONE_ONE)
    return (
        MetricSpec("L1_disco", "L1", "L1 (DisCo)", False, "frame",
                   "mean |pred-gt| on 0..255 over pixels and channels, divided by H*W",
                   ".2E", partial(_pixel, pixel.l1, l1_disco)),
        MetricSpec("L1", "L1", "L1", False, "frame", "mean |pred-gt| on [0,1] over pixels and channels",
                   ".4f", partial(_pixel, pixel.l1, l1_unit)),
        MetricSpec("PSNR_star", "PSNR", "PSNR*", True, "frame",
                   "10 log10(255^2/MSE), float64 MSE over RGB uint8; 100 dB for identical frames (DisCo after its fix)",
                   ".2f", partial(_pixel, pixel.psnr, psnr_star_disco)),
        MetricSpec("PSNR_legacy_uint8", "PSNR", "PSNR (legacy uint8)", True, "frame",
                   "as PSNR_star but the squared difference wraps modulo 256 in uint8 (DisCo before its fix)",
                   ".2f", partial(_pixel, pixel.psnr, psnr_legacy)),
        MetricSpec("PSNR", "PSNR", "PSNR", True, "frame",
                   "10 log10(1/MSE) on [0,1] RGB, float64; infinite for identical frames",
                   ".2f", partial(_pixel, pixel.psnr, psnr_clean)),
        MetricSpec("SSIM_gray7", "SSIM", "SSIM (gray, 7x7)", True, "frame",
                   "scikit-image SSIM on OpenCV BT.601 luma, 7x7 uniform window, sample covariance, data range 255",
                   ".3f", partial(_pixel, pixel.ssim, ssim_gray7)),
        MetricSpec("SSIM_rgb_gauss11", "SSIM", "SSIM (RGB, Gaussian 11x11)", True, "frame",
                   "SSIM per RGB channel, 11x11 Gaussian window sigma 1.5, population covariance, channel mean",
                   ".3f", partial(_pixel, pixel.ssim, ssim_rgb_gauss)),
        MetricSpec("LPIPS_vgg_disco", "LPIPS", "LPIPS (VGG, DisCo)", False, "frame",
                   "LPIPS v0.1 VGG-16 fed [0,1] images (DisCo's missing normalize)",
                   ".3f", partial(_lpips, lpips_vgg_disco, "vgg16-397923af.pth", "vgg.pth", "LPIPS_vgg_disco"),
                   ("vgg16-397923af.pth", "vgg.pth")),
        MetricSpec("LPIPS_alex", "LPIPS", "LPIPS (Alex)", False, "frame",
                   "LPIPS v0.1 AlexNet on [-1,1] images",
                   ".3f", partial(_lpips, lpips_alex, "alexnet-owt-7be5be79.pth", "alex.pth", "LPIPS_alex"),
                   ("alexnet-owt-7be5be79.pth", "alex.pth")),
        MetricSpec("FID_pytorchfid", "FID", "FID (pytorch-fid)", False, "distribution",
                   "TF Inception pool3 on all frames, torch bilinear resize to 299, [-1,1] (pytorch-fid compatible)",
                   ".2f", partial(_inception_frames, fid_pytorch, "FID_pytorchfid"), ("inception-2015-12-05.pt",)),
        MetricSpec("FID_clean", "FID", "FID (clean)", False, "distribution",
                   "TF Inception pool3 on all frames, PIL bicubic float resize to 299, (x-128)/128 (clean-fid)",
                   ".2f", partial(_inception_frames, fid_clean, "FID_clean"), ("inception-2015-12-05.pt",)),
        MetricSpec("FID_VID_3drn50", "FID-VID", "FID-VID", False, "distribution",
                   "3D-ResNet-50 Kinetics pooled 2048-d features of 112x112 PIL-bicubic clips, 0..255 minus mean",
                   ".2f", partial(_clip_network, ResNet3dFeatures, "resnet-50-kinetics.pth", fid_vid_input,
                                  "FID_VID_3drn50"), ("resnet-50-kinetics.pth",), "clip"),
        MetricSpec("FVD_i3d_disco", "FVD", "FVD (I3D, DisCo)", False, "distribution",
                   "PyTorch InceptionI3d 400-d logits averaged over time, 224x224 PIL-bicubic clips in [-1,1]",
                   ".2f", partial(_clip_network, InceptionI3dLogits, "i3d_pretrained_400.pt", fvd_disco_input,
                                  "FVD_i3d_disco"), ("i3d_pretrained_400.pt",), "clip"),
        MetricSpec("FVD_styleganv", "FVD", "FVD (StyleGAN-V I3D)", False, "distribution",
                   "StyleGAN-V I3D TorchScript 400-d features, shorter side to 224 bilinear + centre crop, [-1,1]",
                   ".2f", partial(_styleganv_i3d, fvd_styleganv_input, "FVD_styleganv"), ("i3d_torchscript.pt",),
                   "clip"),
        MetricSpec("MPJPE", "PoseError", "MPJPE (mm)", False, "frame",
                   "root-relative mean 3D error of the 23 body keypoints, fit of the prediction vs the target pose",
                   ".1f", partial(_video, video_metrics.mpjpe), input="video"),
        MetricSpec("PA_MPJPE", "PoseError", "PA-MPJPE (mm)", False, "frame",
                   "MPJPE after per-frame Procrustes (rotation, scale, translation) alignment",
                   ".1f", partial(_video, video_metrics.pa_mpjpe), input="video"),
        MetricSpec("PCK_0.05", "PCK", "PCK@0.05", True, "frame",
                   "fraction of the 23 projected body keypoints within 0.05 x the target's box height",
                   ".3f", partial(_video, video_metrics.pck_at(0.05)), input="video"),
        MetricSpec("PCK_0.1", "PCK", "PCK@0.1", True, "frame",
                   "fraction of the 23 projected body keypoints within 0.1 x the target's box height",
                   ".3f", partial(_video, video_metrics.pck_at(0.1)), input="video"),
        MetricSpec("jitter", "Jitter", "Jitter (mm/f²)", False, "video",
                   "mean acceleration magnitude of the prediction's root-relative body keypoints, mm per frame^2",
                   ".2f", partial(_video, video_metrics.jitter), input="video"),
        MetricSpec("foot_skate", "FootSkating", "Foot skating (mm/f)", False, "video",
                   "mean sideways slide of toe and heel keypoints within 5 cm of the ground, mm per frame",
                   ".2f", partial(_video, video_metrics.foot_skating), input="video"),
        MetricSpec("mask_IoU", "MaskIoU", "Mask IoU", True, "frame",
                   "IoU of MediaPipe's person segmentation of the prediction with the guidance mask",
                   ".3f", partial(_video, video_metrics.mask_iou), input="video", needs=("guidance",)),
        MetricSpec("multiview_L1", "MultiView", "Multi-view L1", False, "frame",
                   "mean RGB L1 on [0,1] between a body point's colours in consecutive views, points seen in both",
                   ".4f", partial(_video, video_metrics.multiview), input="video", needs=("guidance",)),
    )


METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in _specs()}


_WEIGHT_FREE = {
    "PoseError": ("MPJPE", "PA_MPJPE"),
    "PCK": ("PCK_0.05", "PCK_0.1"),
    "Jitter": ("jitter",),
    "FootSkating": ("foot_skate",),
    "MaskIoU": ("mask_IoU",),
    "MultiView": ("multiview_L1",),
}


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    variants: Mapping[str, tuple[str, ...]]  # generic metric -> METRICS names


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("legacy", "definitions of the published DisCo-lineage tables, quirks included (disco-compat)", {
            "L1": ("L1_disco",),
            "PSNR": ("PSNR_star", "PSNR_legacy_uint8"),
            "SSIM": ("SSIM_gray7",),
            "LPIPS": ("LPIPS_vgg_disco",),
            "FID": ("FID_pytorchfid",),
            "FID-VID": ("FID_VID_3drn50",),
            "FVD": ("FVD_i3d_disco",),
            **_WEIGHT_FREE,
        }),
        Profile("clean", "correct definitions, recommended for new tables", {
            "L1": ("L1",),
            "PSNR": ("PSNR",),
            "SSIM": ("SSIM_rgb_gauss11",),
            "LPIPS": ("LPIPS_alex",),
            "FID": ("FID_clean",),
            "FID-VID": ("FID_VID_3drn50",),
            "FVD": ("FVD_styleganv",),
            **_WEIGHT_FREE,
        }),
    )
}


def resolve_metrics(generic: tuple[str, ...], profile: str, where: str) -> list[MetricSpec]:
    """Concrete metrics for a protocol's generic metric list under ``profile``."""
    if profile not in PROFILES:
        raise Champ3dInputError(where, f"unknown profile {profile!r}; known: {sorted(PROFILES)}")
    variants = PROFILES[profile].variants
    unknown = [g for g in generic if g not in variants]
    if unknown:
        raise Champ3dInputError(
            where, f"metric(s) {unknown} not defined in profile {profile!r}; known: {list(variants)}")
    return [METRICS[name] for g in generic for name in variants[g]]

