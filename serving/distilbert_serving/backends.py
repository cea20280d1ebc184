"""The two Triton backends this package provides, installed into a server's backend directory.

    python -m distilbert_serving.backends /opt/tritonserver/backends

Each is a Python-based backend (Triton's way of sharing one ``model.py`` across models, as its vLLM
backend does): a folder ``<backend directory>/<name>/`` whose ``model.py`` imports the model class
from this installed package. A model's ``config.pbtxt`` names its backend (``backend: "distilbert"``),
so a model folder holds configuration and a checkpoint only, never code; Triton runs the model with
its Python backend's stub, whose interpreter must have this package installed.

    distilbert        the token model (``token_model.model``): token ids in, logits and scores out
    distilbert_text   the text model (``text_model.model``): strings in, tokenized and sent to a token model
"""

from __future__ import annotations

import argparse
from pathlib import Path

TOKEN_BACKEND = "distilbert"
TEXT_BACKEND = "distilbert_text"
MODULES = {TOKEN_BACKEND: "distilbert_serving.token_model.model", TEXT_BACKEND: "distilbert_serving.text_model.model"}


def install(backend_directory: Path) -> list[Path]:
    """Write each backend's ``model.py`` under ``backend_directory``; the files written."""
    written = []
    for name, module in MODULES.items():
        folder = Path(backend_directory) / name
        folder.mkdir(parents=True, exist_ok=True)
        text = f'"""Triton backend {name!r}: the model class of the installed package."""\n\n'
        text += f"from {module} import TritonPythonModel  # noqa: F401\n"
        (folder / "model.py").write_text(text)
        written.append(folder / "model.py")
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("backend_directory", type=Path, help="the server's --backend-directory")
    for path in install(parser.parse_args(argv).backend_directory):
        print(path)


if __name__ == "__main__":
    main()
