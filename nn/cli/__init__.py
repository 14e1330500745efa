"""Command line ``python -m nn``: :mod:`nn.cli.main` builds the parser, one module per command."""
