"""Model files: the versioned ``.npz`` format, ``.pkl`` import and export through a restricted
unpickler, and the models folder."""
