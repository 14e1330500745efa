"""The maths: activations, losses, initializers, optimizers, schedules, BLAS calls, metrics, and the
estimator built on them. Imports nothing outside NumPy and this package."""
