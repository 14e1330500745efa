"""The one-line syntax of a layer stack, and its compact rendering.

``parse_layers("conv32k3,relu,pool2,conv64k3,relu,pool2,flatten,dense128,relu,dropout0.3")``
gives the list of layer dicts ``NeuralNetwork(layers=...)`` takes. Each comma-separated token
matches one pattern of ``TOKENS`` (a registry: pattern, the dict it builds, an example):

    conv32k3  conv32k5s2same  conv16k5valid   conv2d: filters, kernel, stride, padding
    pool2  pool3s2  maxpool2  avgpool2         max or average pooling: size, stride
    dense128                                   dense: units
    dropout0.3                                 dropout: rate
    bn  batchnorm                              batch normalisation
    flatten  relu  sigmoid  tanh  lrelu  lrelu0.1  leaky_relu

``compact(stack)`` renders a stack back in short form for tables, e.g.
``C32k3-P2-C64k3-P2-D128-D10``
(activations, flatten and dropout left out).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nn.core.bounded_json import loads, read_json_file
from nn.core.limits import MAX_LAYERS

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_DIGITS = re.compile(r"[0-9]{1,9}")


def _conv(m: re.Match) -> dict:
    spec = {"type": "conv2d", "filters": int(m["filters"]), "kernel": int(m["kernel"])}
    if m["stride"]:
        spec["stride"] = int(m["stride"])
    if m["padding"]:
        spec["padding"] = m["padding"]
    return spec


def _pool(kind: str) -> Callable[[re.Match], dict]:
    def build(m: re.Match) -> dict:
        spec = {"type": kind, "size": int(m["size"])}
        if m["stride"]:
            spec["stride"] = int(m["stride"])
        return spec

    return build


def _leaky(m: re.Match) -> dict:
    spec: dict[str, Any] = {"type": "leaky_relu"}
    if m["slope"]:
        spec["slope"] = float(m["slope"])
    return spec


TOKENS: tuple[tuple[re.Pattern, Callable[[re.Match], dict], str], ...] = tuple(
    (re.compile(pattern, re.ASCII), build, example)
    for pattern, build, example in (
        (
            r"conv(?P<filters>\d{1,9})k(?P<kernel>\d{1,9})(?:s(?P<stride>\d{1,9}))?(?P<padding>same|valid)?",
            _conv,
            "conv32k3, conv32k5s2same",
        ),
        (
            r"(?:max)?pool(?P<size>\d{1,9})(?:s(?P<stride>\d{1,9}))?",
            _pool("maxpool"),
            "pool2, pool3s2",
        ),
        (r"avgpool(?P<size>\d{1,9})(?:s(?P<stride>\d{1,9}))?", _pool("avgpool"), "avgpool2"),
        (
            r"dense(?P<units>\d{1,9})",
            lambda m: {"type": "dense", "units": int(m["units"])},
            "dense128",
        ),
        (
            rf"dropout(?P<rate>{_NUMBER})",
            lambda m: {"type": "dropout", "rate": float(m["rate"])},
            "dropout0.3",
        ),
        (r"bn|batchnorm", lambda m: {"type": "batchnorm"}, "bn"),
        (r"flatten", lambda m: {"type": "flatten"}, "flatten"),
        (r"relu|sigmoid|tanh", lambda m: {"type": m[0]}, "relu, sigmoid, tanh"),
        (rf"(?:lrelu|leaky_relu)(?P<slope>{_NUMBER})?", _leaky, "lrelu, lrelu0.1"),
    )
)


def parse_token(token: str) -> dict:
    """The layer dict of one token; ``ValueError`` listing the forms allowed."""
    text = token.strip().lower()
    for pattern, build, _ in TOKENS:
        match = pattern.fullmatch(text)
        if match:
            return build(match)
    examples = "; ".join(example for _, _, example in TOKENS)
    raise ValueError(f"{_shown(token.strip())} is not a layer; write one of: {examples}")


def _shown(text: str, limit: int = 60) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def parse_layers(text: str, *, files: bool = True) -> list[dict]:
    """A stack from its one-line syntax, from a JSON list of layer dicts, or (``files``: the
    command line, never the dashboard) from a JSON file holding one. At most
    :data:`~nn.core.limits.MAX_LAYERS` layers; every layer's ``type`` a string."""
    text = str(text).strip()
    if text.startswith("["):
        return checked_stack(loads(text, "the stack"), "the stack")
    if files and (text.endswith(".json") or _is_file(text)):
        return checked_stack(read_json_file(text, f"the stack file {text}"), text)
    if not text:
        raise ValueError("the stack is empty: give layers such as conv32k3,relu,pool2,dense128")
    tokens = text.split(",")
    if len(tokens) > MAX_LAYERS:
        raise ValueError(f"the stack has {len(tokens):,} layers; at most {MAX_LAYERS} are allowed")
    stack = []
    for position, token in enumerate(tokens, start=1):
        try:
            stack.append(parse_token(token))
        except ValueError as exc:
            raise ValueError(f"layer {position} of {_shown(text)}: {exc}") from None
    return stack


def _is_file(text: str) -> bool:
    """Whether ``text`` names a regular file (False for what no file can be named, e.g. a
    line longer than a file name may be)."""
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def checked_stack(stack: Any, where: str) -> list[dict]:
    """``stack`` when it is a list of at most MAX_LAYERS dicts, each with a string ``type``."""
    if not isinstance(stack, list) or not all(isinstance(s, dict) for s in stack):
        raise ValueError(f"{where} must be a JSON list of layer dicts such as {{'type': 'relu'}}")
    if len(stack) > MAX_LAYERS:
        raise ValueError(f"{where}: {len(stack):,} layers; at most {MAX_LAYERS} are allowed")
    for position, spec in enumerate(stack, start=1):
        if not isinstance(spec.get("type"), str):
            raise ValueError(
                f'{where}: layer {position}\'s "type" is {_shown(str(spec.get("type")))}; '
                'give a layer kind as text, e.g. "dense" or "relu"'
            )
    return stack


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


_COMPACT: dict[str, Callable[[dict], str]] = {
    "conv2d": lambda s: (
        f"C{s['filters']}k{s.get('kernel', 3)}"
        + (f"s{s['stride']}" if s.get("stride", 1) != 1 else "")
        + ("same" if s.get("padding") == "same" else "")
    ),
    "maxpool": lambda s: (
        f"P{s.get('size', 2)}"
        + (f"s{s['stride']}" if s.get("stride") not in (None, s.get("size", 2)) else "")
    ),
    "avgpool": lambda s: (
        f"A{s.get('size', 2)}"
        + (f"s{s['stride']}" if s.get("stride") not in (None, s.get("size", 2)) else "")
    ),
    "dense": lambda s: f"D{s['units']}",
    "batchnorm": lambda s: "BN",
}


def compact(stack: Sequence[dict]) -> str:
    """A stack in short form, e.g. ``C32k3-P2-C64k3-P2-D128-D10``: convolutions, pooling,
    batch norm and dense layers; activations, flatten and dropout left out."""
    parts = [
        _COMPACT[s["type"]](s) for s in stack if isinstance(s, dict) and s.get("type") in _COMPACT
    ]
    return "-".join(parts)


def _stride_suffix(spec: dict, default: int) -> str:
    stride = spec.get("stride")
    return f"s{stride}" if stride not in (None, default) else ""


_TOKEN: dict[str, Callable[[dict], str]] = {
    "conv2d": lambda s: (
        f"conv{s['filters']}k{s.get('kernel', 3)}{_stride_suffix(s, 1)}"
        + ("same" if s.get("padding") == "same" else "")
    ),
    "maxpool": lambda s: f"pool{s.get('size', 2)}{_stride_suffix(s, s.get('size', 2))}",
    "avgpool": lambda s: f"avgpool{s.get('size', 2)}{_stride_suffix(s, s.get('size', 2))}",
    "dense": lambda s: f"dense{s['units']}",
    "dropout": lambda s: f"dropout{_number(s.get('rate', 0.5))}",
    "batchnorm": lambda s: "bn",
    "leaky_relu": lambda s: "lrelu" + (_number(s["slope"]) if "slope" in s else ""),
}


def token(spec: dict) -> str:
    """One layer in the one-line syntax (``parse_token`` reads it back; batch norm's momentum
    and epsilon are not written)."""
    kind = spec.get("type")
    return _TOKEN[kind](spec) if kind in _TOKEN else str(kind)


def to_line(stack: Sequence[dict]) -> str:
    """A stack in the one-line syntax, e.g. ``conv32k3,relu,pool2,flatten,dense128``."""
    return ",".join(token(s) for s in stack)


def parse_shape(text: str) -> list[int]:
    """``28x28x1`` or ``28,28,1`` as ``[28, 28, 1]``."""
    parts = re.split(r"[x,\s]+", str(text).strip().lower())
    shape = [int(p) for p in parts if p] if all(_DIGITS.fullmatch(p) for p in parts if p) else []
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"{text!r} is not an image shape: write HEIGHTxWIDTHxCHANNELS, e.g. 28x28x1"
        )
    return shape
