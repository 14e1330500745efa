"""Optimizers, separate from the model, each keeping its state per parameter.

``step(params, grads, lr)`` updates the parameter arrays in place; state arrays are allocated on the
first step and reused, so a step allocates only small temporaries. ``state_dict`` and
``load_state_dict`` let training continue exactly where it stopped (and be saved with the model).
"""

from __future__ import annotations

from typing import Any

import numpy as np


CHUNK = 65536  # elements updated per pass: the temporaries of one chunk stay in the L2 cache


class Optimizer:
    """Base class. Subclasses name their per-parameter state ``slots`` and implement
    ``_update(p, g, state, tmp, coef)`` on one flat chunk, in place; ``_coefficients(lr)`` gives
    the scalars of this step (after ``t`` was incremented)."""

    name = ""
    slots: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.t = 0  # number of steps taken
        self.state: dict[str, list[np.ndarray]] = {}
        self._tmp: np.ndarray | None = None

    def _init_state(self, params: list[np.ndarray]) -> None:
        if not self.state:
            self.state = {s: [np.zeros_like(p) for p in params] for s in self.slots}
        if self._tmp is None or self._tmp.dtype != params[0].dtype:
            self._tmp = np.empty(min(CHUNK, max(p.size for p in params)), params[0].dtype)

    def step(self, params: list[np.ndarray], grads: list[np.ndarray], lr: float) -> None:
        """One update of every parameter array, in place, chunk by chunk."""
        self._init_state(params)
        self.t += 1
        coef = self._coefficients(lr)
        for i, (p, g) in enumerate(zip(params, grads)):
            flat_p, flat_g = p.reshape(-1), g.reshape(-1)
            flat_s = [self.state[s][i].reshape(-1) for s in self.slots]
            for start in range(0, flat_p.size, CHUNK):
                part = slice(start, start + CHUNK)
                chunk = flat_p[part]
                self._update(chunk, flat_g[part], [s[part] for s in flat_s],
                             self._tmp[:chunk.size], coef)

    def _coefficients(self, lr: float) -> tuple:
        return (lr,)

    def _update(self, p, g, state, tmp, coef) -> None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able scalars, named arrays) for saving."""
        arrays = {f"{slot}.{i}": a for slot, lst in self.state.items() for i, a in enumerate(lst)}
        return {**self.get_config(), "t": self.t}, arrays

    def load_state_dict(self, scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.t = int(scalars.get("t", 0))
        state: dict[str, list[np.ndarray]] = {}
        for slot in self.slots:
            keys = sorted((k for k in arrays if k.startswith(slot + ".")),
                          key=lambda k: int(k.rsplit(".", 1)[1]))
            if keys:
                state[slot] = [np.array(arrays[k]) for k in keys]
        self.state = state if len(state) == len(self.slots) else {}


class SGD(Optimizer):
    name = "sgd"

    def _update(self, p, g, state, tmp, coef):
        np.multiply(g, coef[0], out=tmp)
        p -= tmp


class Momentum(Optimizer):
    """Classical momentum: v = mu*v - lr*g; w += v."""

    name = "momentum"
    slots = ("velocity",)

    def __init__(self, momentum: float = 0.9):
        super().__init__()
        self.momentum = momentum

    def _update(self, p, g, state, tmp, coef):
        (v,) = state
        v *= self.momentum
        np.multiply(g, coef[0], out=tmp)
        v -= tmp
        p += v

    def get_config(self):
        return {"name": self.name, "momentum": self.momentum}


class Nesterov(Momentum):
    """Nesterov momentum in the form used by Sutskever et al. and scikit-learn:
    v = mu*v - lr*g; w += mu*v - lr*g."""

    name = "nesterov"

    def _update(self, p, g, state, tmp, coef):
        (v,) = state
        np.multiply(g, coef[0], out=tmp)  # lr*g
        v *= self.momentum
        v -= tmp
        p -= tmp
        np.multiply(v, self.momentum, out=tmp)
        p += tmp


class RMSProp(Optimizer):
    """s = rho*s + (1-rho)*g^2; w -= lr * g / (sqrt(s) + eps)."""

    name = "rmsprop"
    slots = ("square_avg",)

    def __init__(self, rho: float = 0.9, epsilon: float = 1e-8):
        super().__init__()
        self.rho, self.epsilon = rho, epsilon

    def _update(self, p, g, state, tmp, coef):
        (s,) = state
        np.multiply(g, g, out=tmp)  # s += (1-rho)*(g^2 - s)
        tmp -= s
        tmp *= 1.0 - self.rho
        s += tmp
        np.sqrt(s, out=tmp)
        tmp += self.epsilon
        np.divide(g, tmp, out=tmp)
        tmp *= coef[0]
        p -= tmp

    def get_config(self):
        return {"name": self.name, "rho": self.rho, "epsilon": self.epsilon}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction and eps added to sqrt(v_hat), as in PyTorch.

    Written as ``w -= lr_t * m / (sqrt(v) + eps_t)`` with ``lr_t = lr*sqrt(1-b2^t)/(1-b1^t)`` and
    ``eps_t = eps*sqrt(1-b2^t)``, which is the same update with fewer passes over memory.
    """

    name = "adam"
    slots = ("m", "v")

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8):
        super().__init__()
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon

    def _coefficients(self, lr):
        root = np.sqrt(1.0 - self.beta2**self.t)
        return lr * root / (1.0 - self.beta1**self.t), self.epsilon * root

    def _update(self, p, g, state, tmp, coef):
        m, v = state
        lr_t, eps_t = coef
        np.subtract(g, m, out=tmp)  # m += (1-b1)*(g - m)
        tmp *= 1.0 - self.beta1
        m += tmp
        np.multiply(g, g, out=tmp)  # v += (1-b2)*(g^2 - v)
        tmp -= v
        tmp *= 1.0 - self.beta2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += eps_t
        np.divide(m, tmp, out=tmp)
        tmp *= lr_t
        p -= tmp

    def get_config(self):
        return {"name": self.name, "beta1": self.beta1, "beta2": self.beta2,
                "epsilon": self.epsilon}


OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Momentum, Nesterov, RMSProp, Adam)
}


def make_optimizer(name: str, **params: Any) -> Optimizer:
    """Build an optimizer by name, passing only the parameters it takes."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer={name!r} is not allowed: choose one of {', '.join(OPTIMIZERS)}.")
    cls = OPTIMIZERS[name]
    import inspect

    accepted = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in params.items() if k in accepted and k != "self"})
