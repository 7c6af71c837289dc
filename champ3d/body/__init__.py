"""Body models: one interface (:mod:`champ3d.body.base`), several backends.

* ``anny`` (default): :class:`champ3d.body.anny_body.AnnyBody`, licence-free and bundled;
* ``smplx``: :class:`champ3d.body.smplx_body.SmplxBody`, SMPL-X or SMPL from licensed model
  files the user brings (needs the ``smplx`` extra).

:func:`make_body` builds one by name; backends are imported only when asked for.
"""
from __future__ import annotations

from champ3d.body.base import BodyModel

BODY_BACKENDS = ("anny", "smplx")


def make_body(name: str = "anny", **options) -> BodyModel:
    """The body model ``name`` (one of :data:`BODY_BACKENDS`), built with ``options``.

    ``anny`` takes no options; ``smplx`` takes :class:`~champ3d.body.smplx_body.SmplxBody`'s
    (``model_path`` required, ``model_type``, ``gender``, ``num_betas``, ``uv_obj``).
    """
    if name == "anny":
        if options:
            raise ValueError(f"the anny body takes no options, got {sorted(options)}")
        from champ3d.body.anny_body import AnnyBody

        return AnnyBody()
    if name == "smplx":
        from champ3d.body.smplx_body import SmplxBody

        return SmplxBody(**options)
    raise ValueError(f"unknown body backend {name!r}; choose one of {', '.join(BODY_BACKENDS)}")
