"""The process-wide headless OpenGL context.

One moderngl standalone context over EGL: Mesa's llvmpipe on a CPU-only machine, the
vendor's EGL driver (e.g. NVIDIA) where one is installed; the same code runs on both.
llvmpipe's rasteriser thread count is read from ``LP_NUM_THREADS`` when the context is
created (default: the number of CPUs).

The context is created on first use and reused for the life of the process. OpenGL
contexts are bound to a thread: use the renderer from the thread that first called it.
"""
from __future__ import annotations

import threading

import moderngl

_lock = threading.Lock()
_context: moderngl.Context | None = None

#: OpenGL 4.3 brings compute shaders and shader storage buffers, which the renderer uses.
REQUIRED_GL_VERSION = 430


def gl_context() -> moderngl.Context:
    """The shared standalone EGL context (created on first call)."""
    global _context
    with _lock:
        if _context is None:
            try:
                ctx = moderngl.create_standalone_context(backend="egl", require=REQUIRED_GL_VERSION)
            except Exception as error:  # moderngl raises plain Exception when EGL is unusable
                raise RuntimeError(
                    "cannot create a headless OpenGL 4.3 context over EGL; install the EGL and "
                    "Mesa drivers (Debian: libegl1 libegl-mesa0 libgl1-mesa-dri) or a GPU driver "
                    f"with EGL support ({error})"
                ) from error
            ctx.gc_mode = "auto"  # release OpenGL objects with their Python objects
            _context = ctx
        return _context


def renderer_name() -> str:
    """The OpenGL renderer string, e.g. ``llvmpipe (LLVM 15.0.6, 256 bits)``."""
    return gl_context().info["GL_RENDERER"]
