"""Causal analysis of a detector's neurons (RQ4): average causal effect of each unit of one layer.

The study (Section IV-D) reads a detector as a structural causal model and, for every neuron ``i`` of the
analysis layer, intervenes ``do(h_i = v)`` for ``v`` on a grid over the neuron's observed range, keeps the
rest of the forward pass and averages the outcome over the sampled images. Neurons are ranked by the
size of that effect on each dataset, and the top-k sets of five datasets are compared (Figure 5).

Notation: ``h = head(x)`` is the analysis layer's output (N samples x D neurons); ``tail`` maps ``h`` to
P(fake). The grid of neuron ``i`` is ``v_ig = min_n h_ni + g (max_n h_ni - min_n h_ni) / (G - 1)``,
``g = 0..G-1`` (``np.linspace``, G = 4 in the study; ``--grid-range study_code`` takes the min and max
from another draw of images instead and clips them as the released ``causal_inference.py`` does, see
`study_code_range`), and

    m_ig = (1/N) sum_n  s( tail(h_n with h_ni := v_ig) )

with the per-sample outcome ``s`` chosen by ``measure``:

``"spread"`` (default; what the study's code computes, after CARE, Sun et al. 2022, ref. [56])
    ``s = tail(.)``, the fake probability; ``effect_i = max_g m_ig - min_g m_ig``.
``"correctness"`` (the paper's written Definition 3)
    ``ACE_do(y=v)^z = E[z | do(y = v)]`` with ``z = N_ac(x)``, "the predicted class corresponding to the
    ground-truth label": ``s = 1{(tail(.) > 0.5) == label}`` (`dfstudy.metrics.is_fake`), so ``m_ig``
    is the accuracy under the intervention. The paper does not say how the ACE curve over ``v`` becomes one number per neuron;
    we use the same range the code uses, ``effect_i = max_g m_ig - min_g m_ig``. Taking the ACE relative
    to a baseline (Chattopadhyay et al. 2019, ref. [46]: minus its mean over the grid; or minus the
    unintervened accuracy) shifts every ``m_ig`` of a neuron by one constant and leaves this range
    unchanged. The output also carries ``base`` (accuracy without intervention) and
    ``max_drop = base - min_g m_ig`` (the largest degradation the neuron can cause), for reading.

Two exact evaluation strategies, chosen automatically (``method="auto"``):

``"rank1"``
    When the tail is a run of per-unit elementwise layers ``e = u(h)`` (dropout - identity at inference -,
    BatchNormalization with moving statistics, activations) followed by a Dense layer (kernel W, bias b),
    ``do(h_i = v)`` changes only ``e_i`` (to ``u_i(v)``), so the Dense pre-activations move by a rank-1
    term: ``z_iv = z + (u_i(v) - e_i) W[i, :]``. All ``D x G x N`` interventions then cost one small
    multiply-add each plus the part of the tail after the Dense (LeakyReLU -> Dense(1) for MesoNet and
    MesoInception, the sigmoid alone for ShallowNet), instead of a full ``D``-wide tail forward. Blocks
    of neurons run as one compiled step (XLA) that also averages over the samples. This is the fast
    path; `bench/ace_speed.py` measures it against the loop.
``"batched"``
    Otherwise: tile ``h`` for a block of neurons and all grid values, overwrite column ``i`` with ``v``
    and run the tail on the whole block as one batch (chunked to bound memory).

`ace_loop` is the reference the study's code follows - one tail forward per neuron and grid value -,
kept for tests and the benchmark (`bench/ace_speed.py`).

Run ``python -m dfstudy.causal --help`` (per-detector effects) and ``python -m dfstudy.causal summarize
--help`` (top-k overlap tables and the Finding 4 verdict).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import re
import sys
import weakref
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dfstudy import device
from dfstudy.cli import run_subcommands, split_out_pairs
from dfstudy.metrics import is_fake
from dfstudy.models import registry
from dfstudy.study import PAPER, add_argument

log = logging.getLogger(__name__)


class _LazyKeras:
    """`keras`, imported on first use: `summarize` (tables, Finding 4) needs no deep-learning backend,
    and importing TensorFlow costs seconds per job."""

    def __getattr__(self, name):
        import keras as module

        return getattr(module, name)


keras = _LazyKeras()

__all__ = [
    "split_model",
    "features",
    "intervention_grid",
    "ace",
    "ace_from_features",
    "ace_loop",
    "ace_loop_from_features",
    "study_code_range",
    "permutation_baseline",
    "rank_neurons",
    "topk_overlap",
    "select_samples",
    "overlap_table",
    "finding4",
    "main",
]

MEASURES = ("spread", "correctness")
FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2)
DEFAULT_CHUNK = 1 << 24  # floats per batched tail evaluation (64 MB as float32)

_ELEMENTWISE_ACTIVATIONS = {
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "sigmoid", "hard_sigmoid", "tanh",
    "softplus", "softsign", "silu", "swish", "hard_silu", "hard_swish", "mish", "exponential",
}


# ---------------------------------------------------------------------------------------------------
# Splitting a model at the analysis layer
# ---------------------------------------------------------------------------------------------------

def _tail_chain(model, layer_name):
    """Layers (with their call kwargs) from `layer_name`'s output to the model output, and that tensor.

    Walks back from the output through single-input nodes; every path from the input to the output must
    pass through the analysis layer, otherwise intervening on it would not determine the output.
    """
    if len(model.outputs) != 1:
        raise ValueError(f"{model.name}: expected one output, got {len(model.outputs)}")
    layer = model.get_layer(layer_name)  # raises ValueError naming the layer if absent
    chain, tensor = [], model.outputs[0]
    while True:
        op, node_index, _ = tensor._keras_history
        if op is layer:
            return layer, tensor, chain[::-1]
        node = op._inbound_nodes[node_index]
        inputs = node.input_tensors
        if not inputs or isinstance(op, keras.layers.InputLayer):
            raise ValueError(f"{model.name}: layer {layer_name!r} is not on the path from the input to the output")
        if len(inputs) != 1:
            raise ValueError(
                f"{model.name}: the layers after {layer_name!r} do not form a chain: {op.name!r} takes "
                f"{len(inputs)} inputs ({', '.join(t._keras_history.operation.name for t in inputs)}); "
                "the analysis layer must separate the input from the output")
        kwargs = {k: v for k, v in node.arguments.kwargs.items() if k not in ("training", "mask")}
        chain.append((op, kwargs))
        tensor = inputs[0]


def split_model(model, layer_name):
    """Split a flat functional model at a layer.

    Parameters
    ----------
    model : keras.Model
        Functional model with one input and one output (P(fake)).
    layer_name : str
        The analysis layer (``dfstudy.models.causal_layer(arch)``).

    Returns
    -------
    head : keras.Model
        ``inputs -> layer output``.
    tail : keras.Model
        ``layer output -> model output``, re-applying (sharing the weights of) the layers after the
        analysis layer, which must form a chain. Call both with ``training=False`` (dropout off,
        BatchNormalization on its moving statistics), as every function here does.

    Raises
    ------
    ValueError
        If the layer is missing, not on the input-output path, or followed by a non-chain (a layer with
        several inputs, e.g. a skip connection around it).
    """
    layer, tensor, chain = _tail_chain(model, layer_name)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # a bare tensor, as callers pass one
    head = keras.Model(inputs, tensor, name=f"{model.name}_head")
    x = inputs = keras.Input(shape=tuple(tensor.shape[1:]), dtype=tensor.dtype, name=f"{layer_name}_in")
    for op, kwargs in chain:
        x = op(x, **kwargs)
    tail = keras.Model(inputs, x, name=f"{model.name}_tail")
    return head, tail


# ---------------------------------------------------------------------------------------------------
# Forward passes
# ---------------------------------------------------------------------------------------------------

def _call(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def _predict(model, x, rows):
    """Model output for `x` in chunks of `rows` (the backend's compiled predict step), as numpy (N, units)."""
    outs = [keras.ops.convert_to_numpy(model.predict_on_batch(x[s:s + rows])) for s in range(0, len(x), rows)]
    out = np.concatenate(outs) if outs else np.empty((0, 1), np.float32)
    return out.reshape(len(x), -1)


def features(model_or_head, images, layer_name=None, batch_size=64):
    """Analysis-layer activations ``h`` (N, *feature_shape) of `images` (uint8 or float, 0-255).

    Pass a head from `split_model`, or a detector and `layer_name`. Batches go through the backend's
    compiled predict step (``predict_on_batch``), which is several times faster than eager calls.
    """
    head = model_or_head if layer_name is None else split_model(model_or_head, layer_name)[0]
    outs = [keras.ops.convert_to_numpy(head.predict_on_batch(np.asarray(images[s:s + batch_size], np.float32)))
            for s in range(0, len(images), batch_size)]
    if not outs:
        raise ValueError("no images")
    return np.concatenate(outs).astype(np.float32, copy=False)


def intervention_grid(h, grid_size=4, value_range=None):
    """Grid values (G, D): `grid_size` values evenly spanning each neuron's range.

    The range is the neuron's observed [min, max] over the samples `h`, or `value_range` = (low, high),
    two (D,) arrays, when given (`study_code_range`).
    """
    if grid_size < 2:
        raise ValueError(f"grid_size must be >= 2, got {grid_size}")
    h = h.reshape(len(h), -1)
    if len(h) == 0:
        raise ValueError("no samples")
    low, high = (h.min(0), h.max(0)) if value_range is None else (np.ravel(value_range[0]), np.ravel(value_range[1]))
    if low.shape != (h.shape[1],) or high.shape != (h.shape[1],):
        raise ValueError(f"value_range must hold two arrays of {h.shape[1]} values")
    return np.linspace(low, high, grid_size).astype(np.float32)


def study_code_range(h_range):
    """Each neuron's grid range as the released ``causal_inference.py`` takes it.

    Parameters
    ----------
    h_range : ndarray (M, ...)
        Analysis-layer activations of *other* images than those the effect is averaged over (the study's
        code took them from other batches of the same shuffled test folder).

    Returns
    -------
    (low, high) : two (D,) arrays
        ``min(observed min, 1)`` and ``max(observed max, 0)``: the code clips the low end to at most 1 and
        the high end to at least 0.
    """
    h_range = np.asarray(h_range, np.float32).reshape(len(h_range), -1)
    return np.minimum(h_range.min(0), 1), np.maximum(h_range.max(0), 0)


# ---------------------------------------------------------------------------------------------------
# Outcome statistics of the loop and the batched path (the rank-1 block reduces inside its compiled step)
# ---------------------------------------------------------------------------------------------------

def _outcome(out, measure, labels):
    """Per-sample outcome s: the fake probability or the correctness indicator (last axis = samples)."""
    if measure == "spread":
        return out
    return (is_fake(out) == (labels == 1)).astype(np.float32)


def _mean_over_samples(s):
    return s.astype(np.float64).mean(axis=-1)


def _check_measure(measure, labels, n):
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    if measure == "correctness":
        if labels is None:
            raise ValueError("measure='correctness' needs labels (1 = fake, 0 = real)")
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != n:
            raise ValueError(f"{len(labels)} labels for {n} samples")
        return labels.astype(np.int64)
    return None if labels is None else np.asarray(labels).reshape(-1).astype(np.int64)


def _result_frame(m, neurons, grid, measure, base):
    """Effects per neuron from the interventional means m (len(neurons), G)."""
    lo, hi = m.min(axis=1), m.max(axis=1)
    df = pd.DataFrame({
        "neuron": np.asarray(neurons, dtype=np.int64),
        "effect": hi - lo,
        "h_min": grid[0, neurons].astype(np.float64),
        "h_max": grid[-1, neurons].astype(np.float64),
        "m_min": lo,
        "m_max": hi,
        "base": base,
    })
    if measure == "correctness":
        df["max_drop"] = base - lo
    for g in range(m.shape[1]):
        df[f"m{g}"] = m[:, g]
    df.attrs.update(measure=measure, grid_size=int(m.shape[1]))
    return df


# ---------------------------------------------------------------------------------------------------
# The fast path: rank-1 update of the first Dense layer's pre-activations
# ---------------------------------------------------------------------------------------------------

@dataclass
class _Rank1Plan:
    prefix: object  # keras.Model (N, D) -> (N, D), per-unit elementwise; None if the Dense comes first
    dense: object  # the first Dense layer; its weights are read at every call, never cached
    rest: list  # layers from the Dense's pre-activations to the output: its activation, then the chain
    evaluators: dict  # (n_samples, n_neurons, grid_size, block, measure) -> (compiled model, its block layer)


# Plans are cached per tail so that repeated calls (one per dataset) reuse the compiled block model.
_PLANS = weakref.WeakKeyDictionary()


@functools.cache
def _elementwise_types():
    """Layers that act unit by unit on a (N, D) input at inference time: intervening on h_i can only
    change unit i of their output. Dropout-style layers are the identity at inference."""
    lay = keras.layers
    return (lay.Dropout, lay.AlphaDropout, lay.GaussianDropout, lay.GaussianNoise, lay.ActivityRegularization,
            lay.Identity, lay.ReLU, lay.LeakyReLU, lay.ELU, lay.PReLU, lay.Rescaling)


def _is_elementwise(layer):
    if isinstance(layer, _elementwise_types()):
        return True
    if isinstance(layer, keras.layers.Flatten):  # on a (N, D) input: the identity
        return True
    if isinstance(layer, keras.layers.BatchNormalization):
        return layer.axis in (-1, 1)
    if isinstance(layer, keras.layers.Activation):
        return _activation_name(layer.activation) in _ELEMENTWISE_ACTIVATIONS
    return False


def _activation_name(fn):
    try:
        name = keras.activations.serialize(fn)
    except Exception:  # an unregistered custom activation: not known to be elementwise
        return None
    if isinstance(name, dict):
        name = name.get("config", name.get("class_name"))
    return name if isinstance(name, str) else None


def _rank1_plan(tail):
    """A `_Rank1Plan` for a chain tail with 2-D input, or None when the fast path does not apply."""
    if tail in _PLANS:
        return _PLANS[tail]
    plan = _build_rank1_plan(tail)
    _PLANS[tail] = plan
    return plan


def _build_rank1_plan(tail):
    inp = tail.inputs[0]
    if len(inp.shape) != 2:
        return None
    chain = [layer for layer in tail.layers if not isinstance(layer, keras.layers.InputLayer)]
    j = 0
    while j < len(chain) and _is_elementwise(chain[j]):
        j += 1
    if j == len(chain) or not isinstance(chain[j], keras.layers.Dense):
        return None
    dense = chain[j]
    if getattr(dense, "quantization_mode", None) is not None or dense.kernel.shape[0] != inp.shape[1]:
        return None
    prefix = None
    if j:
        x = p_in = keras.Input((inp.shape[1],), dtype=inp.dtype)
        for layer in chain[:j]:
            x = layer(x)
        prefix = keras.Model(p_in, x)
    rest = [keras.layers.Activation(dense.activation, dtype=dense.dtype_policy)] + chain[j + 1:]
    return _Rank1Plan(prefix, dense, rest, {})


# A Dense layer this small is applied as multiply-and-sum, which XLA fuses with the elementwise work
# before it; a matmul would materialise the whole (B, G, N, U) block in memory first.
_SMALL_DENSE = 4096


def _small_dense(layer):
    return (isinstance(layer, keras.layers.Dense) and int(np.prod(layer.kernel.shape)) <= _SMALL_DENSE
            and getattr(layer, "quantization_mode", None) is None)


def _apply(layer, x):
    if _small_dense(layer):
        y = keras.ops.sum(keras.ops.expand_dims(x, -1) * keras.ops.convert_to_tensor(layer.kernel), axis=-2)
        if layer.use_bias:
            y = y + keras.ops.convert_to_tensor(layer.bias)
        return layer.activation(y)
    return layer(x, training=False)


@functools.cache
def _rank1_block_class():
    """The `_Rank1Block` layer class (defined on first use, when keras is imported)."""

    class _Rank1Block(keras.layers.Layer):
        """Mean outcome under do(h_i = v) for a block of neurons, from the rank-1 update of the Dense layer.

        Variables (assigned once per call of `ace_from_features`, so one compiled function serves every
        dataset of a detector): ``e`` (N, D) = u(h), ``ug`` (G, D) = u_i(v_ig), ``w`` (D, U) = the Dense
        kernel, ``z`` (N, U) = the unintervened pre-activations, ``labels`` (N,). The input is the first
        neuron of the block; the output is the mean outcome over the samples for the `block` neurons from
        there, (block, G).
        """

        def __init__(self, n_samples, n_neurons, grid_size, units, block, rest, measure, **kwargs):
            super().__init__(**kwargs)
            self.rest = list(rest)
            self.shape_ = dict(n=n_samples, d=n_neurons, g=grid_size, u=units, b=block)
            self.measure = measure

            def var(name, shape):
                return self.add_weight(shape=shape, initializer="zeros", trainable=False, name=name)

            self.e, self.ug = var("e", (n_samples, n_neurons)), var("ug", (grid_size, n_neurons))
            self.w, self.z = var("w", (n_neurons, units)), var("z", (n_samples, units))
            self.labels = var("labels", (n_samples,))

        def call(self, start):
            ops, sh = keras.ops, self.shape_
            i = ops.cast(start[0, 0], "int32")
            zero = ops.zeros((), "int32")
            t = ops.convert_to_tensor  # variables as tensors (JAX's tracer wants arrays, not Variables)
            e = ops.slice(t(self.e), [zero, i], [sh["n"], sh["b"]])  # (N, B)
            ug = ops.slice(t(self.ug), [zero, i], [sh["g"], sh["b"]])  # (G, B)
            w = ops.slice(t(self.w), [i, zero], [sh["b"], sh["u"]])  # (B, U)
            delta = ops.expand_dims(ug, 1) - ops.expand_dims(e, 0)  # (G, N, B): u_i(v) - e_i
            x = ops.expand_dims(delta, -1) * w + ops.expand_dims(t(self.z), 1)  # (G, N, B, U)
            x = ops.reshape(x, (-1, sh["u"]))
            for layer in self.rest:
                x = _apply(layer, x)
            out = ops.reshape(x, (sh["g"], sh["n"], sh["b"]))
            if self.measure == "correctness":
                out = ops.cast(ops.equal(is_fake(out), ops.expand_dims(t(self.labels) == 1, 1)), "float32")
            return ops.transpose(ops.mean(out, axis=1))  # (B, G)

    return _Rank1Block


def _rank1_evaluator(plan, n, d, g, block, measure):
    key = (n, d, g, block, measure)
    if key not in plan.evaluators:
        start = keras.Input((1,), dtype="int32")
        layer = _rank1_block_class()(n, d, g, plan.dense.units, block, plan.rest, measure)
        model = keras.Model(start, layer(start))
        # XLA fuses the update, the activations and the small dense layers into one pass over each block;
        # Keras leaves XLA off on CPU-only TensorFlow unless asked. The setter falls back if unsupported.
        model.jit_compile = True
        plan.evaluators[key] = (model, layer)
    return plan.evaluators[key]


def _means_rank1(plan, h, grid, neurons, measure, labels, chunk_elements):
    n = len(h)
    g = grid.shape[0]
    full = len(neurons) == h.shape[1] and np.array_equal(neurons, np.arange(h.shape[1]))
    e = h if plan.prefix is None else _predict(plan.prefix, h, max(1, chunk_elements // h.shape[1]))
    ug = grid if plan.prefix is None else _call(plan.prefix, grid)  # u_i(v_ig): elementwise per unit
    kernel = keras.ops.convert_to_numpy(plan.dense.kernel).astype(np.float32)
    bias = keras.ops.convert_to_numpy(plan.dense.bias).astype(np.float32) if plan.dense.use_bias else 0.0
    z = (e @ kernel + bias).astype(np.float32)  # unintervened pre-activations, the base of every update
    if not full:
        e, ug, kernel = e[:, neurons], ug[:, neurons], kernel[neurons]
    d, units = kernel.shape
    # When the rest of the tail is elementwise layers and small Dense layers, XLA fuses it into the
    # reduction over U and a block only materialises (G, N, B) values; otherwise (G, N, B, U).
    width = 1 if all(_is_elementwise(layer) or _small_dense(layer) for layer in plan.rest) else units
    block = int(min(d, max(1, chunk_elements // (g * n * width))))
    model, layer = _rank1_evaluator(plan, n, d, g, block, measure)
    for var, value in ((layer.e, e), (layer.ug, ug), (layer.w, kernel), (layer.z, z)):
        var.assign(np.asarray(value, np.float32))
    if labels is not None:
        layer.labels.assign(labels.astype(np.float32))
    means = np.empty((d, g))
    for s in range(0, d, block):
        first = min(s, d - block)  # the last block ends at the last neuron (overlapping the one before)
        out = keras.ops.convert_to_numpy(model.predict_on_batch(np.array([[first]], np.int32)))
        means[s:s + block] = out[s - first:]
    return means


def _means_batched(tail, h, grid, neurons, measure, labels, chunk_elements, feature_shape):
    n, d = h.shape
    g = grid.shape[0]
    rows = max(1, chunk_elements // d)
    block = max(1, chunk_elements // (g * n * d))
    means = np.empty((len(neurons), g))
    for s in range(0, len(neurons), block):
        idx = np.asarray(neurons[s:s + block])
        x = np.broadcast_to(h, (len(idx), g, n, d)).copy()
        # do(h_i = v): overwrite column i of block member b with its grid values (exact assignment)
        x[np.arange(len(idx))[:, None, None], np.arange(g)[None, :, None], np.arange(n)[None, None, :],
          idx[:, None, None]] = grid[:, idx].T[:, :, None]
        out = _predict(tail, x.reshape((-1,) + feature_shape), rows)[:, 0].reshape(len(idx), g, n)
        means[s:s + len(idx)] = _mean_over_samples(_outcome(out, measure, labels))
    return means


# ---------------------------------------------------------------------------------------------------
# Public ACE functions
# ---------------------------------------------------------------------------------------------------

def _prepare(h, measure, labels, neurons, grid_size, value_range=None):
    """Flattened float32 activations, checked labels, the neurons to intervene on and their grids."""
    feature_shape = tuple(h.shape[1:])
    h = np.ascontiguousarray(h.reshape(len(h), -1), dtype=np.float32)
    labels = _check_measure(measure, labels, len(h))
    neurons = np.arange(h.shape[1]) if neurons is None else np.asarray(neurons, dtype=np.int64)
    return feature_shape, h, labels, neurons, intervention_grid(h, grid_size, value_range)


def ace_from_features(tail, h, grid_size=4, measure="spread", labels=None, method="auto",
                      chunk_elements=DEFAULT_CHUNK, neurons=None, value_range=None):
    """Average causal effect of every analysis-layer neuron, from precomputed activations.

    Parameters
    ----------
    tail : keras.Model
        From `split_model`.
    h : ndarray (N, *feature_shape)
        Analysis-layer activations of the samples (`features`).
    grid_size : int
        Intervention values per neuron (G), evenly spanning its observed [min, max].
    measure : {"spread", "correctness"}
        See the module docstring.
    labels : array (N,), optional
        1 = fake, 0 = real. Required for "correctness".
    method : {"auto", "rank1", "batched"}
        "auto" takes "rank1" whenever the tail allows it.
    chunk_elements : int
        Upper bound (in floats) of one batched tail evaluation; bounds memory.
    neurons : array of int, optional
        Analyse only these (flat) neuron indices; default all.
    value_range : (low, high), optional
        Each neuron's grid range, two (D,) arrays (`study_code_range`); default its observed range in `h`.

    Returns
    -------
    DataFrame
        One row per neuron: ``neuron, effect, h_min, h_max, m_min, m_max, base, [max_drop], m0..m{G-1}``;
        ``m_g`` is the mean outcome under ``do(h_i = v_ig)``, ``base`` the mean outcome without
        intervention. ``attrs`` records measure, grid_size, method and n_samples.
    """
    feature_shape, h, labels, neurons, grid = _prepare(h, measure, labels, neurons, grid_size, value_range)
    n, d = h.shape
    base = float(_mean_over_samples(_outcome(
        _predict(tail, h.reshape((-1,) + feature_shape), max(1, chunk_elements // d))[:, 0], measure, labels)))
    plan = _rank1_plan(tail) if method in ("auto", "rank1") else None
    if method == "rank1" and plan is None:
        raise ValueError("method='rank1' needs a tail of per-unit elementwise layers followed by a Dense "
                         "layer on a flat input; use method='batched' or 'auto'")
    if method not in ("auto", "rank1", "batched"):
        raise ValueError(f"method must be auto, rank1 or batched, got {method!r}")
    used = "rank1" if plan is not None else "batched"
    log.info("ACE of %d neurons x %d grid values over %d samples (%s, %s path)",
             len(neurons), grid_size, n, measure, used)
    if plan is not None:
        m = _means_rank1(plan, h, grid, neurons, measure, labels, chunk_elements)
    else:
        m = _means_batched(tail, h, grid, neurons, measure, labels, chunk_elements, feature_shape)
    df = _result_frame(m, neurons, grid, measure, base)
    df.attrs.update(method=used, n_samples=int(n))
    return df


def ace(model, images, layer_name, grid_size=4, measure="spread", labels=None, batch_size=64,
        method="auto", chunk_elements=DEFAULT_CHUNK):
    """Average causal effect of every neuron of `layer_name` on the detector's output, over `images`.

    Parameters
    ----------
    model : keras.Model
        Detector (uint8 images in, P(fake) out).
    images : array (N, S, S, 3)
        The samples (0-255).
    layer_name : str
        Analysis layer; the layers after it must form a chain to the output.
    grid_size, measure, labels, method, chunk_elements
        As in `ace_from_features`.
    batch_size : int
        Images per forward pass of the head.

    Returns
    -------
    DataFrame
        As `ace_from_features` (``neuron, effect, ...``); rank with `rank_neurons`.
    """
    head, tail = split_model(model, layer_name)
    h = features(head, images, batch_size=batch_size)
    return ace_from_features(tail, h, grid_size, measure, labels, method, chunk_elements)


def ace_loop_from_features(tail, h, grid_size=4, measure="spread", labels=None, neurons=None, via="graph",
                           batch_size=None, value_range=None):
    """Reference ACE: one tail forward per (neuron, grid value), the loop structure of the study's code.

    Parameters
    ----------
    via : {"graph", "call", "predict"}
        How each forward runs on all N samples: ``tail.predict_on_batch`` (the backend's compiled
        step; the fastest loop), ``tail(x, training=False)`` (eager), or ``tail.predict(x,
        batch_size=batch_size)`` exactly like the study's code (Keras' default batch of 32 when None).
    Other parameters as `ace_from_features`. Same results up to float rounding.
    """
    if via not in ("graph", "call", "predict"):
        raise ValueError(f"via must be graph, call or predict, got {via!r}")
    feature_shape, h, labels, neurons, grid = _prepare(h, measure, labels, neurons, grid_size, value_range)
    n, d = h.shape

    def forward(x):
        x = x.reshape((-1,) + feature_shape)
        if via == "predict":
            return tail.predict(x, batch_size=batch_size, verbose=0).reshape(-1)
        if via == "graph":
            return keras.ops.convert_to_numpy(tail.predict_on_batch(x)).reshape(-1)
        return _call(tail, x).reshape(-1)

    base = float(_mean_over_samples(_outcome(forward(h), measure, labels)))
    m = np.empty((len(neurons), grid_size))
    for r, i in enumerate(neurons):
        for gi in range(grid_size):
            do = h.copy()
            do[:, i] = grid[gi, i]
            m[r, gi] = _mean_over_samples(_outcome(forward(do), measure, labels))
    df = _result_frame(m, neurons, grid, measure, base)
    df.attrs.update(method=f"loop-{via}", n_samples=int(n))
    return df


def ace_loop(model, images, layer_name, grid_size=4, measure="spread", labels=None, batch_size=64,
             neurons=None, via="graph"):
    """`ace` computed the straightforward way (`ace_loop_from_features`); for tests and the benchmark."""
    head, tail = split_model(model, layer_name)
    h = features(head, images, batch_size=batch_size)
    return ace_loop_from_features(tail, h, grid_size, measure, labels, neurons, via)


# ---------------------------------------------------------------------------------------------------
# Rankings and top-k overlap
# ---------------------------------------------------------------------------------------------------

def rank_neurons(effects):
    """Neuron indices by descending effect; ties keep ascending neuron order.

    Parameters
    ----------
    effects : DataFrame with ``neuron, effect`` columns, or array-like of effects indexed by neuron.

    Returns
    -------
    ndarray of int
        ``ranking[0]`` is the neuron with the largest effect. NaN effects rank last.
    """
    if isinstance(effects, pd.DataFrame):
        neuron = effects["neuron"].to_numpy(np.int64)
        effect = effects["effect"].to_numpy(np.float64)
    else:
        effect = np.asarray(effects, dtype=np.float64).reshape(-1)
        neuron = np.arange(len(effect))
    key = np.where(np.isnan(effect), -np.inf, effect)
    return neuron[np.lexsort((neuron, -key))]


def _ranks(effects):
    """1-based rank of each row of `effects` (1 = largest effect)."""
    order = rank_neurons(effects)
    pos = pd.Series(np.arange(1, len(order) + 1), index=order)
    return pos.loc[effects["neuron"].to_numpy()].to_numpy()


def topk_overlap(rankings, fractions=FRACTIONS):
    """How many datasets each top-k neuron is top-k on, as a histogram per k.

    Parameters
    ----------
    rankings : dict
        dataset -> ranking (neuron ids, best first; `rank_neurons`), all over the same neurons.
    fractions : sequence of float
        k = round(fraction x layer size), at least 1 (the study: 1/16, 1/8, 1/4, 1/2 of 1,024).

    Returns
    -------
    DataFrame
        ``fraction, k, count, n_neurons, layer_size, n_datasets``: for each k and each count c in
        1..n_datasets, the number of neurons that are top-k on exactly c of the datasets.
    """
    if not rankings:
        raise ValueError("no rankings")
    ranks = {name: np.asarray(r, dtype=np.int64) for name, r in rankings.items()}
    sets = {name: frozenset(r.tolist()) for name, r in ranks.items()}
    first = next(iter(sets.values()))
    for name, r in ranks.items():
        if len(sets[name]) != len(r) or sets[name] != first:
            raise ValueError(f"ranking {name!r} is not a permutation of the same {len(first)} neurons")
    size, n_ds = len(first), len(ranks)
    rows = []
    for f in fractions:
        k = max(1, int(round(f * size)))
        counts = Counter(i for r in ranks.values() for i in r[:k].tolist())
        hist = Counter(counts.values())
        rows += [dict(fraction=float(f), k=k, count=c, n_neurons=hist.get(c, 0), layer_size=size,
                      n_datasets=n_ds) for c in range(1, n_ds + 1)]
    return pd.DataFrame(rows)


def overlap_table(effects, fractions=FRACTIONS):
    """`topk_overlap` of a detector's effect tables (dict dataset -> `ace` DataFrame)."""
    table = topk_overlap({name: rank_neurons(df) for name, df in effects.items()}, fractions)
    table.insert(0, "datasets", "|".join(effects))
    return table


# ---------------------------------------------------------------------------------------------------
# Finding 4
# ---------------------------------------------------------------------------------------------------

def _fraction_label(f):
    return f"1/{round(1 / f)}" if f > 0 and abs(1 / f - round(1 / f)) < 1e-9 else f"{f:g}"


def permutation_baseline(layer_size, k, n_datasets, permutations=1000, seed=0):
    """Neurons top-k on all datasets when each dataset's ranking is shuffled: one count per permutation.

    Shuffling every dataset's ranking independently makes each top-k set a uniform random k-subset of
    the layer; the count of neurons in all of them is drawn `permutations` times.
    """
    rng = np.random.default_rng(seed)
    counts = np.empty(permutations, np.int64)
    for r in range(permutations):
        in_all = np.ones(layer_size, bool)
        for _ in range(n_datasets):
            top = np.zeros(layer_size, bool)
            top[rng.permutation(layer_size)[:k]] = True
            in_all &= top
        counts[r] = in_all.sum()
    return counts


def _three_way(n_yes, n):
    return "supported" if n_yes == n else ("partly supported" if n_yes else "not supported")


def finding4(table, permutations=1000, seed=0):
    """Verdict on Finding 4 ("some neurons are top contributors on all five datasets"), under two readings.

    Parameters
    ----------
    table : DataFrame
        Concatenated overlap tables with a ``detector`` column (`topk_overlap` columns otherwise).
    permutations : int
        Shuffles of each dataset's ranking for the chance baseline (`permutation_baseline`); 0 skips it.
    seed : int
        Seed of the shuffles.

    Returns
    -------
    dict
        ``readings``: ``lenient`` (every detector has at least one neuron top-k on all datasets at the
        smallest k) and ``paper`` ('all datasets' is the most frequent count of every detector, the reading
        of the study's Figure 5), each with a ``verdict`` ("supported" for every detector, "partly
        supported" for some, "not supported" for none) and a ``sentence``. ``verdict`` and ``sentence``
        at the top are the lenient reading's, the sentence followed by the paper's and the permutation
        baseline: per detector and k, the observed all-datasets count against its distribution when each
        dataset's ranking is shuffled (mean, 95th percentile, p = share of shuffles at least as large).
    """
    if table.empty:
        return dict(finding=4, verdict="not tested", supported=None,
                    sentence="Finding 4 could not be tested: no causal-analysis results.", per_detector=[],
                    readings={})
    fractions = sorted(table["fraction"].unique())
    baselines = {}
    per_detector = []
    for det, t in table.groupby("detector", sort=False):
        n_ds = int(t["n_datasets"].iloc[0])
        entry = dict(detector=det, layer_size=int(t["layer_size"].iloc[0]), n_datasets=n_ds, by_k={})
        for f, tf_ in t.groupby("fraction"):
            hist = tf_.set_index("count")["n_neurons"]
            k, size = int(tf_["k"].iloc[0]), int(tf_["layer_size"].iloc[0])
            n_all = int(hist.get(n_ds, 0))
            cell = dict(k=k, n_all=n_all, modal_count=int(hist.idxmax()) if hist.max() > 0 else None,
                        all_is_mode=bool(n_all > 0 and n_all == hist.max()),
                        histogram={int(c): int(v) for c, v in hist.items()})
            if permutations:
                key = (size, k, n_ds)
                if key not in baselines:
                    baselines[key] = permutation_baseline(size, k, n_ds, permutations, seed)
                null = baselines[key]
                cell.update(perm_mean=float(null.mean()), perm_p95=float(np.percentile(null, 95)),
                            perm_p=float((1 + (null >= n_all).sum()) / (1 + len(null))))
            entry["by_k"][_fraction_label(f)] = cell
        per_detector.append(entry)
    lab = _fraction_label(fractions[0])
    n_det = len(per_detector)
    n_ds = per_detector[0]["n_datasets"]
    cells = [e["by_k"][lab] for e in per_detector]
    counts = [c["n_all"] for c in cells]
    with_all = sum(c > 0 for c in counts)
    modal = sum(c["all_is_mode"] for c in cells)
    mode_by_k = {_fraction_label(f): sum(e["by_k"][_fraction_label(f)]["all_is_mode"] for e in per_detector)
                 for f in fractions}
    lenient = dict(verdict=_three_way(with_all, n_det), sentence=(
        f"at k = {lab} of the layer, {with_all} of {n_det} detectors have at least one neuron in the top k on "
        f"all {n_ds} datasets (median {np.median(counts):g}, range {min(counts)}-{max(counts)} such neurons)."))
    paper = dict(verdict=_three_way(modal, n_det), sentence=(
        f"'all {n_ds}' is the most frequent count for {modal} of {n_det} detectors at k = {lab} ("
        + ", ".join(f"{v}/{n_det} at k = {f}" for f, v in mode_by_k.items()) + ")."))
    readings = dict(lenient=lenient, paper=paper)
    claim = f"Finding 4 (some neurons are top contributors on all {n_ds} datasets)"
    sentence = (f"{claim} is {lenient['verdict']} under the lenient reading: {lenient['sentence']} Under the "
                f"paper's reading it is {paper['verdict']}: {paper['sentence']}")
    if permutations:
        above = sum(c["n_all"] > c["perm_p95"] for c in cells)
        significant = sum(c["perm_p"] < 0.05 for c in cells)
        permutation = dict(permutations=int(permutations), detectors_above_p95=above,
                           detectors_p_below_005=significant, mean_at_smallest_k=max(c["perm_mean"] for c in cells))
        sentence += (f" Shuffling each dataset's ranking ({permutations} times) gives on average "
                     f"{permutation['mean_at_smallest_k']:.3g} such neurons at k = {lab}; {above} of {n_det} "
                     f"detectors exceed the shuffles' 95th percentile (p < 0.05 for {significant}).")
    else:
        permutation = None
    for reading in readings.values():
        reading["sentence"] = reading["sentence"][0].upper() + reading["sentence"][1:]
    return dict(finding=4, claim="Some neurons are top contributors on all five datasets.",
                verdict=lenient["verdict"], supported=lenient["verdict"] == "supported", sentence=sentence,
                readings=readings, permutation=permutation, smallest_fraction=lab, detectors=n_det,
                detectors_with_universal_neuron=with_all, all_is_mode=mode_by_k, per_detector=per_detector)


# ---------------------------------------------------------------------------------------------------
# I/O and CLIs
# ---------------------------------------------------------------------------------------------------

def select_samples(labels, n, seed):
    """Seeded choice of up to `n` sample indices, half real and half fake when the split allows.

    A class with too few images is used whole and the other class fills the rest; a split smaller than
    `n` is used whole. Returns sorted indices.
    """
    labels = np.asarray(labels).reshape(-1)
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    fake = rng.permutation(np.flatnonzero(labels == 1))
    real = rng.permutation(np.flatnonzero(labels != 1))
    n_fake = min(len(fake), max(n // 2, n - len(real)))
    n_real = min(len(real), n - n_fake)
    return np.sort(np.concatenate([fake[:n_fake], real[:n_real]]))


def _load_split(path):
    with np.load(path, allow_pickle=False) as z:
        return z["images"], z["labels"]


def _parser():
    p = argparse.ArgumentParser(
        prog="python -m dfstudy.causal rank",
        description="Average causal effect of each neuron of a detector layer on its output (RQ4).")
    p.add_argument("--model", required=True, help="detector .keras file")
    p.add_argument("--layer", required=True, help="analysis layer name (dfstudy.models.causal_layer)")
    p.add_argument("--split", action="append", required=True, help="split .npz; repeat, paired in order with --out")
    p.add_argument("--out", action="append", required=True, help="effects .parquet; repeat, one per --split")
    p.add_argument("--n-samples", type=int, default=1920, help="images per split (balanced; default 1920)")
    p.add_argument("--grid", type=int, default=4, help="intervention values per neuron (default 4)")
    p.add_argument("--measure", choices=MEASURES, default="spread")
    p.add_argument("--method", choices=("auto", "rank1", "batched"), default="auto")
    p.add_argument("--grid-range", choices=("observed", "study_code"), default="observed",
                   help="observed: each neuron's min..max on the samples; study_code: on another draw of as "
                        "many images, clipped as the released causal_inference.py (study_code_range)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--batch-size", type=int, default=64, help="images per head forward pass")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--log-level", default="INFO")
    device.add_arguments(p)
    registry.add_arguments(p)
    return p


def _summarize_parser():
    p = argparse.ArgumentParser(
        prog="python -m dfstudy.causal summarize",
        description="Top-k overlap of neuron rankings: per detector (--effects/--out) and over all "
                    "detectors (--overlaps/--table/--findings). Either or both modes in one call.")
    p.add_argument("--effects", nargs="+", default=[],
                   help="a detector's effect tables, one per dataset ({dataset}.parquet; name = file stem)")
    p.add_argument("--out", help="the detector's overlap CSV, results/causal/{trainset}/{arch}/{strategy}_overlap.csv")
    p.add_argument("--overlaps", nargs="+", default=[], help="per-detector overlap CSVs to collect")
    p.add_argument("--table", help="collected overlap CSV (results/tables/rq4_overlap.csv)")
    p.add_argument("--findings", help="Finding 4 verdict JSON (e.g. results/tables/findings_rq4.json)")
    p.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS))
    p.add_argument("--permutations", type=int, default=1000, help="shuffles for Finding 4's chance baseline")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffles")
    p.add_argument("--log-level", default="INFO")
    add_argument(p)
    return p


_OVERLAP_PATH = re.compile(r"(?P<trainset>[^/]+)/(?P<arch>[^/]+)/(?P<strategy>[^/]+)_overlap\.csv$")


def _detector_id(path, study=PAPER):
    """trainset, arch, strategy and study name (e.g. MesoNet1) from an overlap CSV path, if it follows the layout;
    a detector outside ``study`` is named ``<arch>-<trainset>-<strategy>``."""
    m = _OVERLAP_PATH.search(Path(path).as_posix())
    if not m:
        return {}
    ids = m.groupdict()
    name = study.name_of_path(f"{ids['trainset']}/{ids['arch']}/{ids['strategy']}")
    ids["detector"] = name if "/" not in name else f"{ids['arch']}-{ids['trainset']}-{ids['strategy']}"
    return ids


def _write(df_or_text, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(df_or_text, pd.DataFrame):
        if path.suffix == ".csv":
            df_or_text.to_csv(path, index=False)
        else:
            df_or_text.to_parquet(path, index=False)
    else:
        path.write_text(df_or_text)


def summarize_main(argv=None):
    args = _summarize_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not (args.effects or args.overlaps):
        raise SystemExit("give --effects (with --out) and/or --overlaps (with --table/--findings)")
    if args.effects:
        if not args.out:
            raise SystemExit("--effects needs --out")
        effects = {Path(p).stem: pd.read_parquet(p) for p in args.effects}
        table = overlap_table(effects, args.fractions)
        for key, value in reversed(list(_detector_id(args.out, args.study).items())):
            table.insert(0, key, value)
        _write(table, args.out)
        log.info("%s: %d datasets -> %s", ", ".join(effects), len(effects), args.out)
    if args.overlaps:
        parts = []
        for p in args.overlaps:
            t = pd.read_csv(p)
            for key, value in _detector_id(p, args.study).items():
                if key not in t:
                    t.insert(0, key, value)
            if "detector" not in t:
                t.insert(0, "detector", Path(p).stem)
            parts.append(t)
        table = pd.concat(parts, ignore_index=True)
        if args.table:
            _write(table, args.table)
        result = finding4(table, args.permutations, args.seed)
        log.info(result["sentence"])
        if args.findings:
            _write(json.dumps(result, indent=2) + "\n", args.findings)


def rank_args(argv=None):
    return _parser().parse_args(argv)


def rank(args, model):
    """The ACE of every neuron of ``--layer`` of the loaded `model` on every ``--split`` (``rank``'s work;
    ``dfstudy.analyse`` calls it with the model it loaded for all of a detector's analyses)."""
    pairs = split_out_pairs(args.split, args.out)
    head, tail = split_model(model, args.layer)
    log.info("%s: layer %s -> %s values; fast path: %s", args.model, args.layer,
             tuple(head.outputs[0].shape[1:]), _rank1_plan(tail) is not None)
    for split_path, out_path in pairs:
        images, labels = _load_split(split_path)
        idx = select_samples(labels, args.n_samples, args.seed)
        if len(idx) < args.n_samples:
            log.warning("%s holds %d images, fewer than --n-samples %d: using all of them",
                        split_path, len(idx), args.n_samples)
        lab = labels[idx]
        log.info("%s: %d samples (%d fake, %d real)", split_path, len(idx), int((lab == 1).sum()),
                 int((lab != 1).sum()))
        h = features(head, images[idx], batch_size=args.batch_size)
        value_range = None
        if args.grid_range == "study_code":
            # another draw of as many images (with the whole split, the same images) gives the range
            other = select_samples(labels, args.n_samples, args.seed + 1)
            value_range = study_code_range(features(head, images[other], batch_size=args.batch_size))
        df = ace_from_features(tail, h, args.grid, args.measure, lab, args.method, value_range=value_range)
        out = df[["neuron", "effect"]].assign(rank=_ranks(df))
        out.attrs = {**df.attrs, "split": str(split_path), "model": str(args.model), "layer": args.layer,
                     "seed": args.seed, "grid_range": args.grid_range}
        _write(out, out_path)
        top = out.nsmallest(5, "rank")
        log.info("-> %s; top neurons %s (effects %s)", out_path, top["neuron"].tolist(),
                 [f"{e:.4g}" for e in top["effect"]])


def rank_main(argv=None):
    args = rank_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    split_out_pairs(args.split, args.out)  # a mismatch fails before the model loads
    from dfstudy.evaluate import load_model
    from dfstudy.train import configure_backend

    if args.threads:
        configure_backend(args.threads, deterministic=False)
    device.announce(args.require_gpu, log)
    rank(args, load_model(args.model, args.plugins))


def main(argv=None):
    run_subcommands("python -m dfstudy.causal", "Causal (ACE) neuron analysis of the detectors (RQ4)",
                    {"rank": ("rank one detector's neurons by causal effect, per test split", rank_main),
                     "summarize": ("top-k overlaps per detector and over all detectors, Finding 4",
                                   summarize_main)}, argv)


if __name__ == "__main__":
    main()
