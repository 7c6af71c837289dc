"""Textured rendering: the body's colour from a UV texture, in the same raster pass as
Champ's guidance maps.

One draw call writes Champ's maps (:mod:`render.shaders`, unchanged and exact: one sample
at each pixel centre, no anti-aliasing) and a colour target: the texture sampled
bilinearly at the pixel centre's interpolated (perspective-correct) UV. Compute passes
then anti-alias the colour image *analytically* along the mesh's contour, so only the
colour and its coverage are smoothed:

1. **find**: the sign of every face's projected area gives its winding in the image; an
   edge whose two faces' windings differ there (unless the faces are wound against each
   other on the mesh) folds over in the image, and so does every boundary edge: these are
   the contour segments;
2. **walk**: a segment whose surface shows just inside it somewhere (the rendered planar
   depth matches the segment's within :data:`DEPTH_TOLERANCE`) visits the pixels whose
   square it crosses (its line passes through the square, the segment within
   :data:`REACH` of the centre); each pixel where the depth test holds keeps its nearest
   segment;
3. **resolve**: in each such pixel the segment's half-plane covers the exact area
   fraction ``c`` of the pixel square. The pixel becomes ``c`` times the colour of the
   contour's surface plus ``1 - c`` times what lies behind it: the neighbouring pixel
   across the contour, or nothing (background).

Each pass runs over the previous one's output list, sized on the GPU (indirect dispatch),
so the CPU waits once per pass of frames. Pixels where two contour segments meet (corners)
take the nearer one's half-plane, so they are approximate. The texture is sampled
trilinearly from mipmaps down to level :data:`MAX_MIP_LEVEL`, so a texture much finer than
the rendered body does not alias; a level-``L`` texel averages ``2**L`` texels a side,
which stays inside an island and its gutter when the gutter is at least ``2**L`` texels
wide (:data:`texture.infill.GUTTER`).

The texture convention is :mod:`texture.atlas`'s: (A, A, 3) RGB (uint8, or float in
[0, 1]), row 0 at v = 1, texel (r, c) centred at ``uv = ((c + 0.5) / A, 1 - (r + 0.5) / A)``
(non-square images scale each axis alike); UVs outside [0, 1] clamp to the edge texels.

Colour output (:class:`TexturedMaps`): ``colour`` is the textured body *premultiplied by
its coverage*, i.e. composited over black, and ``alpha`` its coverage (255 = fully
covered). Composite over a background with :func:`composite`:
``out = colour + (1 - alpha / 255) * background``. Away from contours ``alpha`` equals
Champ's mask, and ``colour`` is the texture colour inside it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import cv2
import moderngl
import numpy as np

from render.cameras import PerspectiveCameras
from render.rasterizer import CAMERA_GLSL, FRAGMENT_GLSL, BIND_PROGRAM, FragmentProgram, MeshRasterizer, \
    RasterPass, Target, glsl, tag_vertices
from render.shaders import CHAMP_MAPS_GLSL, CHAMP_TARGETS, ChampMaps, ChampMapShader

#: Texture unit of the UV texture while drawing.
TEXTURE_UNIT = 0
#: Texture units the anti-aliasing passes read the drawn colour and planar depth from.
COLOUR_UNIT, DEPTH_UNIT = 1, 2
#: Storage bindings of the anti-aliasing passes, which run between draws (the edge list
#: takes the draw's BIND_PROGRAM slot; the rasteriser binds its own buffers again before
#: each draw).
BIND_EDGES, BIND_KEYS, BIND_BAND, BIND_SEGMENTS, BIND_FACE_SIGNS, BIND_DISPATCH = BIND_PROGRAM, 10, 11, 12, 13, 14

#: A contour segment counts as visible at a pixel when the rendered planar depth there is
#: within this many pixel footprints (``depth / fx`` metres) of the segment's depth.
DEPTH_TOLERANCE = 12.0

#: Pixels a contour can touch lie within half a pixel diagonal of it.
REACH = 0.7072

#: Coarsest mipmap level sampled (level L averages 2**L texels a side).
MAX_MIP_LEVEL = 3

#: Bits of a pixel's contour key holding the edge index (the rest hold the distance).
EDGE_BITS = 20

TEXTURED_FS = FRAGMENT_GLSL + CHAMP_MAPS_GLSL + """
layout(std430, binding = 9) readonly buffer CornerUVs { vec2 corner_uv[]; };  // 3 per face
uniform sampler2D uv_texture;
layout(location = 3) out vec3 colour;
void main() {
    write_champ_maps();
    int f = 3 * gl_PrimitiveID;
    mat3x2 uvs = mat3x2(corner_uv[f], corner_uv[f + 1], corner_uv[f + 2]);
    FaceFrame face = face_frame();
    vec2 uv = uvs * barycentrics(face);
    // the pixel's footprint in texels picks the mipmap level (GL's isotropic rule); it comes
    // from the screen-space derivatives of cam_position, as those of values computed from
    // the face data are unreliable in a quad's helper lanes
    vec2 texels = vec2(textureSize(uv_texture, 0));
    vec2 along_x = uvs * barycentric_change(face, dFdx(cam_position)) * texels;
    vec2 along_y = uvs * barycentric_change(face, dFdy(cam_position)) * texels;
    float lod = 0.5 * log2(max(max(dot(along_x, along_x), dot(along_y, along_y)), 1.0));
    colour = textureLod(uv_texture, vec2(uv.x, 1.0 - uv.y), lod).rgb;  // texture row 0 (GL t = 0) is v = 1
}
"""

#: The textured program: Champ's targets followed by the colour target.
TEXTURED_PROGRAM = FragmentProgram(glsl(TEXTURED_FS), CHAMP_TARGETS + (Target("colour", 3, "f1"),))

#: Shared by the anti-aliasing passes: the buffers, and contour segments in pixel coordinates.
CONTOUR_GLSL = CAMERA_GLSL + """
layout(std430, binding = 0) readonly buffer CamPos { vec4 cam_pos[]; };
struct Edge { uvec4 corners; uvec4 faces; };  // see contour_edges()
layout(std430, binding = 9) readonly buffer Edges { Edge edges[]; };
layout(std430, binding = 10) coherent buffer Keys { uint keys[]; };    // per pixel; EMPTY if untouched
layout(std430, binding = 11) coherent buffer Band { uint band_count; uint band[]; };  // (pixel, rgba) pairs
layout(std430, binding = 12) coherent buffer Segments { uint segment_count; uint pad; uvec2 segments[]; };  // (frame, edge)
uniform sampler2D drawn_depth;  // the pass's planar depth, frames in bands of rows
uniform int num_render_verts;
uniform ivec2 image_size;       // (W, H)
const uint EMPTY = 0xFFFFFFFFu;
const uint NO_VERTEX = 0xFFFFFFFFu;

struct Segment { vec2 a; vec2 d; vec2 inward; float length; float za; float zb; float fx; };

// Pixel coordinates and depth of render vertex v; k = (fx, fy, cx, cy).
vec3 corner(uint frame, uint v, vec4 k) {
    vec3 p = cam_pos[frame * uint(num_render_verts) + v].xyz;
    return vec3(k.xy * p.xy / p.z + k.zw, p.z);
}

float cross2(vec2 a, vec2 b) { return a.x * b.y - a.y * b.x; }

// Edge e of frame seen as a contour segment; false if it is not a contour (or behind the camera).
bool contour_segment(uint frame, uint e, out Segment s) {
    vec4 k = cams[frame].k;  // only the intrinsics: copying the whole record is slow
    uvec4 edge = edges[e].corners;
    vec3 pa = corner(frame, edge.x, k), pb = corner(frame, edge.y, k), pt = corner(frame, edge.z, k);
    s.a = pa.xy; s.d = pb.xy - pa.xy; s.length = length(s.d); s.za = pa.z; s.zb = pb.z; s.fx = k.x;
    if (min(min(pa.z, pb.z), pt.z) <= 0.0 || s.length < 1e-6) return false;
    float side = cross2(s.d, pt.xy - pa.xy);
    if (edge.w != NO_VERTEX) {
        vec3 pu = corner(frame, edge.w, k);
        if (pu.z <= 0.0 || side * cross2(s.d, pu.xy - pa.xy) <= 0.0) return false;  // no fold here
    }
    s.inward = sign(side) * vec2(-s.d.y, s.d.x) / s.length;
    return side != 0.0;
}

float drawn_depth_at(uint frame, ivec2 q) {
    if (any(lessThan(q, ivec2(0))) || any(greaterThanEqual(q, image_size))) return 0.0;
    return texelFetch(drawn_depth, ivec2(q.x, int(frame) * image_size.y + q.y), 0).r;
}

// The neighbouring pixel (of 8) in the direction of the unit vector n: a component counts
// when it exceeds sin(22.5 degrees) (1.3066 = 0.5 / sin(22.5 degrees)).
ivec2 step_toward(vec2 n) { return ivec2(round(n * 1.3066)); }
"""

FACE_SIGNS_GLSL = """
layout(std430, binding = 13) coherent buffer FaceSigns { float face_signs[]; };  // per (frame, face)
uniform uint num_faces;
"""

SIGN_CS = CONTOUR_GLSL + FACE_SIGNS_GLSL + """
layout(local_size_x = 64) in;
layout(std430, binding = 3) readonly buffer Faces { uint faces[]; };

// The sign of each face's projected area (its winding as seen in the image), 0 when it
// is edge-on or reaches behind the camera.
void main() {
    uint f = gl_GlobalInvocationID.x, frame = gl_GlobalInvocationID.y;
    if (f >= num_faces) return;
    uint base = frame * uint(num_render_verts);
    vec3 a = cam_pos[base + faces[3u * f]].xyz, b = cam_pos[base + faces[3u * f + 1u]].xyz;
    vec3 c = cam_pos[base + faces[3u * f + 2u]].xyz;
    float area = cross2(b.xy / b.z - a.xy / a.z, c.xy / c.z - a.xy / a.z);
    face_signs[frame * num_faces + f] = min(min(a.z, b.z), c.z) > 0.0 ? sign(area) : 0.0;
}
"""

FIND_CS = CONTOUR_GLSL + FACE_SIGNS_GLSL + """
layout(local_size_x = 64) in;
uniform uint num_edges;

// Lists the edges that fold in the image: their faces' windings differ there (unless the
// faces are wound against each other), and boundary edges.
void main() {
    uint e = gl_GlobalInvocationID.x, frame = gl_GlobalInvocationID.y;
    if (e >= num_edges) return;
    uvec4 faces = edges[e].faces;
    float s0 = face_signs[frame * num_faces + faces.x];
    float s1 = faces.y == NO_VERTEX ? -s0 : face_signs[frame * num_faces + faces.y];
    if (s0 != 0.0 && s1 != 0.0 && (s0 != s1) != (faces.z != 0u))
        segments[atomicAdd(segment_count, 1u)] = uvec2(frame, e);
}
"""

WALK_CS = CONTOUR_GLSL + """
layout(local_size_x = 64) in;
uniform float depth_tolerance;

// Whether the surface inside the segment shows just inside its point at t (0..1).
bool shows(uint frame, Segment s, float t) {
    vec2 p = s.a + t * s.d + 0.75 * s.inward;
    float z = mix(s.za, s.zb, t);
    return abs(drawn_depth_at(frame, ivec2(floor(p + 0.5))) - z) <= depth_tolerance * z / s.fx;
}

void touch(uint frame, uint e, Segment s, ivec2 q) {
    if (any(lessThan(q, ivec2(0))) || any(greaterThanEqual(q, image_size))) return;
    vec2 r = vec2(q) - s.a;
    float signed_distance = dot(r, s.inward);
    if (abs(signed_distance) >= 0.5 * (abs(s.inward.x) + abs(s.inward.y))) return;  // the line misses the pixel
    float t = clamp(dot(r, s.d) / (s.length * s.length), 0.0, 1.0);
    float distance = length(r - t * s.d);
    if (distance >= REACH) return;  // so does the segment
    float z = mix(s.za, s.zb, t), tolerance = depth_tolerance * z / s.fx;
    // the contour's surface must be what the pixel on its inner side shows ...
    ivec2 inner = signed_distance >= 0.0 ? q : q + step_toward(s.inward);
    if (abs(drawn_depth_at(frame, inner) - z) > tolerance) return;
    // ... and a pixel outside it must show something behind it, or nothing
    float zq = drawn_depth_at(frame, q);
    if (signed_distance < 0.0 && zq > 0.0 && zq < z + tolerance) return;
    uint key = (uint(distance / REACH * 4095.0) << EDGE_BITS) | e;
    uint pixel = (frame * uint(image_size.y) + uint(q.y)) * uint(image_size.x) + uint(q.x);
    if (atomicCompSwap(keys[pixel], EMPTY, key) == EMPTY) {
        band[2u * atomicAdd(band_count, 1u)] = pixel;
    } else {
        atomicMin(keys[pixel], key);
    }
}

void main() {
    uint slot = gl_GlobalInvocationID.x;
    if (slot >= segment_count) return;
    uvec2 found = segments[slot];
    Segment s;
    if (!contour_segment(found.x, found.y, s)
            || !(shows(found.x, s, 0.5) || shows(found.x, s, 0.0) || shows(found.x, s, 1.0))) return;  // hidden
    // walk along the segment's major axis (x after swapping), a column of rows at a time
    bool steep = abs(s.d.y) > abs(s.d.x);
    vec2 a = steep ? s.a.yx : s.a, d = steep ? s.d.yx : s.d;
    int first = int(floor(min(a.x, a.x + d.x) - REACH)), last = int(ceil(max(a.x, a.x + d.x) + REACH));
    for (int column = first; column <= last; ++column) {
        float y = a.y + d.y * clamp((float(column) - a.x) / d.x, 0.0, 1.0);
        float half_span = REACH * (1.0 + abs(d.y / d.x));  // pixels within REACH of the segment
        for (int row = int(ceil(y - half_span)); row <= int(floor(y + half_span)); ++row)
            touch(found.x, found.y, s, steep ? ivec2(row, column) : ivec2(column, row));
    }
}
"""

RESOLVE_CS = CONTOUR_GLSL + """
layout(local_size_x = 64) in;
uniform sampler2D drawn_colour;

// Area of the unit pixel square on the inner side of a line at signed distance s from its
// centre (positive: the centre is inside), unit normal n.
float coverage(float s, vec2 n) {
    float a = max(abs(n.x), abs(n.y)), b = min(abs(n.x), abs(n.y)), t = abs(s);
    float flat_half = 0.5 * (a - b), half_width = 0.5 * (a + b);
    float inside = t <= flat_half ? 0.5 + t / a
                 : t < half_width ? 1.0 - (half_width - t) * (half_width - t) / (2.0 * a * b)
                 : 1.0;
    return s >= 0.0 ? inside : 1.0 - inside;
}

vec4 drawn(uint frame, ivec2 q) {  // premultiplied colour, alpha 1 where a surface was drawn
    if (drawn_depth_at(frame, q) <= 0.0) return vec4(0.0);
    return vec4(texelFetch(drawn_colour, ivec2(q.x, int(frame) * image_size.y + q.y), 0).rgb, 1.0);
}

void main() {
    uint slot = gl_GlobalInvocationID.x;
    if (slot >= band_count) return;
    uint pixel = band[2u * slot];
    uint key = keys[pixel];
    keys[pixel] = EMPTY;  // ready for the next pass
    uint frame_pixels = uint(image_size.x * image_size.y);
    uint frame = pixel / frame_pixels, within = pixel % frame_pixels;
    ivec2 q = ivec2(within % uint(image_size.x), within / uint(image_size.x));
    Segment s;
    contour_segment(frame, key & ((1u << EDGE_BITS) - 1u), s);
    float signed_distance = dot(vec2(q) - s.a, s.inward);
    float c = coverage(signed_distance, s.inward);
    ivec2 across = step_toward(s.inward);
    vec4 front = signed_distance >= 0.0 ? drawn(frame, q) : drawn(frame, q + across);
    vec4 behind = signed_distance >= 0.0 ? drawn(frame, q - across) : drawn(frame, q);
    band[2u * slot + 1u] = packUnorm4x8(vec4(c * front.rgb, c) + (1.0 - c) * behind);
}
"""


#: Sizes the dispatch of the pass that runs over a list (0: segments, 1: band pixels).
DISPATCH_CS = """
layout(local_size_x = 1) in;
layout(std430, binding = 11) readonly buffer Band { uint band_count; };
layout(std430, binding = 12) readonly buffer Segments { uint segment_count; };
layout(std430, binding = 14) writeonly buffer Dispatch { uvec4 dispatch[2]; };  // (groups, 1, 1, unused)
uniform int list;
void main() {
    uint length = list == 0 ? segment_count : band_count;
    dispatch[list] = uvec4((length + 63u) / 64u, 1u, 1u, 0u);
}
"""


@dataclass
class TexturedMaps(ChampMaps):
    """Champ's maps (exact, see :mod:`render.shaders`) plus the anti-aliased textured body:
    colour: (B, H, W, 3) uint8 RGB premultiplied by the coverage (the body over black);
    alpha: (B, H, W) uint8 coverage, 255 = covered (see the module docstring)."""

    colour: np.ndarray = None
    alpha: np.ndarray = None

    @classmethod
    def empty(cls, num_frames: int, image_size: Tuple[int, int]) -> "TexturedMaps":
        H, W = image_size
        maps = ChampMaps.empty(num_frames, image_size)
        return cls(maps.depth, maps.normal, maps.semantic, maps.mask,
                   colour=np.empty((num_frames, H, W, 3), np.uint8), alpha=np.empty((num_frames, H, W), np.uint8))

    def select(self, frames: slice) -> "TexturedMaps":
        return TexturedMaps(self.depth[frames], self.normal[frames], self.semantic[frames], self.mask[frames],
                            self.colour[frames], self.alpha[frames])


def composite(colour: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``colour`` (premultiplied, uint8 (..., H, W, 3)) over ``background`` (uint8 (H, W, 3)
    or the same shape) with coverage ``alpha`` (uint8 (..., H, W)): uint8 RGB,
    ``colour + round(background * (255 - alpha) / 255)``, saturated."""
    shape, width = colour.shape, colour.shape[-2]
    weight = cv2.cvtColor(np.ascontiguousarray(255 - alpha).reshape(-1, width), cv2.COLOR_GRAY2RGB)
    plate = np.ascontiguousarray(np.broadcast_to(background, shape)).reshape(-1, width, 3)
    behind = cv2.multiply(plate, weight, scale=1.0 / 255)  # rounded to nearest
    return cv2.add(np.ascontiguousarray(colour).reshape(-1, width, 3), behind).reshape(shape)


def texture_image(texture: np.ndarray) -> np.ndarray:
    """A UV texture as a C-contiguous uint8 (A_h, A_w, 3) RGB array (float input: values in
    [0, 1], rounded)."""
    image = np.asarray(texture)
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f"texture: expected an (A, A, 3) RGB image, got shape {image.shape}")
    if np.issubdtype(image.dtype, np.floating):
        if not np.all(np.isfinite(image)):
            raise ValueError("texture: contains NaN or infinite values")
        image = np.rint(np.clip(image, 0.0, 1.0) * 255.0)
    elif image.dtype != np.uint8:
        raise ValueError(f"texture: expected uint8 or float values, got {image.dtype}")
    return np.ascontiguousarray(image, dtype=np.uint8)


#: Marks a missing vertex or face in :func:`contour_edges`.
NONE = 0xFFFFFFFF


def contour_edges(faces: np.ndarray) -> np.ndarray:
    """(E, 8) uint32 per edge of ``faces``: ``a, b`` its vertices, ``third, other_third`` the
    opposite corners of its two faces, ``face, other_face`` those faces, ``inconsistent``
    1 when both faces run the edge in the same direction (their windings disagree), and 0.
    A boundary edge has :data:`NONE` as its other corner and face. An edge shared by more
    than two faces is listed once per further face, paired with the first."""
    faces = np.asarray(faces, dtype=np.int64)
    corners = np.stack([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], axis=1).reshape(-1, 2)
    opposite = faces[:, [2, 0, 1]].reshape(-1)
    lo, hi = corners.min(axis=1), corners.max(axis=1)
    order = np.lexsort((hi, lo))
    lo, hi, opposite, corners, face = lo[order], hi[order], opposite[order], corners[order], order // 3
    starts = np.flatnonzero(np.r_[True, (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])])
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(lo)]))
    boundary = starts[np.bincount(group) == 1]
    paired = np.flatnonzero(np.arange(len(lo)) != starts[group])
    first = starts[group[paired]]
    none = np.full(len(boundary), NONE)
    rows = [
        np.stack([corners[boundary, 0], corners[boundary, 1], opposite[boundary], none, face[boundary], none,
                  0 * none, 0 * none], axis=1),
        np.stack([corners[first, 0], corners[first, 1], opposite[first], opposite[paired], face[first], face[paired],
                  corners[first, 0] == corners[paired, 0], 0 * first], axis=1),
    ]
    return np.concatenate(rows).astype(np.uint32)


class TexturedRenderer:
    """Renders Champ's maps and the textured body of posed meshes in one raster pass.

    Args:
        faces: (F, 3) triangle vertex indices.
        face_labels: (F,) part label (0..23) of every triangle.
        corner_uvs: (F, 3, 2) texture coordinates of each face corner (v up), e.g.
            ``body.corner_uvs()``.
        texture: the UV texture (see the module docstring; replace it with
            :meth:`set_texture`).
        image_size: (H, W).
        frames_per_pass: frames drawn per GPU pass (see :class:`MeshRasterizer`).

    Example::

        renderer = TexturedRenderer(faces, labels, body.corner_uvs(), texture, (512, 512))
        maps = renderer(verts, cameras)
        frame = composite(maps.colour[0], maps.alpha[0], background)
    """

    def __init__(self, faces: np.ndarray, face_labels: np.ndarray, corner_uvs: np.ndarray, texture: np.ndarray,
                 image_size: Tuple[int, int], frames_per_pass: int = 16):
        faces = np.asarray(faces)
        self.shader = ChampMapShader(face_labels)
        if len(self.shader.face_labels) != len(faces):
            raise ValueError(f"face_labels has {len(self.shader.face_labels)} entries for {len(faces)} faces")
        uvs = np.ascontiguousarray(corner_uvs, dtype=np.float32)
        if uvs.shape != (len(faces), 3, 2) or not np.all(np.isfinite(uvs)):
            raise ValueError(f"corner_uvs: expected finite ({len(faces)}, 3, 2) texture coordinates, got {uvs.shape}")
        self.rasterizer = MeshRasterizer(faces, image_size, frames_per_pass, face_tags=self.shader.face_tags)
        ctx = self.rasterizer.context
        edges = contour_edges(self.rasterizer.faces)
        if len(edges) >= 1 << 20:
            raise ValueError(f"meshes with more than {(1 << 20) - 1} edges are not supported, got {len(edges)}")
        self._num_edges = len(edges)
        self._uv_buffer = ctx.buffer(uvs.tobytes())
        self._edge_buffer = ctx.buffer(edges.tobytes())
        defines = {"EDGE_BITS": EDGE_BITS, "REACH": REACH}
        self._sign_cs = ctx.compute_shader(glsl(SIGN_CS, **defines))
        self._find_cs = ctx.compute_shader(glsl(FIND_CS, **defines))
        self._walk_cs = ctx.compute_shader(glsl(WALK_CS, **defines))
        self._resolve_cs = ctx.compute_shader(glsl(RESOLVE_CS, **defines))
        self._dispatch_cs = ctx.compute_shader(glsl(DISPATCH_CS))
        num_render_verts = len(tag_vertices(self.rasterizer.faces, self.shader.face_tags)[2])
        H, W = self.rasterizer.image_size
        uniforms = {"num_render_verts": num_render_verts, "image_size": (W, H), "drawn_depth": DEPTH_UNIT,
                    "drawn_colour": COLOUR_UNIT, "num_edges": self._num_edges, "depth_tolerance": DEPTH_TOLERANCE,
                    "num_faces": self.rasterizer.num_faces}
        for cs in (self._sign_cs, self._find_cs, self._walk_cs, self._resolve_cs):
            for name, value in uniforms.items():
                if name in cs:  # each pass uses some of them
                    cs[name].value = value
        frames = self.rasterizer.frames_per_pass
        self._keys = ctx.buffer(b"\xff" * (4 * frames * H * W))
        self._band = ctx.buffer(reserve=4 + 8 * frames * H * W)
        self._segments = ctx.buffer(reserve=8 + 8 * frames * self._num_edges)
        self._face_signs = ctx.buffer(reserve=4 * frames * self.rasterizer.num_faces)
        self._dispatch = ctx.buffer(reserve=32)  # indirect dispatch sizes of the walk and resolve passes
        self._texture: Optional[moderngl.Texture] = None
        self.set_texture(texture)

    @property
    def image_size(self) -> Tuple[int, int]:
        return self.rasterizer.image_size

    def set_texture(self, texture: np.ndarray) -> None:
        """Use ``texture`` (see the module docstring) from the next call on."""
        image = texture_image(texture)
        height, width = image.shape[:2]
        if self._texture is None or self._texture.size != (width, height):
            self._texture = self.rasterizer.context.texture((width, height), 3, dtype="f1")
            self._texture.repeat_x = self._texture.repeat_y = False
            self._texture.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
        self._texture.write(image.tobytes(), alignment=1)
        self._texture.build_mipmaps(0, MAX_MIP_LEVEL)

    def __call__(self, verts: np.ndarray, cameras: PerspectiveCameras,
                 out: Optional[TexturedMaps] = None) -> TexturedMaps:
        """Render ``verts`` (B, V, 3) world positions seen by ``cameras`` (B, or 1 for all).

        ``out``: maps of at least B frames to render into (their first B frames are
        overwritten and returned)."""
        B = np.shape(verts)[0]
        if out is None:
            maps = TexturedMaps.empty(B, self.image_size)
        elif len(out.depth) < B or out.depth.shape[1:] != self.image_size:
            raise ValueError(f"out holds {out.depth.shape} maps; {B} frames of {self.image_size} needed")
        else:
            maps = out.select(slice(0, B))
        self._texture.use(location=TEXTURE_UNIT)
        for raster_pass in self.rasterizer.passes(verts, cameras, TEXTURED_PROGRAM, storage=self._uv_buffer):
            frames = slice(raster_pass.start, raster_pass.stop)
            self.shader(raster_pass, maps)
            raster_pass.read_into("colour", maps.colour[frames])
            np.copyto(maps.alpha[frames], maps.mask[frames])
            self._antialias(raster_pass, maps)
            self._texture.use(location=TEXTURE_UNIT)
        return maps

    def _antialias(self, raster_pass: RasterPass, maps: TexturedMaps) -> None:
        """Anti-alias the drawn frames of ``raster_pass`` (module docstring) and write the
        contour pixels' colour and coverage into ``maps``."""
        ctx = self.rasterizer.context
        names = [t.name for t in TEXTURED_PROGRAM.targets]
        attachments = raster_pass.framebuffer.color_attachments
        attachments[names.index("colour")].use(location=COLOUR_UNIT)
        attachments[names.index("planar_depth")].use(location=DEPTH_UNIT)
        for binding, buffer in ((BIND_EDGES, self._edge_buffer), (BIND_KEYS, self._keys), (BIND_BAND, self._band),
                                (BIND_SEGMENTS, self._segments), (BIND_FACE_SIGNS, self._face_signs)):
            buffer.bind_to_storage_buffer(binding)
        self._dispatch.bind_to_storage_buffer(BIND_DISPATCH)
        self._band.write(b"\0\0\0\0")
        self._segments.write(b"\0\0\0\0")
        # no waiting between the passes: each list's length sizes the next dispatch on the GPU
        self._sign_cs.run(-(-self.rasterizer.num_faces // 64), raster_pass.num_frames)
        ctx.memory_barrier()
        self._find_cs.run(-(-self._num_edges // 64), raster_pass.num_frames)
        ctx.memory_barrier()
        self._dispatch_cs["list"].value = 0
        self._dispatch_cs.run(1)
        ctx.memory_barrier()
        self._walk_cs.run_indirect(self._dispatch, offset=0)
        ctx.memory_barrier()
        self._dispatch_cs["list"].value = 1
        self._dispatch_cs.run(1)
        ctx.memory_barrier()
        self._resolve_cs.run_indirect(self._dispatch, offset=16)
        ctx.memory_barrier()
        count = int(np.frombuffer(self._band.read(4), np.uint32)[0])
        if count == 0:
            return
        band = np.frombuffer(self._band.read(8 * count, offset=4), np.uint32).reshape(count, 2)
        H, W = self.image_size
        frame, within = np.divmod(band[:, 0].astype(np.int64), H * W)
        row, col = np.divmod(within, W)
        rgba = np.ascontiguousarray(band[:, 1]).view(np.uint8).reshape(count, 4)
        frame += raster_pass.start
        maps.colour[frame, row, col] = rgba[:, :3]
        maps.alpha[frame, row, col] = rgba[:, 3]
