"""UV textures of the body: bake photos into the atlas, fuse views, fill what was not seen.

Modules:

* :mod:`texture.atlas`: :class:`~texture.atlas.UVAtlas`, the body's UV layout rasterised
  into texels (texel <-> surface point, islands, mirror and front maps); owns the texture
  conventions (texel <-> uv, value ranges);
* :mod:`texture.sampling`: bilinear lookups in images and textures;
* :mod:`texture.geometry`: vertex normals and rasterised views of a mesh;
* :mod:`texture.bake`: one photo -> a partial :class:`~texture.bake.TextureSample`;
* :mod:`texture.fusion`: several partial textures -> one;
* :mod:`texture.infill`: a partial texture -> a complete uint8 texture, without weights;
* :mod:`texture.learned_infill`: the same with a user-supplied diffusion inpainting model;
* :mod:`texture.preview`: textured renders and their comparison with photos.
"""
