"""champ3d: explicit-3D human animation (body fitting, Champ guidance, texture, generation, evaluation)."""
from pathlib import Path

__version__ = "0.1.0"

# The checkout's configs/ folder (protocols, generator and training settings, job examples).
# champ3d is installed in editable mode from its checkout, so this folder travels with the code.
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
