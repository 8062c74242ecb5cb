"""What the benchmark scripts share for their PNG charts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def pyplot(script: str, png: str, payload: str, tool: str):
    """matplotlib's pyplot (Agg backend), or None when this interpreter has no matplotlib
    (a pyenv or venv python): then Debian's python3 with python3-matplotlib draws the
    chart, running `script --plot-from - --png PNG` with `payload` on its stdin."""
    try:
        import matplotlib
        import matplotlib.ticker  # noqa: F401 (the callers format axes with it)
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        system = "/usr/bin/python3"
        if Path(system).exists() and Path(sys.executable).resolve() != Path(system).resolve():
            subprocess.run([system, script, "--plot-from", "-", "--png", png],
                           input=payload.encode(), check=True)
        else:
            print(f"{tool}: no matplotlib (python3-matplotlib); no plot", file=sys.stderr)
        return None
