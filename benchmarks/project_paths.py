"""Put the project's other script folders on ``sys.path`` for the measurement scripts.

The scripts here run as ``python benchmarks/<script>.py`` and use the building blocks the
product itself is made of — ``build/`` (checkpoints, export, launcher), ``docker/`` (server
flags) and the models' own packages — by module name, as the tests do through pytest's
``pythonpath``. Importing this module first is all a script needs.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
FOLDERS = (
    PROJECT / "build",
    PROJECT / "docker",
    PROJECT / "model_repository" / "distilbert_classifier" / "1",
    PROJECT / "model_repository" / "distilbert_text" / "1",
)
for folder in FOLDERS:
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
