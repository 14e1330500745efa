"""The command line, ``python -m nn``: one module per command group."""
