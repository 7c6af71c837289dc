"""Build the Anny body model's data cache once (``python -m champ3d.body.cache``).

Anny parses its MakeHuman assets on first use (about 2 minutes, ~800 MB written to
``$ANNY_CACHE_DIR``, default ``~/.cache/anny``); later constructions load the cache in
about a second. The set-up script runs this so that no test or job pays for it.
"""
from __future__ import annotations

import time


def main() -> None:
    start = time.perf_counter()
    from champ3d.body.anny_body import AnnyBody

    AnnyBody()
    print(f"[setup] body model ready ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
