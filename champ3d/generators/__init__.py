"""Video generators: a guidance folder and a reference image in, a video out.

* :mod:`champ3d.generators.champ`: Champ's diffusion generator (``generate_video``), loading
  Champ's checkpoints from a local weights folder.
"""
