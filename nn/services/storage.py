"""Where saved models live: one rule for the command line and the dashboard."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["MODELS_DIR_ENV", "REPO_DIR", "models_dir", "resolve_model_path"]

MODELS_DIR_ENV = "NN_MODELS_DIR"
REPO_DIR = Path(__file__).resolve().parents[2]


def models_dir(override: str | os.PathLike | None = None, *, create: bool = False) -> Path:
    """``override``, else ``$NN_MODELS_DIR``, else ``saved_models/`` in the repository; read at
    call time. ``create`` makes the folder if it is missing (a failure is left to the caller's
    first write)."""
    if override:
        folder = Path(override).expanduser()
    else:
        value = os.environ.get(MODELS_DIR_ENV, "").strip()
        folder = Path(value).expanduser() if value else REPO_DIR / "saved_models"
    if create:
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
    return folder


def resolve_model_path(spec: str, folder: str | os.PathLike | None = None) -> Path:
    """A model file from a path or a saved model's name; ``FileNotFoundError`` if neither."""
    from nn.io.model_files import SUPPORTED_FORMATS, model_path

    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise IsADirectoryError(f"{spec}: is a folder, not a model file")
    folder = models_dir(folder)
    try:
        for ext in SUPPORTED_FORMATS:
            candidate = model_path(folder, spec, ext[1:])
            if candidate.is_file():
                return candidate
    except ValueError:  # not a valid model name: it was meant as a path
        pass
    raise FileNotFoundError(
        f"{spec}: no such model file, and no saved model of that name in {folder}"
    )
