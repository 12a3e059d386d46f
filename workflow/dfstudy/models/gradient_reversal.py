"""Gradient reversal (Ganin & Lempitsky, 2015): the identity forward, the gradient times -lambda backward.

Beyond the study: the domain-adversarial fine-tuning strategy (``dfstudy.adversarial``, seed paper 001)
puts it between the shared features and the domain classifier, so that the feature extractor learns to
confuse the domain classifier while the classifier itself learns to tell the domains apart.

Why not ``keras.ops.custom_gradient``: on JAX it needs the reversal strength as a closure constant, and a
strength that changes during training (the schedule) would then retrace every step. The stop-gradient
form below is ordinary differentiable arithmetic, so every backend differentiates it alike:
``y = sg(x) + (-lambda) * (x - sg(x))`` is ``x`` exactly in the forward pass (``x - sg(x)`` is exactly 0)
and has derivative ``-lambda`` with respect to ``x``.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="dfstudy")
class GradientReversal(keras.layers.Layer):
    """Identity forward; multiplies the incoming gradient by ``-lambda``.

    Parameters
    ----------
    strength : float
        The largest reversal strength ``lambda_max``.
    ramp_steps : int, optional
        Training calls over which lambda ramps up along DANN's schedule
        ``lambda_max * (2 / (1 + exp(-gamma * p)) - 1)``, ``p = step / ramp_steps`` capped at 1 (None:
        ``lambda = strength`` from the first step). The layer counts its own training calls in a
        non-trainable variable, so the schedule runs inside the compiled step on every backend and a
        checkpoint of the model's variables resumes it exactly.
    gamma : float
        Steepness of the ramp (DANN: 10).
    """

    def __init__(self, strength=1.0, ramp_steps=None, gamma=10.0, **kwargs):
        super().__init__(**kwargs)
        self.strength, self.ramp_steps, self.gamma = float(strength), ramp_steps, float(gamma)
        self.step = self.add_weight(shape=(), initializer="zeros", trainable=False, name="step", dtype="float32")

    def reversal(self):
        """The current lambda (a scalar tensor): the scheduled strength at the layer's step count."""
        if not self.ramp_steps:
            return ops.convert_to_tensor(self.strength, dtype="float32")
        progress = ops.minimum(self.step / float(self.ramp_steps), 1.0)
        return self.strength * (2.0 / (1.0 + ops.exp(-self.gamma * progress)) - 1.0)

    def call(self, inputs, training=False):
        strength = ops.cast(self.reversal(), inputs.dtype)
        if training and self.ramp_steps:
            self.step.assign(self.step + 1.0)
        held = ops.stop_gradient(inputs)
        return held + (-strength) * (inputs - held)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "strength": self.strength, "ramp_steps": self.ramp_steps, "gamma": self.gamma}
