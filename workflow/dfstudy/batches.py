"""Training batches from in-memory uint8 arrays, in an order fixed per epoch (``dfstudy.train`` and
``dfstudy.adversarial`` feed Keras with these)."""

import math

import keras
import numpy as np

# Threads that gather batches, in order, for Keras' PyDataset enqueuer. Why not Keras' default single worker:
# under TensorFlow it feeds the model through tf.data's autotuned prefetching, and with another job on the
# same core (two jobs on two cores, the demo's) an epoch took almost twice as long: EfficientNet 10.3 s
# instead of 5.7 on one core of the 2-core CPU (bench/batch_feeding.py). The enqueuer turns tf.data's
# autotuning off and gives the same batches in the same order: same losses, to the last bit.
FETCH_WORKERS = 2
# Validation does without it: stopping the enqueuer waits 0.1 s for a queue that stays empty (Keras'
# OrderedEnqueuer.stop), once per fit and per evaluate, that is per epoch. A demo validation of 100 images
# beside another job: MesoNet 0.15 s instead of 0.27, EfficientNet 0.63 s either way; same scores.
VALIDATION_WORKERS = 1


class Batches(keras.utils.PyDataset):
    """Batches of an in-memory uint8 image array, in a fixed order.

    Images stay uint8 until the model's own Rescaling layer, so a batch is one gather from the array and
    a quarter of the bytes of float32 reach the device. One instance serves one epoch: the order is fixed
    at construction, so the background prefetch of the next epoch can never see a stale order.

    Parameters
    ----------
    images : ndarray, uint8 (N, S, S, 3)
    labels : ndarray (N,)
    batch_size : int
    order : ndarray of int, optional
        Rows to serve, in order (for training a permutation of range(N)); None serves all rows as stored.
    workers : int
        Threads of Keras' enqueuer (``FETCH_WORKERS``); 1: Keras' default feeding, without an enqueuer.
    """

    def __init__(self, images, labels, batch_size, order=None, workers=FETCH_WORKERS):
        super().__init__(workers=workers)
        self.images, self.batch_size, self.order = images, batch_size, order
        self.labels = np.asarray(labels, dtype="float32").reshape(-1, 1)
        self.rows = len(images) if order is None else len(order)

    def __len__(self):
        return math.ceil(self.rows / self.batch_size)

    def rows_of(self, index):
        """The rows (a slice, or indices into the arrays) of batch `index`."""
        window = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return window if self.order is None else self.order[window]

    def __getitem__(self, index):
        rows = self.rows_of(index)
        return self.images[rows], self.labels[rows]


def epoch_order(n, seed, epoch):
    """The training order of epoch `epoch` (0-based): a function of (seed, epoch) only, so resume is exact."""
    return np.random.default_rng([seed, epoch]).permutation(n)
