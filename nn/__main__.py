"""``python -m nn``: see :mod:`nn.cli`."""

from nn.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
