"""Headless rendering of posed meshes (OpenGL 4.3 over EGL: Mesa llvmpipe on CPU, or a GPU).

Modules, pytorch3d-style:

* :mod:`render.cameras`: batched pinhole cameras; owns champ3d's camera and pixel conventions;
* :mod:`render.context`: the process-wide headless OpenGL context;
* :mod:`render.rasterizer`: :class:`~render.rasterizer.MeshRasterizer` draws batches of
  posed meshes and returns per-pixel :class:`~render.rasterizer.Fragments`;
* :mod:`render.shaders`: Champ's depth / normal / semantic / mask encodings;
* :mod:`render.renderer`: :class:`~render.renderer.ChampMapRenderer`, rasteriser + shader;
* :mod:`render.palette`: the 24 body parts and the semantic palette;
* :mod:`render.skeleton`: DWPose / OpenPose skeleton drawing and keypoint orders.
"""
