"""Optimizers, separate from the model, each keeping its state per parameter.

``step(params, grads, lr)`` updates the parameter arrays in place; state arrays are allocated on the
first step and reused, so a step allocates only small temporaries. ``state_dict`` and
``load_state_dict`` let training continue exactly where it stopped (and be saved with the model).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Optimizer:
    name = ""
    slots: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.t = 0  # number of steps taken
        self.state: dict[str, list[np.ndarray]] = {}

    def _init_state(self, params: list[np.ndarray]) -> None:
        if not self.state:
            self.state = {s: [np.zeros_like(p) for p in params] for s in self.slots}

    def step(self, params: list[np.ndarray], grads: list[np.ndarray], lr: float) -> None:
        self._init_state(params)
        self.t += 1
        for i, (p, g) in enumerate(zip(params, grads)):
            self._update(i, p, g, lr)

    def _update(self, i: int, p: np.ndarray, g: np.ndarray, lr: float) -> None:
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

    def _update(self, i, p, g, lr):
        p -= np.asarray(lr, dtype=p.dtype) * g


class Momentum(Optimizer):
    """Classical momentum: v = mu*v - lr*g; w += v."""

    name = "momentum"
    slots = ("velocity",)

    def __init__(self, momentum: float = 0.9):
        super().__init__()
        self.momentum = momentum

    def _update(self, i, p, g, lr):
        v = self.state["velocity"][i]
        v *= self.momentum
        v -= np.asarray(lr, dtype=p.dtype) * g
        p += v

    def get_config(self):
        return {"name": self.name, "momentum": self.momentum}


class Nesterov(Momentum):
    """Nesterov momentum in the form used by Sutskever et al. and scikit-learn:
    v = mu*v - lr*g; w += mu*v - lr*g."""

    name = "nesterov"

    def _update(self, i, p, g, lr):
        v = self.state["velocity"][i]
        step = np.asarray(lr, dtype=p.dtype) * g
        v *= self.momentum
        v -= step
        p += self.momentum * v
        p -= step


class RMSProp(Optimizer):
    """s = rho*s + (1-rho)*g^2; w -= lr * g / (sqrt(s) + eps)."""

    name = "rmsprop"
    slots = ("square_avg",)

    def __init__(self, rho: float = 0.9, epsilon: float = 1e-8):
        super().__init__()
        self.rho, self.epsilon = rho, epsilon

    def _update(self, i, p, g, lr):
        s = self.state["square_avg"][i]
        s *= self.rho
        s += (1.0 - self.rho) * (g * g)
        denom = np.sqrt(s)
        denom += self.epsilon
        p -= np.asarray(lr, dtype=p.dtype) * g / denom

    def get_config(self):
        return {"name": self.name, "rho": self.rho, "epsilon": self.epsilon}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, eps added to sqrt(v_hat) as in PyTorch."""

    name = "adam"
    slots = ("m", "v")

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8):
        super().__init__()
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self._tmp: list[np.ndarray] = []

    def step(self, params, grads, lr):
        if len(self._tmp) != len(params):
            self._tmp = [np.empty_like(p) for p in params]
        super().step(params, grads, lr)

    def _update(self, i, p, g, lr):
        m, v, tmp = self.state["m"][i], self.state["v"][i], self._tmp[i]
        b1, b2 = self.beta1, self.beta2
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - b2
        v += tmp
        # w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
        np.sqrt(v, out=tmp)
        tmp *= 1.0 / np.sqrt(1.0 - b2**self.t)
        tmp += self.epsilon
        np.divide(m, tmp, out=tmp)
        tmp *= lr / (1.0 - b1**self.t)
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
