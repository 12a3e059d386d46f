"""Domain-adversarial fine-tuning (beyond the study; seed paper 001, after Ganin & Lempitsky's DANN).

The trained original detector is fine-tuned on its ``finetune`` part with a second head: a domain
classifier with the same layers as the fake classifier, fed the shared features through a gradient
reversal (:class:`dfstudy.models.gradient_reversal.GradientReversal`). The domain classifier learns to
tell the training set's own images (domain 0) from the fine-tuning sets' (``splits.finetune_from``: FS and
NT, domain 1); the reversed gradient pushes the feature extractor towards features that cannot. Both
domains keep their real/fake labels, so the fake loss covers every fine-tuning image (the paper leaves
its target domain unlabelled; see ``dfstudy.deviations``). Only the plain detector is kept: the domain
branch shares its layers, so training the two-headed model trains the detector in place.
"""

import math

import keras
import numpy as np

from dfstudy.batches import Batches
from dfstudy.models.gradient_reversal import GradientReversal

# layers a classification head is made of: walking back from ``fake_prob`` through these finds the head
HEAD_TYPES = (
    keras.layers.Dense, keras.layers.Dropout, keras.layers.BatchNormalization, keras.layers.Activation,
    keras.layers.LeakyReLU, keras.layers.ReLU,
)
DOMAIN_OUTPUT = "domain_prob"


def head_layers(model, output="fake_prob"):
    """The fake classifier: the chain of dense, dropout, normalisation and activation layers that ends in
    `output`, first layer first. Its first layer's input is the shared feature vector.

    A general rule for every registered architecture: MesoNet's head starts after ``features`` (Flatten),
    ShallowNet's at ``fc1``, the backbones' after their global pooling.
    """
    layer, head = model.get_layer(output), []
    while isinstance(layer, HEAD_TYPES):
        head.insert(0, layer)
        inbound = layer.input
        if isinstance(inbound, (list, tuple)):  # a layer that merges several inputs is not part of a head
            break
        layer = inbound._keras_history.operation
    if not head:
        raise ValueError(f"{model.name}: {output!r} is not a dense head layer")
    return head


def with_domain_branch(model, strength=1.0, ramp_steps=None, gamma=10.0):
    """A two-output model ``[fake_prob, domain_prob]`` that shares every layer of `model`.

    The domain classifier is a fresh copy of the fake classifier's layers (same types and settings,
    names prefixed ``domain_``, new weights drawn from Keras' seeded initialisers), after a gradient
    reversal of the given `strength` and schedule (see :class:`GradientReversal`).
    """
    head = head_layers(model)
    x = GradientReversal(strength, ramp_steps=ramp_steps, gamma=gamma, name="domain_reversal")(head[0].input)
    for layer in head:
        config = layer.get_config()
        config["name"] = DOMAIN_OUTPUT if layer is head[-1] else f"domain_{layer.name}"
        x = layer.__class__.from_config(config)(x)
    return keras.Model(model.input, [model.output, x], name=f"{model.name}_adversarial")


def domain_labels(datasets, trainset):
    """0 for an image of `trainset` (the seen domain), 1 for one of the fine-tuning sets (the target)."""
    datasets = np.asarray(datasets).astype(str)
    if not (datasets == trainset).any():
        raise ValueError(f"no image of {trainset} among the datasets {sorted(set(datasets))}")
    return (datasets != trainset).astype("float32")


def ramp_steps(n_images, batch_size, epochs):
    """Training steps of a whole fine-tune: DANN's schedule reaches its full strength at the last one."""
    return epochs * math.ceil(n_images / batch_size)


class DomainBatches(Batches):
    """Batches ``(images, (labels, domains))`` in a fixed order."""

    def __init__(self, images, labels, domains, batch_size, order):
        super().__init__(images, labels, batch_size, order)
        self.domains = np.asarray(domains, dtype="float32").reshape(-1, 1)

    def __getitem__(self, index):
        rows = self.rows_of(index)
        return self.images[rows], (self.labels[rows], self.domains[rows])
