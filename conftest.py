# Root conftest: makes the repository root importable (nn, ui) when running plain `pytest`.
