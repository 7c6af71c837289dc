"""Anny (Apache-2.0 code, CC0 data) as champ3d's default, licence-free body model.

Anny's own frame is Z up, front −Y, the person's left +X, metres, root at the pelvis.
:data:`ANNY_TO_BODY` turns it into the body frame of :mod:`champ3d.body.base`.

Posable joints: :data:`BODY_JOINTS` and :data:`HAND_JOINTS` (Anny bone labels). Their
axis-angle rotations are Anny ``local-ref`` deltas: world-aligned axes (of Anny's rest
pose) about the bone head. Every other bone (twist bones, toes, metacarpals, eyes) stays
at rest. The shape is Anny's 6 phenotype values (gender, age, muscle, weight, height,
proportions), each in [0, 1].
"""
from __future__ import annotations

import roma
import torch

from champ3d.body.base import BodyModel, BodyOutput, BodyParams
from champ3d.body.keypoints import BODY_KEYPOINT_NAMES, FINGERS, KEYPOINT_NAMES

ANNY_TO_BODY = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

BODY_JOINTS = (
    "spine05", "spine04", "spine03", "spine02", "spine01", "neck01", "head",
    "clavicle.L", "clavicle.R", "upperarm01.L", "upperarm01.R",
    "lowerarm01.L", "lowerarm01.R", "wrist.L", "wrist.R",
    "upperleg01.L", "upperleg01.R", "lowerleg01.L", "lowerleg01.R", "foot.L", "foot.R",
)
HAND_JOINTS = tuple(
    f"finger{f}-{k}.{side}" for side in ("L", "R") for f in range(1, 6) for k in range(1, 4)
)

# Champ labels a vertex by the SMPL joint that dominates its skinning; Anny's bones are
# grouped into the same 24 regions (SMPL's "hip" joint moves the thigh, "knee" the shin...).
_PART_OF_BONE_PREFIX = (
    ("root", "pelvis"), ("pelvis.", "pelvis"), ("spine05", "spine1"), ("spine04", "spine1"),
    ("spine03", "spine2"), ("spine02", "spine3"), ("spine01", "spine3"),
    ("upperleg", "{side}_hip"), ("lowerleg", "{side}_knee"), ("foot", "{side}_ankle"),
    ("toe", "{side}_foot"), ("neck", "neck"), ("clavicle", "{side}_collar"),
    ("shoulder01", "{side}_collar"), ("head", "head"), ("eye", "head"),
    ("upperarm", "{side}_shoulder"), ("lowerarm", "{side}_elbow"), ("wrist", "{side}_wrist"),
    ("metacarpal", "{side}_wrist"), ("finger", "{side}_hand"),
)

_FINGER_BONE = {finger: i + 1 for i, finger in enumerate(FINGERS)}


def part_of_bone(label: str) -> str:
    side = "left" if label.endswith(".L") else "right"
    for prefix, part in _PART_OF_BONE_PREFIX:
        if label.startswith(prefix):
            return part.format(side=side)
    raise KeyError(f"no body part for Anny bone {label!r}")


class AnnyBody(BodyModel):
    """Anny behind the :class:`BodyModel` interface (float32, dense torch skinning)."""

    backend = "anny"

    def __init__(self):
        super().__init__()
        import anny  # heavy import (and a one-time cache build): only when used

        from render.palette import PART_NAMES

        model = anny.Anny(skinning_method="lbs").to(torch.float32)
        model.requires_grad_(False)
        self.anny = model
        labels = list(model.bone_labels)
        self.num_bones = len(labels)
        self.num_body_joints = len(BODY_JOINTS)
        self.num_hand_joints = len(HAND_JOINTS)
        self.num_shape = len(model.phenotype_labels)
        self.register_buffer("_body_bone_ids", torch.tensor([labels.index(b) for b in BODY_JOINTS]))
        self.register_buffer("_hand_bone_ids", torch.tensor([labels.index(b) for b in HAND_JOINTS]))
        self.register_buffer("_anny_to_body", ANNY_TO_BODY.clone())

        faces = model.get_triangular_faces().long()
        self.register_buffer("faces", faces)
        dominant_bone = model.vertex_bone_indices.gather(
            1, model.vertex_bone_weights.argmax(dim=1, keepdim=True)
        )[:, 0]
        bone_part = torch.tensor([PART_NAMES.index(part_of_bone(b)) for b in labels])
        vertex_parts = bone_part[dominant_bone.long()]
        self.register_buffer("face_parts", _majority(vertex_parts[faces]))
        self.register_buffer("vertex_parts", vertex_parts)
        self.register_buffer("uv_coords", model.texture_coordinates.to(torch.float32))
        self.register_buffer("face_uv_indices", model.face_texture_coordinate_indices.long())

        skin = torch.zeros(len(model.template_vertices), self.num_bones)
        skin.scatter_add_(1, model.vertex_bone_indices.long(), model.vertex_bone_weights.float())
        self.register_buffer("_skin_weights", skin)  # (V, bones) dense skinning weights
        self._build_keypoint_sources(labels)
        self._rest_cache = None

    # -- keypoints ---------------------------------------------------------------------
    def _build_keypoint_sources(self, labels: list[str]) -> None:
        """Each keypoint is either a vertex blend (COCO regressor, fingertips) or a bone head."""
        import anny

        coco = anny.KeypointsRegressor.coco(self.anny, labels=list(BODY_KEYPOINT_NAMES))
        rows = [coco.regression_weights.to(torch.float32)]
        regressed = list(BODY_KEYPOINT_NAMES)
        head_names, head_bones = [], []
        rest = self.anny(pose_parameters=None)
        rest_vertices = rest["rest_vertices"][0]
        rest_heads = rest["rest_bone_heads"][0]
        dominant = self.anny.vertex_bone_indices.gather(
            1, self.anny.vertex_bone_weights.argmax(dim=1, keepdim=True)
        )[:, 0]
        for side, suffix in (("left", ".L"), ("right", ".R")):
            head_names.append(f"{side}_hand_wrist")
            head_bones.append(labels.index("wrist" + suffix))
            for finger, f in _FINGER_BONE.items():
                joints = ("cmc", "mcp", "ip") if finger == "thumb" else ("mcp", "pip", "dip")
                for k, joint in enumerate(joints, start=1):
                    head_names.append(f"{side}_hand_{finger}_{joint}")
                    head_bones.append(labels.index(f"finger{f}-{k}{suffix}"))
                # the fingertip: the last phalanx's vertex farthest along that phalanx
                last = labels.index(f"finger{f}-3{suffix}")
                direction = rest_heads[last] - rest_heads[labels.index(f"finger{f}-2{suffix}")]
                candidates = torch.nonzero(dominant == last)[:, 0]
                reach = (rest_vertices[candidates] - rest_heads[last]) @ direction
                tip = torch.zeros(rows[0].shape[1])
                tip[candidates[reach.argmax()]] = 1.0
                rows.append(tip[None])
                regressed.append(f"{side}_hand_{finger}_tip")
        self.register_buffer("_regressor", torch.cat(rows))  # (K_reg, V)
        self.register_buffer("_head_bones", torch.tensor(head_bones))
        order = regressed + head_names
        self.register_buffer("_keypoint_order", torch.tensor([order.index(n) for n in KEYPOINT_NAMES]))

    # -- model -------------------------------------------------------------------------
    def default_shape(self) -> torch.Tensor:
        """A young adult of average build, androgynous: the fitter's starting point."""
        values = {"gender": 0.5, "age": 0.6667, "muscle": 0.5, "weight": 0.5, "height": 0.5, "proportions": 0.5}
        return torch.tensor([values[k] for k in self.anny.phenotype_labels], device=self.faces.device)

    def shape_prior_scale(self) -> torch.Tensor:
        """Per-phenotype prior stiffness: age and height are barely observable from
        canonical-scale landmarks (scale-depth ambiguity), so they are held near average."""
        stiffness = {"gender": 1.0, "age": 30.0, "muscle": 1.0, "weight": 1.0, "height": 3.0, "proportions": 1.0}
        return torch.tensor([stiffness[k] for k in self.anny.phenotype_labels], device=self.faces.device)

    def _rest(self, shape: torch.Tensor) -> dict:
        """Rest mesh, bone poses and keypoint basis for ``shape``; cached while it is constant."""
        cached = self._rest_cache
        if cached is not None and not shape.requires_grad and torch.equal(cached[0], shape):
            return cached[1]
        none = shape.new_zeros(shape.shape[0], 0)  # no local changes, no facial actions
        coeffs = self.anny._get_phenotype_blendshape_coefficients(shape, none, none)
        rest = self.anny.get_rest_model(coeffs)
        rest["keypoint_basis"] = self._keypoint_basis(rest["rest_vertices"][0])
        if not shape.requires_grad:
            self._rest_cache = (shape.detach().clone(), rest)
        return rest

    def _keypoint_basis(self, rest_vertices: torch.Tensor) -> torch.Tensor:
        """P[k, j] = sum_v W[k, v] w[v, j] [v; 1], so keypoint k = sum_j T_j P[k, j] (no skinning)."""
        homogeneous = torch.nn.functional.pad(rest_vertices, (0, 1), value=1.0)  # (V, 4)
        return torch.stack(
            [self._regressor @ (self._skin_weights * homogeneous[:, c, None]) for c in range(4)], dim=-1
        )

    def _bone_transforms(self, params: BodyParams, rest_bone_poses: torch.Tensor):
        batch = params.batch_size
        rotations = torch.eye(4, device=params.transl.device).repeat(batch, self.num_bones, 1, 1)
        rotations[:, self._body_bone_ids, :3, :3] = roma.rotvec_to_rotmat(params.body_pose)
        rotations[:, self._hand_bone_ids, :3, :3] = roma.rotvec_to_rotmat(params.hand_pose)
        return self.anny.get_bone_transforms(rotations, rest_bone_poses)

    def _to_camera(self, points: torch.Tensor, params: BodyParams) -> torch.Tensor:
        rotation = roma.rotvec_to_rotmat(params.global_orient) @ self._anny_to_body
        return points @ rotation.transpose(1, 2) + params.transl[:, None]

    def _keypoints_anny(self, rest, transforms, bone_poses) -> torch.Tensor:
        regressed = torch.einsum("bjxy,kjy->bkx", transforms[:, :, :3, :], rest["keypoint_basis"])
        heads = bone_poses[:, self._head_bones, :3, 3]
        return torch.cat([regressed, heads], dim=1)[:, self._keypoint_order]

    def keypoints(self, params: BodyParams) -> torch.Tensor:
        rest = self._rest(params.shape)
        transforms, bone_poses = self._bone_transforms(params, rest["rest_bone_poses"])
        return self._to_camera(self._keypoints_anny(rest, transforms, bone_poses), params)

    def forward(self, params: BodyParams) -> BodyOutput:
        rest = self._rest(params.shape)
        transforms, bone_poses = self._bone_transforms(params, rest["rest_bone_poses"])
        vertices = self.anny.get_skinned_vertices(
            rest["rest_vertices"].expand(params.batch_size, -1, -1), transforms
        )
        keypoints = self._keypoints_anny(rest, transforms, bone_poses)
        return BodyOutput(
            vertices=self._to_camera(vertices, params),
            keypoints=self._to_camera(keypoints, params),
        )


def _majority(corner_labels: torch.Tensor) -> torch.Tensor:
    """Per-row majority of three labels (the first corner's label on a three-way tie)."""
    a, b, c = corner_labels.unbind(dim=1)
    return torch.where((b == c) & (a != b), b, a)
