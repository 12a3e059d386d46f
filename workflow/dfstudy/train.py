"""Train one detector: an architecture, a training set and a strategy (original, transfer or merge; or
adversarial, beyond the study: ``dfstudy.adversarial``).

Adam (beta 0.9/0.999) on binary cross-entropy or mean squared error, one epoch per ``fit`` call over the in-memory uint8 split
arrays; the best epoch by validation accuracy is kept, not the last. A killed job rerun with the same
arguments resumes after the last finished epoch and ends with the same weights as an uninterrupted run.

Why one ``fit`` per epoch and our own checkpoint rather than one ``fit`` with ``BackupAndRestore``: the
backup (``save_weights``) leaves out the dropout seed states, so a resumed run draws other dropout masks;
and within one ``fit`` Keras builds the next epoch's iterator (TensorFlow starts prefetching it) before
any epoch-begin hook runs, so an order that depends on the epoch cannot be set safely.

Run as ``python -m dfstudy.train --arch MesoNet --trainset CELEB --strategy original --train ... --val ...
--out results/models/CELEB/MesoNet/original.keras --workdir results/checkpoints/CELEB/MesoNet/original``.
"""

import argparse
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from dfstudy import adversarial as dann
from dfstudy import device, models
from dfstudy.batches import VALIDATION_WORKERS, Batches, epoch_order
from dfstudy.models import registry

LOG = logging.getLogger("dfstudy.train")  # not __name__: that is "__main__" under python -m
STRATEGIES = ("original", "transfer", "merge", "adversarial")  # the study's three, then one beyond it
DOMAIN_COLUMNS = ["domain_loss", "domain_accuracy"]  # adversarial: the domain classifier, per epoch
# adversarial fine-tuning: DANN's reversal schedule and an equal-weight domain loss (paper 001 states none)
ADVERSARIAL_DEFAULTS = {"strength": 1.0, "schedule": "dann", "gamma": 10.0, "domain_weight": 1.0}
HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"]
BACKUP_EVERY_S = 60  # a kill costs at most this much training, plus the epoch under way
TRUNK_CACHE_BYTES = 4 * 2**30  # transfer keeps its frozen trunk's outputs in memory up to this size


def configure_backend(threads=None, deterministic=True):
    """Cap CPU threads and make ops deterministic; only TensorFlow needs (or has) these switches.

    This is the one place dfstudy touches ``tf`` in training: TensorFlow picks its own thread pools (all
    cores, not the ones Snakemake gave the job) and by default allows nondeterministic kernels. JAX on CPU
    is deterministic already. Call before any model is built: TensorFlow fixes its thread pools on first use.
    """
    if keras.config.backend() != "tensorflow":
        return
    import tensorflow as tf

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError as err:  # TF refuses once its runtime is initialised (e.g. main() in a test)
            LOG.warning("could not cap TensorFlow threads: %s", err)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def fingerprint(array):
    """First 16 hex digits of the sha256 of an array's bytes (identifies the exact training data)."""
    return hashlib.sha256(memoryview(np.ascontiguousarray(array)).cast("B")).hexdigest()[:16]


def recalibrate_batchnorm(model, images, batch_size=128, max_images=2048):
    """Re-estimate the moving statistics of every trainable BatchNormalization on `images`, dropout off.

    Why: a BatchNormalization after dropout is fitted to activations computed *with* dropout noise; at
    inference dropout is off and those activations have another variance (Li et al., 2019, "variance
    shift"), and the moving averages also lag weights that are still moving (Wu & Johnson, 2021, "precise
    BN"). ShallowNet has dropout after every conv and a BatchNormalization after ``fc1``: trained on the
    demo's few hundred images its inference-mode output collapses to one class while its training
    accuracy climbs. Statistics measured with dropout off are the ones inference needs.

    Each layer's statistics are the mean over chunks of `batch_size` images (in training mode, so a layer
    sees inputs normalised by the statistics of the chunk, as in training), from up to `max_images`
    images spread evenly over `images`. Frozen layers (transfer) are left as they are; so are the
    dropout seed states (no dropout mask is drawn), which keeps a resumed run identical to a whole one.
    """
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]
    if not norms:
        return
    drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    momenta, rates = [layer.momentum for layer in norms], [layer.rate for layer in drops]
    rows = np.unique(np.linspace(0, len(images) - 1, min(len(images), max_images)).round().astype(int))
    seen = 0
    try:
        for layer in drops:
            layer.rate = 0.0
        for start in range(0, len(rows), batch_size):
            chunk = images[rows[start : start + batch_size]]
            for layer in norms:  # moving = (seen * moving + n * chunk) / (seen + n): a running mean
                layer.momentum = seen / (seen + len(chunk))
            model(chunk, training=True)
            seen += len(chunk)
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum
        for layer, rate in zip(drops, rates):
            layer.rate = rate


def freeze_all_but(model, names):
    """Freeze every layer except `names` (frozen BatchNormalization runs in inference mode)."""
    missing = sorted(set(names) - {layer.name for layer in model.layers})
    if missing:
        raise ValueError(f"Layers {missing} not in model {model.name!r}")
    for layer in model.layers:
        layer.trainable = layer.name in names
    return model


def frozen_trunk(model):
    """``(trunk, head)``: `model` split before its first layer that trains or draws random numbers, or None.

    Under transfer the layers before that one are frozen and deterministic (a frozen BatchNormalization
    runs on its moving statistics, and there is no dropout among them), so the trunk gives an image the
    same output in every epoch: it can be computed once and the head trained on it, which is the same
    training at a fraction of the cost (XceptionNet's trunk is 4 of the 4.1 s of a demo transfer epoch).
    None where no such split exists: no layer with weights comes before that one, or a connection crosses
    the cut (EfficientNet's stochastic depth drops whole blocks from its second block on).
    """
    for index, layer in enumerate(model.layers):
        if layer.trainable_weights or getattr(layer, "seed_generator", None) is not None:
            break
    else:
        return None
    cut = layer.input
    if not any(before.weights for before in model.layers[:index]) or not isinstance(cut, keras.KerasTensor):
        return None  # nothing frozen before the cut, or a layer with several inputs there
    try:
        head = keras.Model(cut, model.outputs[0], name=f"{model.name}_head")
    except ValueError:  # the head needs a tensor from before the cut (a skip connection)
        return None
    return keras.Model(model.inputs[0], cut, name=f"{model.name}_trunk"), head


def _start_from(model, init_model, strategy, trainable_layers):
    """Apply the strategy to a freshly built `model`; `init_model` is only read."""
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    if strategy == "original":
        if init_model is not None or trainable_layers:
            raise ValueError("strategy 'original' trains from scratch: pass no init_model / trainable_layers")
        return model
    if init_model is None:
        raise ValueError(f"strategy {strategy!r} starts from a trained detector: pass init_model")
    if init_model.name != model.name or tuple(init_model.input_shape) != tuple(model.input_shape):
        raise ValueError(
            f"init_model is {init_model.name} {init_model.input_shape}, expected {model.name} {model.input_shape}"
        )
    model.set_weights(init_model.get_weights())
    if strategy == "transfer":
        return freeze_all_but(model, trainable_layers or models.transfer_layers(models.architecture_of(model)))
    if trainable_layers:
        raise ValueError(f"strategy {strategy!r} trains every layer: pass no trainable_layers")
    return model


def _build_state(model, batch, optimizer=True):
    """Create the compiled loss' and metrics' state, and the optimizer's variables, from one batch, eagerly.

    Why: under TensorFlow, Keras creates them while it traces the first training step, and a
    ``tf.function`` that creates variables is traced twice; building them first halves the first epoch's
    tracing (EfficientNet 21 s -> 11 s, XceptionNet 15 s -> 8 s on the 2-core CPU). Nothing a training
    reads changes: the model runs in inference mode (no dropout draw, no BatchNormalization update) and the
    metrics are reset. ``optimizer=False`` for a model compiled only to be validated.
    """
    x, y = batch
    y_pred = model(x, training=False)
    if optimizer:
        model.optimizer.build(model.trainable_variables)
    model.compute_loss(x, y, y_pred)
    model.compute_metrics(x, y, y_pred, sample_weight=None)
    model.reset_metrics()


class _Checkpoint:
    """Per-epoch training state in `directory`: every model variable (weights, BN statistics and the
    dropout seed states), every optimizer variable, and the history so far.

    ``model.save_weights`` (and so ``BackupAndRestore``) leaves out the dropout seed states, which makes a
    resumed run diverge from an uninterrupted one; this keeps all of them. Files are written to a
    temporary name and renamed, so a kill mid-write leaves the previous epoch's state intact.
    """

    def __init__(self, directory, run_key):
        self.directory, self.run_key = Path(directory), run_key
        self.arrays, self.state = self.directory / "state.npz", self.directory / "state.json"

    def resumable(self):
        """Whether a backup of this very run is there to resume from."""
        return self.state.exists() and json.loads(self.state.read_text())["run_key"] == self.run_key

    def load(self, model):
        """Restore into `model` (compiled); returns the history rows so far, [] when there is nothing to resume."""
        if not self.state.exists():
            return []
        state = json.loads(self.state.read_text())
        if state["run_key"] != self.run_key:
            LOG.warning("checkpoint in %s is from a different run; starting over", self.directory)
            self.clear()
            return []
        model.optimizer.build(model.trainable_variables)
        variables = list(model.variables) + list(model.optimizer.variables)
        with np.load(self.arrays) as stored:
            if len(stored.files) != len(variables):
                raise ValueError(f"{self.arrays} holds {len(stored.files)} variables, model has {len(variables)}")
            for i, variable in enumerate(variables):
                variable.assign(stored[f"v{i}"])
        return state["history"]

    def save(self, model, history):
        self.directory.mkdir(parents=True, exist_ok=True)
        variables = list(model.variables) + list(model.optimizer.variables)
        tmp = self.directory / "state.tmp.npz"
        np.savez(tmp, **{f"v{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(variables)})
        os.replace(tmp, self.arrays)
        tmp = self.directory / "state.tmp.json"
        tmp.write_text(json.dumps({"run_key": self.run_key, "history": history}, indent=1))
        os.replace(tmp, self.state)

    def clear(self):
        shutil.rmtree(self.directory, ignore_errors=True)


class _Best:
    """The best epoch so far: its weights in memory, written to `path` only when a backup or the end needs them.

    Why not save at every improvement: a demo detector improves on most of its early epochs, and each save
    writes the whole model with its optimizer state (XceptionNet: 250 MB in 1.4-2 s, a seventh of its demo
    epoch). Written before each backup, the file holds the best of the epochs that backup restores, so a
    resumed run stays exact.
    """

    def __init__(self, path, val_accuracy):
        self.path, self.val_accuracy, self.weights = Path(path), val_accuracy, None

    def offer(self, model, val_accuracy):
        """Keep `model`'s weights if `val_accuracy` beats every earlier epoch (a tie keeps the earlier)."""
        if val_accuracy > self.val_accuracy:
            self.val_accuracy = val_accuracy
            self.weights = model.get_weights()  # copies (Variable.numpy is np.array): training goes on apart

    def write(self, model):
        """Save the kept weights in `model`'s form to `path`, leaving `model`'s own weights as they are."""
        if self.weights is None:
            return  # nothing newer than the file
        current = model.get_weights()
        model.set_weights(self.weights)
        model.save(self.path)
        model.set_weights(current)
        self.weights = None


class _BatchProgress(keras.callbacks.Callback):
    """A tqdm bar over the batches of an epoch (silent when stderr is not a terminal, e.g. Snakemake logs)."""

    def __init__(self, total, desc):
        super().__init__()
        self.total, self.desc, self.bar = total, desc, None

    def on_train_begin(self, logs=None):
        self.bar = tqdm(total=self.total, desc=self.desc, unit="batch", leave=False, disable=None)

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()


def _count(weights):
    return int(sum(math.prod(w.shape) for w in weights))


def train_detector(
    model,
    train,
    val,
    epochs,
    learning_rate,
    batch_size,
    seed,
    workdir,
    strategy="original",
    trainable_layers=None,
    init_model=None,
    log=LOG,
    trainset=None,
    callbacks=(),
    bn_momentum=None,
    recalibrate_bn=False,
    loss="binary_crossentropy",
    patience=None,
    backup_every=BACKUP_EVERY_S,
    adversarial=None,
    pretrain=None,
    cache_trunk=True,
):
    """Train `model` under `strategy` and return its best epoch by validation accuracy.

    Parameters
    ----------
    model : keras.Model
        Freshly built by ``dfstudy.models.build`` (build it after ``keras.utils.set_random_seed(seed)``
        for a reproducible initialisation).
    train, val : dict
        ``images`` uint8 (N, S, S, 3) and ``labels`` (N,), 1 = fake, as in the split ``.npz`` files; for
        the adversarial strategy `train` also holds ``domains`` (N,): 0 = the training set's own image,
        1 = a fine-tuning set's (:func:`dfstudy.adversarial.domain_labels`).
    epochs : int
        Total epochs, counting those done before a resume.
    learning_rate : float
    batch_size : int
    seed : int
        Seeds Keras (dropout) and the per-epoch training order, which depends on (seed, epoch) only.
    workdir : path
        Holds ``best.keras`` (the best epoch as of the last backup), ``history.csv`` (so far) and
        ``backup/`` (state to resume from); both are removed when training completes. Rerunning with the
        same arguments after a kill resumes after the last backed-up epoch; a backup from different
        arguments or data is discarded.
    strategy : {"original", "transfer", "merge", "adversarial"}
        original: from scratch. transfer: start from `init_model`'s weights with every layer frozen except
        `trainable_layers`. merge: start from `init_model`'s weights, every layer trainable. adversarial
        (beyond the study): as merge, with a domain classifier behind a gradient reversal trained
        alongside (:mod:`dfstudy.adversarial`); the returned model is the plain detector.
    trainable_layers : sequence of str, optional
        For transfer; defaults to the architecture's TRANSFER_LAYERS.
    init_model : keras.Model, optional
        The trained original detector (transfer, merge); only read.
    log : logging.Logger
    trainset : str, optional
        Name recorded in the card.
    callbacks : sequence of keras.callbacks.Callback
        Extra callbacks for every epoch's ``fit``.
    bn_momentum : float, optional
        Momentum of every BatchNormalization's moving statistics (default: the architecture's, 0.99 in
        Keras). With only a few hundred steps (the demo) 0.99 leaves the moving statistics far from the
        batch statistics, and inference-mode outputs collapse to a constant; 0.9 converges in ~50 steps.
    recalibrate_bn : bool
        After every epoch, before validation, re-estimate BatchNormalization statistics on the training
        images with dropout off (:func:`recalibrate_batchnorm`).
    loss : {"binary_crossentropy", "mean_squared_error"}
        Training loss on the sigmoid output (the study's code: mean squared error for MesoNet and
        MesoInception, binary cross-entropy for the others).
    patience : int, optional
        Stop once this many epochs in a row have not raised the best validation accuracy (None: run every
        epoch, as the study). Only the best epoch is kept, so the epochs after it change nothing kept;
        the decision reads the history, which a resumed run restores, so resume stays exact.
    backup_every : float
        Seconds of training between two backups (0: after every epoch). An XceptionNet backup is ~250 MB;
        after short epochs (the demo's) rewriting it every epoch costs a tenth of the training. A killed
        run resumes from its last backup and recomputes the epochs after it, to the same result.
    adversarial : dict, optional
        For the adversarial strategy, any of :data:`ADVERSARIAL_DEFAULTS`' keys: ``strength`` (lambda, or
        its final value under a schedule), ``schedule`` ("dann": DANN's ramp from 0 over the whole
        fine-tune; "constant"), ``gamma`` (the ramp's steepness) and ``domain_weight`` (the domain loss'
        weight next to the fake loss, 1).
    pretrain : dict, optional
        ``epochs``, ``learning_rate`` and ``batch_size`` of the architecture's pretraining hook (the
        registry's ``pretrain``, e.g. PixelAnomaly's pixel model on the real training images), run for
        the original strategy before epoch 1; required where there is a hook. The registry's
        ``frozen_layers`` stay frozen under every strategy. A resumed run takes the pretrained weights
        from its backup instead of fitting them again.
    cache_trunk : bool
        Under transfer, compute the frozen trunk's outputs once (:func:`frozen_trunk`) and train the head
        on them, where the outputs fit in ``TRUNK_CACHE_BYTES``; False runs the whole model every epoch.

    Returns
    -------
    best_model : keras.Model
        The best epoch's model, not compiled (no optimizer state).
    history : pandas.DataFrame
        One row per epoch: epoch (1-based), loss, accuracy, val_loss, val_accuracy, seconds.
    card : dict
        What was trained on what, how, and how well (see ``main`` for the JSON sidecar).
    """
    arch = models.architecture_of(model)
    record = registry.get(arch)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model = _start_from(model, init_model, strategy, trainable_layers)
    # layers the architecture never trains on the detector's data, whatever the strategy (merge included)
    for name in record.frozen_layers:
        model.get_layer(name).trainable = False
    hook = record.pretrain_function() if strategy == "original" else None
    if hook is not None and not pretrain:
        raise ValueError(f"{arch} fits {', '.join(record.frozen_layers)} before training: pass pretrain "
                         "(epochs, learning_rate, batch_size)")
    if bn_momentum is not None:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = bn_momentum
    settings = {**ADVERSARIAL_DEFAULTS, **(adversarial or {})} if strategy == "adversarial" else None
    fingerprints = {"train": fingerprint(train["images"]), "val": fingerprint(val["images"])}
    init_weights = [] if init_model is None else init_model.weights
    run_key = {  # a backup from a run that differs in any of these is not resumed
        "architecture": arch,
        "strategy": strategy,
        "trainable": sorted(layer.name for layer in model.layers if layer.trainable),
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "seed": seed,
        "bn_momentum": bn_momentum,
        "recalibrate_bn": recalibrate_bn,
        "loss": loss,
        "patience": patience,
        "data": fingerprints,
        "init": [fingerprint(keras.ops.convert_to_numpy(w)) for w in init_weights],
    }
    if settings:  # only here, so the other strategies' backups keep their keys
        run_key |= {"adversarial": settings, "domains": fingerprint(np.asarray(train["domains"], "float32"))}
    if hook is not None:  # likewise
        run_key["pretrain"] = pretrain
    net, x_train, x_val = model, train["images"], val["images"]  # what is fitted and validated, on what
    split = frozen_trunk(model) if strategy == "transfer" and cache_trunk else None
    if split and _fits_in_memory(split[0], len(x_train) + len(x_val)):
        trunk, net = split
        x_train, x_val = (trunk.predict(x, batch_size=batch_size, verbose=0) for x in (x_train, x_val))
        run_key["trunk"] = net.layers[1].name  # the head's first layer; a backup of the head resumes only a head
        log.info("frozen trunk computed once: the head (%s) trains on its outputs %s",
                 ", ".join(layer.name for layer in net.layers[1:]), x_train.shape[1:])
    columns = HISTORY_COLUMNS + (DOMAIN_COLUMNS if settings else [])
    checkpoint = _Checkpoint(workdir / "backup", run_key)
    pretrained = None
    if hook is not None:  # before compiling: the hook trains layers that stay frozen from then on
        pretrained = _pretrain(model, hook, train, seed, pretrain, workdir / "pretrain.json", checkpoint, log)
    # dropout's seeds were drawn when the model was built; this covers any other draw during training
    keras.utils.set_random_seed(seed)
    optimizer = keras.optimizers.Adam(learning_rate, beta_1=0.9, beta_2=0.999)
    if settings:
        ramp = dann.ramp_steps(len(train["images"]), batch_size, epochs) if settings["schedule"] == "dann" else None
        fit_model = dann.with_domain_branch(model, settings["strength"], ramp, settings["gamma"])
        fit_model.compile(optimizer=optimizer, loss=[loss, "binary_crossentropy"],
                          loss_weights=[1.0, settings["domain_weight"]], metrics=[["accuracy"], ["accuracy"]])
        model.compile(loss=loss, metrics=["accuracy"])  # validation only: the two-headed model trains it
    else:
        fit_model = net
        net.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])

    def batches_of(order):
        if settings:
            return dann.DomainBatches(train["images"], train["labels"], train["domains"], batch_size, order)
        return Batches(x_train, train["labels"], batch_size, order)

    _build_state(fit_model, batches_of(np.arange(1))[0])
    if settings:  # the detector inside the two-headed model is validated on its own
        _build_state(model, Batches(val["images"], val["labels"], 1)[0], optimizer=False)
    rows = checkpoint.load(fit_model)
    if rows:
        log.info("resuming from epoch %d (%d of %d epochs done)", len(rows) + 1, len(rows), epochs)
    kept = _Best(workdir / "best.keras", max((r["val_accuracy"] for r in rows), default=-math.inf))
    val_batches = Batches(x_val, val["labels"], batch_size, workers=VALIDATION_WORKERS)
    n_train = len(train["images"])
    stop = None
    backed_up = time.perf_counter()
    for epoch in range(len(rows), epochs):
        stop = _why_stop(rows, patience)
        if stop:
            break
        batches = batches_of(epoch_order(n_train, seed, epoch))
        progress = _BatchProgress(len(batches), f"epoch {epoch + 1}/{epochs}")
        start = time.perf_counter()
        fitted = fit_model.fit(
            batches,
            initial_epoch=epoch,
            epochs=epoch + 1,
            shuffle=False,  # the order is ours; fit's own shuffle uses Python's global RNG, which no resume restores
            verbose=0,
            callbacks=[progress, *callbacks],
        )
        if recalibrate_bn:
            recalibrate_batchnorm(net, x_train)
        # validated here, not by fit: fit validates before any epoch-end hook could recalibrate
        scores = net.evaluate(val_batches, verbose=0, return_dict=True)
        row = {"loss": fitted.history["loss"][-1], "accuracy": _last(fitted.history, "accuracy", "fake_prob"),
               "val_loss": scores["loss"], "val_accuracy": scores["accuracy"]}
        row = {k: float(v) for k, v in row.items()}
        kept.offer(model, row["val_accuracy"])
        rows.append({"epoch": epoch + 1, **row, "seconds": time.perf_counter() - start})
        if settings:  # loss above is the sum of both heads' losses; the domain head's own, for the record
            rows[-1] |= {"domain_loss": _last(fitted.history, "loss", dann.DOMAIN_OUTPUT),
                         "domain_accuracy": _last(fitted.history, "accuracy", dann.DOMAIN_OUTPUT)}
        another = epoch + 1 < epochs and not _why_stop(rows, patience)  # a last epoch's backup is never read
        if another and time.perf_counter() - backed_up >= backup_every:
            kept.write(model)  # first: a resume from this backup finds its best epoch on disk
            checkpoint.save(fit_model, rows)
            backed_up = time.perf_counter()
        pd.DataFrame(rows, columns=columns).to_csv(workdir / "history.csv", index=False)  # to watch
        log.info(
            "epoch %d/%d: loss %.4f acc %.4f val_loss %.4f val_acc %.4f (%.1f s)%s",
            epoch + 1, epochs, *row.values(), rows[-1]["seconds"],
            f" domain acc {rows[-1]['domain_accuracy']:.4f}" if settings else "",
        )
    history = pd.DataFrame(rows, columns=columns)
    if stop:
        log.info("stopped after epoch %d of %d: %s", len(rows), epochs, stop)
    kept.write(model)
    if not kept.path.exists():
        raise RuntimeError(f"no best checkpoint in {workdir}: did any epoch run (epochs={epochs})?")
    best_model = keras.saving.load_model(kept.path, compile=False)
    best = history.loc[history["val_accuracy"].idxmax()]
    card = {
        "architecture": arch,
        "trainset": trainset,
        "strategy": strategy,
        "epochs": int(epochs),
        "epochs_run": len(rows),
        "patience": patience,
        "stopped_early": stop,
        "best_epoch": int(best["epoch"]),
        "val_accuracy": float(best["val_accuracy"]),
        "trainable_layers": run_key["trainable"] if strategy == "transfer" or record.frozen_layers else "all",
        "frozen_layers": list(record.frozen_layers),
        "pretrain": None if hook is None else {**pretrain, **(pretrained or {})},
        "trainable_params": _count(model.trainable_weights),
        "non_trainable_params": _count(model.non_trainable_weights),
        "train_images": n_train,
        "val_images": len(val["images"]),
        "train_sha256": fingerprints["train"],
        "val_sha256": fingerprints["val"],
        **device.runtime(),  # backend, and the device it computed on
        "keras_version": keras.__version__,
        "dtype_policy": keras.config.dtype_policy().name,
        "wall_time_s": round(float(history["seconds"].sum()), 1),
        "seed": int(seed),
        "learning_rate": float(learning_rate),
        "batch_size": int(batch_size),
        "bn_momentum": bn_momentum,
        "recalibrate_bn": bool(recalibrate_bn),
        "loss": loss,
        "image_size": int(train["images"].shape[1]),
        **({"head_trained_on_trunk_outputs_from": run_key["trunk"]} if "trunk" in run_key else {}),
        **({"adversarial": settings, "target_domain_images": int(np.sum(train["domains"]))} if settings else {}),
    }
    checkpoint.clear()  # finished: a rerun should train afresh, not "resume" a completed run
    kept.path.unlink()  # the caller has the model; the file was only for a resume
    return best_model, history, card


def _fits_in_memory(trunk, n_images):
    size = n_images * math.prod(trunk.output.shape[1:]) * 4  # float32
    if size > TRUNK_CACHE_BYTES:
        LOG.info("frozen trunk's outputs would take %.1f GB: the whole model runs every epoch", size / 2**30)
    return size <= TRUNK_CACHE_BYTES


def _pretrain(model, hook, train, seed, options, summary_path, checkpoint, log):
    """Run the architecture's pretraining hook unless a backup of this run holds its result already;
    returns the hook's summary (read back from `summary_path` on a resume)."""
    if checkpoint.resumable() and summary_path.exists():
        return json.loads(summary_path.read_text())  # the backup restores the fitted weights with the rest
    log.info("pretraining %s (%s)", ", ".join(layer.name for layer in model.layers if not layer.trainable) or "-",
             ", ".join(f"{k} {v}" for k, v in options.items()))
    summary = hook(model, train["images"], train["labels"], seed=seed, **options)
    log.info("pretrained: %s", summary)
    summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _why_stop(rows, patience):
    """Why no further epoch should run after `rows` (None: run on).

    Only an epoch with a strictly higher validation accuracy replaces the kept one, so once an epoch
    reaches 1.0 no later epoch can change what training returns: stopping there is exact, whatever the
    patience (the study's own runs kept the same model). Patience (a demo setting) stops once the last
    ``patience`` epochs all fell short of the best before them. Both read only the history, which a
    resumed run restores, so resume stays exact.
    """
    if rows and max(r["val_accuracy"] for r in rows) >= 1.0:
        return "validation accuracy 1.0: no later epoch can replace the kept one"
    if not patience or len(rows) <= patience:
        return None
    before = max(r["val_accuracy"] for r in rows[:-patience])
    if all(r["val_accuracy"] <= before for r in rows[-patience:]):
        return f"no better validation accuracy in {patience} epochs"
    return None


def _last(history, metric, output):
    """The last epoch's `metric` from a ``fit`` history: Keras names an output's own metric after it when
    a model has several outputs (``fake_prob_accuracy``), and plainly when it has one."""
    return history[f"{output}_{metric}" if f"{output}_{metric}" in history else metric][-1]


def load_split(path):
    """The ``images`` and ``labels`` arrays of a split ``.npz`` file, and ``datasets`` (the set each image
    was drawn for) where the file has it."""
    with np.load(path) as split:
        arrays = {"images": split["images"], "labels": split["labels"]}
        if "datasets" in split.files:
            arrays["datasets"] = split["datasets"]
        return arrays


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="dfstudy train", description=__doc__.split("\n")[0])
    p.add_argument("--arch", required=True, help=f"registered architecture ({', '.join(models.names())}, or a plugin's)")
    p.add_argument("--trainset", required=True, help="training-set name recorded in the card (CELEB, F2F)")
    p.add_argument("--strategy", default="original", choices=STRATEGIES)
    p.add_argument("--train", required=True, type=Path, help="split .npz to train on")
    p.add_argument("--val", required=True, type=Path, help="split .npz that picks the best epoch")
    p.add_argument("--out", required=True, type=Path, help="best model, .keras")
    p.add_argument("--card", type=Path, help="card JSON (default: --out with .json)")
    p.add_argument("--history", type=Path, help="per-epoch CSV (default: <out stem>_history.csv)")
    p.add_argument("--workdir", required=True, type=Path, help="checkpoints; rerun with the same one to resume")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--backup-every", type=float, default=BACKUP_EVERY_S,
                   help="seconds of training between two resumable backups (0: every epoch)")
    p.add_argument("--patience", type=int, help="stop after this many epochs without a better val accuracy")
    p.add_argument("--loss", default="binary_crossentropy", choices=["binary_crossentropy", "mean_squared_error"])
    p.add_argument("--threads", type=int, default=None, help="CPU threads (TensorFlow backend)")
    p.add_argument("--init", type=Path, help="trained original detector (.keras) for transfer / merge; read only")
    p.add_argument("--trainable-layers", help="comma-separated layers trained under transfer")
    p.add_argument("--reversal-strength", type=float, default=ADVERSARIAL_DEFAULTS["strength"],
                   help="adversarial: gradient reversal lambda (its final value under --reversal-schedule dann)")
    p.add_argument("--reversal-schedule", choices=["dann", "constant"], default=ADVERSARIAL_DEFAULTS["schedule"],
                   help="adversarial: ramp lambda up as DANN does, or hold it constant")
    p.add_argument("--reversal-gamma", type=float, default=ADVERSARIAL_DEFAULTS["gamma"],
                   help="adversarial: steepness of DANN's ramp")
    p.add_argument("--domain-weight", type=float, default=ADVERSARIAL_DEFAULTS["domain_weight"],
                   help="adversarial: weight of the domain loss next to the fake loss")
    p.add_argument("--pretrain-epochs", type=int, help="epochs of the architecture's pretraining (PixelAnomaly)")
    p.add_argument("--pretrain-lr", type=float, default=1e-3, help="learning rate of the pretraining")
    p.add_argument("--pretrain-batch-size", type=int, default=16, help="batch size of the pretraining")
    p.add_argument("--weights", choices=["imagenet"], help="published backbone weights (XceptionNet, EfficientNet)")
    p.add_argument("--mixed-precision", action="store_true", help="mixed_float16 policy (on a GPU only)")
    device.add_arguments(p)
    registry.add_arguments(p)
    p.add_argument("--bn-momentum", type=float, help="momentum of BatchNormalization moving statistics")
    p.add_argument(
        "--recalibrate-bn", action="store_true",
        help="re-estimate BatchNormalization statistics with dropout off after every epoch",
    )
    p.add_argument(
        "--no-determinism", dest="deterministic", action="store_false",
        help="allow nondeterministic (faster) TensorFlow kernels",
    )
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    registry.load_plugins(args.plugins)
    registry.get(args.arch)  # an unknown name fails before the data loads, listing the registered ones
    configure_backend(args.threads, args.deterministic)
    on = device.announce(args.require_gpu, LOG)
    if args.mixed_precision and on["device"] == "cpu":  # float16 has no fast CPU kernels: it would only slow down
        LOG.warning("--mixed-precision ignored: no GPU, training in float32")
    elif args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    train, val = load_split(args.train), load_split(args.val)
    LOG.info("%s %s %s: %d train, %d val images of %s", args.arch, args.trainset, args.strategy,
             len(train["images"]), len(val["images"]), train["images"].shape[1:])
    keras.utils.set_random_seed(args.seed)
    # transfer and merge overwrite every weight with the original detector's: no backbone download
    weights = args.weights if args.strategy == "original" else None
    model = models.build(args.arch, train["images"].shape[1:], weights=weights)
    # after build: the architecture's module has registered its custom layers with Keras
    init_model = keras.saving.load_model(args.init, compile=False) if args.init else None
    trainable = args.trainable_layers.split(",") if args.trainable_layers else None
    settings = None
    if args.strategy == "adversarial":
        if "datasets" not in train:
            sys.exit(f"{args.train} has no datasets array (packed before it existed): rerun make_splits and pack_split")
        train["domains"] = dann.domain_labels(train["datasets"], args.trainset)
        settings = {"strength": args.reversal_strength, "schedule": args.reversal_schedule,
                    "gamma": args.reversal_gamma, "domain_weight": args.domain_weight}
        LOG.info("domains: %d images of %s, %d of the fine-tuning sets", int((train["domains"] == 0).sum()),
                 args.trainset, int(train["domains"].sum()))
    best, history, card = train_detector(
        model, train, val, args.epochs, args.lr, args.batch_size, args.seed, args.workdir,
        strategy=args.strategy, trainable_layers=trainable, init_model=init_model, trainset=args.trainset,
        bn_momentum=args.bn_momentum, recalibrate_bn=args.recalibrate_bn, loss=args.loss,
        patience=args.patience, backup_every=args.backup_every, adversarial=settings,
        pretrain=args.pretrain_epochs and {"epochs": args.pretrain_epochs, "learning_rate": args.pretrain_lr,
                                           "batch_size": args.pretrain_batch_size},
    )
    card_path = args.card or args.out.with_suffix(".json")
    history_path = args.history or args.out.with_name(f"{args.out.stem}_history.csv")
    for path in (args.out, card_path, history_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    best.save(args.out)
    history.to_csv(history_path, index=False)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    LOG.info("best epoch %d, val_accuracy %.4f -> %s", card["best_epoch"], card["val_accuracy"], args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
