"""The architecture registry: one record per detector architecture, the only place that names its layers.

A record says how to build the model and which of its layers the other stages use: the Grad-CAM layer
(``last_conv``), the causal analysis layer (``causal_layer``, None where the analysis does not apply), the
layers that train under the transfer strategy (``transfer_layers``) and the published backbone weights its
builder accepts (``weights``). The config check, the rules and every command read it from here.

This module imports no deep-learning library: ``rules/common.smk`` reads names and layers at every
Snakefile parse, and importing Keras costs seconds. A builder is a ``"module:function"`` string, imported
on the first ``build``; a plugin may also pass the function itself.

Adding an architecture from outside the package (a plugin)::

    # mydetectors.py, importable (installed, or on PYTHONPATH)
    from dfstudy.models.registry import Architecture, register

    register(Architecture("TinyNet", "mydetectors_keras:tinynet", last_conv="conv",
                          causal_layer="features", transfer_layers=("features", "fake_prob")))

and ``detectors: {plugins: [mydetectors], architectures: [..., TinyNet]}`` in the config (plus its
learning rate). Every job imports the plugins (``--plugins``), so custom layers defined in the plugin's
modules deserialize when a saved ``.keras`` model is loaded.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

_REGISTRY: dict[str, Architecture] = {}


@dataclass(frozen=True)
class Architecture:
    """One detector architecture.

    Parameters
    ----------
    name : str
        Registry name, as written in the config (``detectors.architectures``) and in result paths.
    builder : str or callable
        ``"module:function"`` (imported on first use) or the function; called as
        ``builder(input_shape, weights=weights)`` it returns a flat functional ``keras.Model`` named
        ``name.lower()`` that takes RGB 0-255 and ends in one sigmoid unit named ``fake_prob`` (P(fake)).
    last_conv : str
        The layer Grad-CAM explains.
    causal_layer : str or None
        The layer whose units the causal analysis intervenes on; what follows it must be a chain of
        single-input layers. None: the architecture cannot be in ``causal.architectures``.
    transfer_layers : tuple of str
        The layers that train under the transfer strategy (the study: the last two function layers).
    weights : tuple of str
        Published initialisations the builder accepts besides None (``("imagenet",)``).
    reference : str or None
        Where an architecture beyond the study comes from, as tables and the report name its approach
        (a short label and the seed paper); None for the study's own five.
    frozen_layers : tuple of str
        Layers that never train on the detector's data under any strategy, merge included (a density
        model of real faces that must never see a fake); ``pretrain`` fits them first.
    pretrain : str or callable, optional
        ``"module:function"`` or the function, called by ``dfstudy.train`` for the original strategy
        before its first epoch as ``pretrain(model, images, labels, epochs, learning_rate, batch_size,
        seed)`` with the training part; it fits ``frozen_layers`` (on the rows it chooses) and returns a
        JSON-able summary for the model card. None: nothing to fit first.
    """

    name: str
    builder: str | object
    last_conv: str
    causal_layer: str | None
    transfer_layers: tuple[str, ...]
    weights: tuple[str, ...] = ()
    reference: str | None = None
    frozen_layers: tuple[str, ...] = ()
    pretrain: str | object | None = None

    def __post_init__(self):
        for field in ("transfer_layers", "weights", "frozen_layers"):
            object.__setattr__(self, field, tuple(getattr(self, field)))
        for role, target in (("builder", self.builder), ("pretrain", self.pretrain)):
            if isinstance(target, str) and ":" not in target:
                raise ValueError(f"{self.name}: {role} {target!r} is not 'module:function'")
        if set(self.frozen_layers) & set(self.transfer_layers):
            raise ValueError(f"{self.name}: layers both frozen and trained under transfer: "
                             f"{sorted(set(self.frozen_layers) & set(self.transfer_layers))}")

    @property
    def model_name(self) -> str:
        """The built model's name, by which ``architecture_of`` recognises a loaded model."""
        return self.name.lower()

    def builder_function(self):
        """The builder, importing its module on first use."""
        return _resolve(self.builder)

    def pretrain_function(self):
        """The pretraining hook (None if the architecture has none), importing its module on first use."""
        return None if self.pretrain is None else _resolve(self.pretrain)

    def build(self, input_shape=(256, 256, 3), weights=None):
        """The model for ``input_shape`` images (see ``dfstudy.models.build``)."""
        if weights is not None and weights not in self.weights:
            offered = ", ".join(self.weights) or "none"
            raise ValueError(f"{self.name} takes no weights={weights!r} (published weights: {offered})")
        model = self.builder_function()(tuple(input_shape), weights=weights)
        if model.name != self.model_name:
            raise ValueError(f"{self.name}: its builder returned a model named {model.name!r}, expected "
                             f"{self.model_name!r} (loaded models are recognised by their name)")
        return model


def _resolve(target):
    """A function given as itself or as ``"module:function"``."""
    if not isinstance(target, str):
        return target
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def register(architecture: Architecture, replace: bool = False) -> Architecture:
    """Add ``architecture`` to the registry; a second registration of a name is an error unless
    ``replace`` (or it is the same record, as when a plugin module is imported twice)."""
    old = _REGISTRY.get(architecture.name)
    if old is not None and old != architecture and not replace:
        raise ValueError(f"architecture {architecture.name!r} is already registered (builder {old.builder!r})")
    clash = [a.name for a in _REGISTRY.values() if a.model_name == architecture.model_name and a.name != architecture.name]
    if clash:
        raise ValueError(f"architecture {architecture.name!r} builds models named like {clash[0]!r}'s")
    _REGISTRY[architecture.name] = architecture
    return architecture


def get(name: str) -> Architecture:
    """The record of architecture ``name``; an unknown name is a ValueError listing the registered ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown architecture {name!r}; registered: {', '.join(_REGISTRY)} "
                         "(others come from plugin modules: detectors.plugins, --plugins)") from None


def names() -> tuple[str, ...]:
    """Registered architecture names, built-ins first, then in registration order."""
    return tuple(_REGISTRY)


def load_plugins(modules) -> None:
    """Import each dotted module name in ``modules``; importing a plugin registers its architectures."""
    for module in modules or ():
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ImportError(f"plugin module {module!r} cannot be imported ({err}); install it or put its "
                              "folder on PYTHONPATH") from err


def import_builders() -> None:
    """Import every registered builder's module, so that the custom layers it registers with Keras
    deserialize when a saved model is loaded."""
    for arch in _REGISTRY.values():
        arch.builder_function()


def add_arguments(parser) -> None:
    """The ``--plugins`` option of every command that builds or loads models."""
    parser.add_argument(
        "--plugins", action="extend", default=[], metavar="MODULE[,MODULE...]",
        type=lambda text: [m for m in text.split(",") if m],
        help="modules that register more architectures (config detectors.plugins); repeatable",
    )


# The study's five architectures -----------------------------------------------------------------------

for _arch in (
    # the 8x8x16 = 1,024 values entering the first dense layer at 256 px; the study's "last two function layers"
    Architecture("MesoNet", "dfstudy.models.mesonet:mesonet", last_conv="block4_conv", causal_layer="features",
                 transfer_layers=("head_dense", "fake_prob")),
    Architecture("MesoInception", "dfstudy.models.mesoinception:mesoinception", last_conv="block4_conv",
                 causal_layer="features", transfer_layers=("head_dense", "fake_prob")),
    # fc1: the 1,024 units of the first dense layer (fc1_bn -> fc1_drop -> fake_prob follow it); the two
    # dense layers train under transfer, fc1_bn stays frozen (inference mode)
    Architecture("ShallowNet", "dfstudy.models.shallownet:shallownet", last_conv="group3_conv2",
                 causal_layer="fc1", transfer_layers=("fc1", "fake_prob")),
    # the backbones: last conv and the dense unit train under transfer, BN stays frozen; the causal
    # analysis covers the three small architectures only
    Architecture("XceptionNet", "dfstudy.models.xception:xceptionnet", last_conv="block14_sepconv2",
                 causal_layer=None, transfer_layers=("block14_sepconv2", "fake_prob"), weights=("imagenet",)),
    Architecture("EfficientNet", "dfstudy.models.efficientnet:efficientnet", last_conv="top_conv",
                 causal_layer=None, transfer_layers=("top_conv", "fake_prob"), weights=("imagenet",)),
    # beyond the study: Jevnisek & Avidan (2022), features of every block pooled into the head
    Architecture("LayerAggregation", "dfstudy.models.layer_aggregation:layer_aggregation",
                 last_conv="block4_conv", causal_layer="features", transfer_layers=("block4_conv", "fake_prob"),
                 reference="layer aggregation (seed 000: Jevnisek & Avidan, 2022)"),
    # beyond the study: Khodabakhsh & Busch (2020, seed 002), a LeNet-style classifier on the per-pixel NLL
    # map of a pixel model fitted to the real training faces first and frozen ever after
    Architecture("PixelAnomaly", "dfstudy.models.pixelcnn:pixel_anomaly", last_conv="block2_conv",
                 causal_layer="features", transfer_layers=("head_dense2", "fake_prob"),
                 reference="pixel-model anomaly features (seed 002: Khodabakhsh & Busch, 2020)",
                 frozen_layers=("pixel_conv_a", *(f"pixel_conv_b{i}" for i in range(1, 5)), "pixel_params"),
                 pretrain="dfstudy.models.pixelcnn:pretrain_pixel_model"),
    # beyond the study: seed 004's Xception variants. Like XceptionNet, the last separable convolution and
    # the dense unit train under transfer; MidwayXception's replaces it by two layers (3x3 grouped, 1x1),
    # both of which train. No causal layer: global pooling and dropout, not a dense chain, precede fake_prob.
    Architecture("MidwayXception", "dfstudy.models.light_xception:midway_xception", last_conv="block14_sepconv2",
                 causal_layer=None, transfer_layers=("block14_sepconv2_group", "block14_sepconv2", "fake_prob"),
                 reference="lighter Xception (seed 004: Govi, Poppi & Marinelli)"),
    Architecture("LightXception", "dfstudy.models.light_xception:light_xception", last_conv="block14_sepconv2",
                 causal_layer=None, transfer_layers=("block14_sepconv2", "fake_prob"), weights=("imagenet",),
                 reference="lighter Xception (seed 004: Govi, Poppi & Marinelli)"),
):
    register(_arch)
del _arch
