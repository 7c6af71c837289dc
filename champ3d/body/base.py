"""The body-model interface every backend implements.

Conventions (owned here):

* **Frame.** A body model outputs points in the *camera frame* of ``render.cameras``
  (OpenCV: x right, y down, z forward, metres). With ``global_orient = 0`` the body
  stands upright in the image (head towards −y) and faces the camera (its front towards
  −z); the person's left is +x. ``global_orient`` rotates the body about its root joint,
  then ``transl`` moves the root.
* **Rotations** are axis-angle vectors (radians) in the backend's joint frames.
* **Keypoints** come in the order of :data:`champ3d.body.keypoints.KEYPOINT_NAMES`.
* **Parts.** ``face_parts`` labels every triangle with one of Champ's 24 SMPL-style parts
  (:data:`render.palette.PART_NAMES` order), so a semantic map never interpolates labels.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch


@dataclass
class BodyParams:
    """Parameters of a batch of ``B`` bodies sharing one topology.

    ``shape`` may have a batch of 1 (one shape for a whole clip) or ``B``.
    """

    shape: torch.Tensor  # (1|B, S) backend shape coefficients
    global_orient: torch.Tensor  # (B, 3) axis-angle: body frame -> camera frame
    body_pose: torch.Tensor  # (B, J_body, 3) axis-angle per body joint
    hand_pose: torch.Tensor  # (B, J_hand, 3) axis-angle per finger joint
    transl: torch.Tensor  # (B, 3) root position in the camera frame, metres

    @property
    def batch_size(self) -> int:
        return self.global_orient.shape[0]

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, tensors: dict[str, torch.Tensor]) -> "BodyParams":
        return cls(**{f.name: tensors[f.name] for f in fields(cls)})

    def select(self, index) -> "BodyParams":
        """Frames ``index`` (a slice or index tensor); a shared shape stays shared."""
        shape = self.shape if self.shape.shape[0] == 1 else self.shape[index]
        return replace(
            self,
            shape=shape,
            global_orient=self.global_orient[index],
            body_pose=self.body_pose[index],
            hand_pose=self.hand_pose[index],
            transl=self.transl[index],
        )

    def detach(self) -> "BodyParams":
        return BodyParams(**{k: v.detach() for k, v in self.to_dict().items()})


@dataclass
class BodyOutput:
    """What a body model's forward returns (camera frame, metres)."""

    vertices: torch.Tensor  # (B, V, 3)
    keypoints: torch.Tensor  # (B, K, 3) in KEYPOINT_NAMES order


class BodyModel(torch.nn.Module):
    """Base class: a posable, shapeable mesh with fixed topology, parts and UVs.

    Subclasses register these buffers: ``faces`` (F, 3) int64, ``face_parts`` (F,) int64,
    ``uv_coords`` (U, 2) float in [0, 1] with v pointing *up* in the texture image,
    ``face_uv_indices`` (F, 3) int64 into ``uv_coords``; and define ``num_body_joints``,
    ``num_hand_joints``, ``num_shape``, ``knee_joints`` (the left and right knee's indices
    into ``body_pose``, whose flexion is a positive rotation about x), ``default_shape()`` and
    ``shape_prior_scale()``.
    """

    faces: torch.Tensor
    face_parts: torch.Tensor
    uv_coords: torch.Tensor
    face_uv_indices: torch.Tensor
    num_body_joints: int
    num_hand_joints: int
    num_shape: int
    knee_joints: tuple[int, int]
    backend: str

    def corner_uvs(self) -> np.ndarray:
        """(F, 3, 2) float32 texture coordinates of every triangle's corners."""
        return self.uv_coords.detach().cpu().numpy()[self.face_uv_indices.detach().cpu().numpy()]

    def default_shape(self) -> torch.Tensor:
        raise NotImplementedError

    def shape_prior_scale(self) -> torch.Tensor:
        """(S,) stiffness of the fitter's prior on each shape coefficient."""
        raise NotImplementedError

    def keypoints(self, params: BodyParams) -> torch.Tensor:
        """(B, K, 3) keypoints without skinning the mesh (cheap; used by fitting)."""
        raise NotImplementedError

    def forward(self, params: BodyParams) -> BodyOutput:
        raise NotImplementedError

    def keypoints_and_vertices(self, params: BodyParams, vertex_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, 3) keypoints and (B, N, 3) camera-frame positions of the vertices
        ``vertex_ids``, from one pose evaluation; backends with a cheaper path than skinning
        the whole mesh override this."""
        out = self(params)
        return out.keypoints, out.vertices[:, vertex_ids]

    def zero_params(self, batch_size: int, shape: torch.Tensor | None = None) -> BodyParams:
        """Rest pose facing the camera at the origin, ``batch_size`` frames."""
        dtype = self.uv_coords.dtype
        zeros = lambda *s: torch.zeros(*s, dtype=dtype, device=self.uv_coords.device)
        return BodyParams(
            shape=self.default_shape()[None] if shape is None else shape.reshape(1, -1),
            global_orient=zeros(batch_size, 3),
            body_pose=zeros(batch_size, self.num_body_joints, 3),
            hand_pose=zeros(batch_size, self.num_hand_joints, 3),
            transl=zeros(batch_size, 3),
        )


def face_majority(corner_labels: torch.Tensor) -> torch.Tensor:
    """Per-face majority of its three corner labels (F, 3) -> (F,) (the first corner's label
    on a three-way tie): how vertex part labels become face part labels."""
    a, b, c = corner_labels.unbind(dim=1)
    return torch.where((b == c) & (a != b), b, a)
