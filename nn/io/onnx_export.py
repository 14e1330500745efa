"""ONNX export of a fitted network, built with the ``onnx`` package (an optional extra).

The graph has one input, ``pixels`` float32 ``(n, 784)`` in [0, 1] with a free batch dimension,
and one output, ``probabilities`` float32 ``(n, n_classes)`` (Softmax over axis 1). Dense layers
are ``Gemm`` nodes with the engine's ``(fan_in, fan_out)`` weights. A convolutional network
reshapes the input to the engine's channels-last ``(n, 28, 28, 1)`` and transposes it to ONNX's
NCHW; ``Conv`` gets the weights transposed from ``(k, k, c_in, filters)`` to
``(filters, c_in, k, k)`` and explicit pads (the engine's 'same' puts an odd extra pixel after);
before ``Flatten`` the activations go back to NHWC, so the flattened order is the engine's.
Batch normalisation is ``BatchNormalization`` with the running statistics (inference mode).

The IR version and opset are fixed (:data:`IR_VERSION`, :data:`OPSET`), so that the file reads
in every runtime that supports that opset, whatever ``onnx`` version wrote it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nn.io.plan import InferencePlan, MissingExportExtraError, Step, inference_plan

__all__ = ["IR_VERSION", "OPSET", "INPUT_NAME", "OUTPUT_NAME", "onnx_model", "onnx_bytes"]

IR_VERSION = 8
OPSET = 17
INPUT_NAME = "pixels"
OUTPUT_NAME = "probabilities"
_NCHW_FROM_NHWC = [0, 3, 1, 2]
_NHWC_FROM_NCHW = [0, 2, 3, 1]


def _import_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as exc:
        raise MissingExportExtraError("ONNX export") from exc
    return onnx, helper, numpy_helper


class _GraphBuilder:
    """Appends nodes and initializers; ``current`` names the tensor the next step reads."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list = []
        self.initializers: list = []
        self.current = INPUT_NAME
        self.channels_first = False  # whether ``current`` is a 4-D NCHW tensor
        self._count = 0

    def name(self, base: str) -> str:
        self._count += 1
        return f"{base}_{self._count}"

    def constant(self, base: str, array: np.ndarray) -> str:
        name = self.name(base)
        self.initializers.append(self.numpy_helper.from_array(array, name=name))
        return name

    def node(self, op: str, extra_inputs: list[str] = (), output: str | None = None, **attrs):
        output = output or self.name(op.lower())
        self.nodes.append(
            self.helper.make_node(
                op, [self.current, *extra_inputs], [output], name=self.name(f"{op}_node"), **attrs
            )
        )
        self.current = output
        return output


def _add_dense(g: _GraphBuilder, step: Step) -> None:
    weight = g.constant("dense_weight", step.arrays["weight"])
    bias = g.constant("dense_bias", step.arrays["bias"])
    g.node("Gemm", [weight, bias])


def _add_activation(g: _GraphBuilder, step: Step) -> None:
    name = step.attrs["name"]
    if name == "sigmoid":
        g.node("Sigmoid")
    elif name == "tanh":
        g.node("Tanh")
    elif name == "relu":
        g.node("Relu")
    else:
        g.node("LeakyRelu", alpha=float(step.attrs["slope"]))


def _add_reshape(g: _GraphBuilder, step: Step) -> None:
    shape = g.constant("shape", np.array([-1, *step.attrs["shape"]], dtype=np.int64))
    g.node("Reshape", [shape])
    g.node("Transpose", perm=_NCHW_FROM_NHWC)
    g.channels_first = True


def _add_conv(g: _GraphBuilder, step: Step) -> None:
    weight = np.ascontiguousarray(step.arrays["weight"].transpose(3, 2, 0, 1))
    k = int(weight.shape[2])
    top, bottom, left, right = (int(p) for p in step.attrs["pads"])
    inputs = [g.constant("conv_weight", weight), g.constant("conv_bias", step.arrays["bias"])]
    stride = int(step.attrs["stride"])
    g.node(
        "Conv",
        inputs,
        kernel_shape=[k, k],
        strides=[stride, stride],
        pads=[top, left, bottom, right],
    )


def _add_pool(g: _GraphBuilder, step: Step) -> None:
    size, stride = int(step.attrs["size"]), int(step.attrs["stride"])
    op = "MaxPool" if step.attrs["mode"] == "max" else "AveragePool"
    g.node(op, kernel_shape=[size, size], strides=[stride, stride])


def _add_batchnorm(g: _GraphBuilder, step: Step) -> None:
    inputs = [g.constant(f"bn_{k}", step.arrays[k]) for k in ("gamma", "beta", "mean", "var")]
    g.node("BatchNormalization", inputs, epsilon=float(step.attrs["epsilon"]))


def _add_flatten(g: _GraphBuilder, step: Step) -> None:
    if g.channels_first:  # back to the engine's channels-last order before flattening
        g.node("Transpose", perm=_NHWC_FROM_NCHW)
        g.channels_first = False
    g.node("Flatten", axis=1)


_ADDERS = {
    "dense": _add_dense,
    "activation": _add_activation,
    "reshape": _add_reshape,
    "conv2d": _add_conv,
    "pool": _add_pool,
    "batchnorm": _add_batchnorm,
    "flatten": _add_flatten,
}


def plan_to_onnx(plan: InferencePlan, *, name: str = "nn-digit-reader") -> Any:
    """An ``onnx.ModelProto`` computing ``plan`` followed by Softmax; checked by onnx.checker."""
    onnx, helper, numpy_helper = _import_onnx()
    g = _GraphBuilder(helper, numpy_helper)
    for step in plan.steps:
        _ADDERS[step.kind](g, step)
    g.node("Softmax", output=OUTPUT_NAME, axis=1)
    n_classes = len(plan.classes)
    graph = helper.make_graph(
        g.nodes,
        name,
        [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, ["n", plan.n_features])],
        [helper.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT, ["n", n_classes])],
        initializer=g.initializers,
        doc_string=plan.contract,
    )
    model = helper.make_model(
        graph,
        ir_version=IR_VERSION,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="nn (NumPy MNIST dashboard)",
        doc_string=plan.contract,
    )
    helper.set_model_props(
        model, {"classes": ",".join(str(c) for c in plan.classes), "input_contract": plan.contract}
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def onnx_model(model: Any, *, name: str | None = None) -> Any:
    """The fitted ``model`` as an ``onnx.ModelProto``.

    Raises :class:`~nn.io.plan.MissingExportExtraError` without the ``onnx`` package and
    :class:`~nn.io.plan.ExportError` for a model that cannot be exported.
    """
    _import_onnx()  # the missing extra is reported before any work
    return plan_to_onnx(inference_plan(model), name=name or "nn-digit-reader")


def onnx_bytes(model: Any, *, name: str | None = None) -> bytes:
    """The serialised ONNX file of ``model``."""
    return onnx_model(model, name=name).SerializeToString()
