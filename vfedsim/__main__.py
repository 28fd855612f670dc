"""``python -m vfedsim``: the same command as the ``vfedsim`` console script (see vfedsim/cli.py)."""
from __future__ import annotations

if __name__ == "__main__":  # guarded: worker processes of `sweep --jobs` import the main module
    from .cli import main

    raise SystemExit(main())
