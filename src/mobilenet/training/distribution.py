"""Training on several devices and machines: strategies, the chief, sharding, BatchNorm.

Everything `train` needs to know about a ``tf.distribute`` strategy or a Keras
``DataParallel`` distribution: whether this backend can use it, which process
writes the files (the chief), which share of a file dataset this worker reads,
and which BatchNorms to synchronise.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import keras

from mobilenet._keras_compat import flatten_layers
from mobilenet._validation import invalid

__all__ = [
    "STRATEGIES",
    "RestoreOnly",
    "check_even_batches",
    "check_strategy",
    "fit_scope",
    "free_ports",
    "is_chief",
    "is_keras_distribution",
    "is_multi_worker",
    "make_strategy",
    "needs_synchronized_batch_norm",
    "synchronize_batch_norm",
    "worker_shard",
]

#: The names `make_strategy` accepts.
STRATEGIES = ("default", "mirrored", "multi-worker", "tpu")


def is_keras_distribution(strategy: Any) -> bool:
    return isinstance(strategy, keras.distribution.DataParallel)


def check_strategy(strategy: Any) -> None:
    """Rejects a strategy that this backend cannot train with, before any work."""
    if strategy is None:
        return
    backend = keras.backend.backend()
    if is_keras_distribution(strategy):
        if backend != "jax":
            raise invalid(
                "strategy", "a tf.distribute.Strategy on the TensorFlow backend (Keras "
                "trains with a keras.distribution only on the JAX backend)", strategy,
                shown=f"strategy={strategy!r} with KERAS_BACKEND={backend!r}",
            )
        # JAX's own count: DataParallel has no public one before Keras 3.15.
        import jax

        processes = jax.process_count()
        if processes > 1:
            raise invalid(
                "strategy", "a keras.distribution.DataParallel over the devices of one "
                "process (train does not run several JAX processes)", strategy,
                shown=f"strategy={strategy!r} over {processes} processes",
            )
        return
    if not hasattr(strategy, "scope"):
        raise invalid(
            "strategy", "None, a tf.distribute.Strategy (see make_strategy) or, on the "
            "JAX backend, a keras.distribution.DataParallel", strategy,
        )
    if backend != "tensorflow":
        raise invalid(
            "strategy", "a keras.distribution.DataParallel on the "
            f"{backend} backend (a tf.distribute strategy needs KERAS_BACKEND=tensorflow)",
            strategy, shown=f"strategy={strategy!r} with KERAS_BACKEND={backend!r}",
        )


def check_even_batches(
    strategy: Any, argument: str, count: int, batch_size: int, what: str, drop_remainder: bool = False,
) -> None:
    """Under ``DataParallel``, refuses batches that do not split evenly over the devices.

    JAX shards each batch over the devices along its first axis, and a batch
    that does not divide (an epoch's short last batch, say) fails in the
    middle of ``fit``, after the compilation; here it fails before any work.
    """
    if not is_keras_distribution(strategy):
        return
    # DataParallel's mesh is one axis of devices (num_model_replicas, its own
    # count, is new in Keras 3.15).
    devices = strategy.device_mesh.devices.size
    sizes = {batch_size} if count >= batch_size else set()
    if not drop_remainder:
        sizes |= {count % batch_size} - {0}
    uneven = sorted(size for size in sizes if size % devices)
    if uneven:
        raise invalid(
            argument, f"batches that split evenly over the {devices} devices of the "
            "DataParallel strategy", None,
            shown=f"{count} {what} in batches of {batch_size}, which makes a batch of {uneven[0]}",
        )


def is_chief(strategy: Any) -> bool:
    """Whether this process writes the run's files: worker 0, or the only process."""
    if strategy is None or is_keras_distribution(strategy):
        return True  # one process (check_strategy refuses several)
    return bool(strategy.extended.should_checkpoint)


def needs_synchronized_batch_norm(strategy: Any) -> bool:
    """Whether BatchNorm must be told to use the global batch's statistics.

    A tf.distribute strategy runs one copy of the model per replica, each
    seeing its share of the batch. Under a Keras ``DataParallel`` (JAX), XLA
    compiles one program for the global batch, sharded over the devices, so
    BatchNorm's mean and variance are already those of the global batch (and
    ``synchronized`` is a TensorFlow-only option).
    """
    return (
        strategy is not None
        and not is_keras_distribution(strategy)
        and strategy.num_replicas_in_sync > 1
    )


def fit_scope(strategy: Any) -> Any:
    """The scope ``fit`` runs in: a Keras distribution's, else none.

    A model remembers the tf.distribute strategy it was built under, so its
    ``fit`` needs no scope. A Keras distribution is global state that ``fit``
    reads while it runs (to shard each batch over the devices), so ``fit``
    runs inside its ``scope()``, which sets it and restores the previous
    one on the way out.
    """
    return strategy.scope() if is_keras_distribution(strategy) else contextlib.nullcontext()


def is_multi_worker(strategy: Any) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return False
    cluster = resolver.cluster_spec().as_dict()
    return sum(len(tasks) for tasks in cluster.values()) > 1


def synchronize_batch_norm(model: keras.Model) -> None:
    """Makes every BatchNorm of ``model`` normalise with the statistics of the global batch.

    Keras 3 keeps a BatchNorm's moving statistics in mirrored variables that
    each replica updates with its own share of the batch, so replicas (workers)
    drift apart, and the model the chief saves is not the one the other
    workers evaluate with. Synchronised, every replica sees the statistics of
    the whole global batch, as one process training at that batch size would.
    """
    for layer in flatten_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True


class RestoreOnly(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` that restores the backup at the start but never writes or deletes it.

    Keras 3's ``BackupAndRestore`` has no multi-worker mode: every worker would
    write the same files (and h5py's file lock makes the second writer fail).
    A non-chief worker uses this one on the chief's backup folder.
    """

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        return None

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        return None

    def on_train_end(self, logs: dict | None = None) -> None:
        return None


def make_strategy(name: str | None) -> Any:
    """A ``tf.distribute`` strategy from its command-line name.

    Args:
        name: None or "default" (no strategy: one device), "mirrored" (all
            local GPUs, or the CPU), "multi-worker" (the machines in the
            ``TF_CONFIG`` environment variable), or "tpu" (the TPU this
            machine reaches).

    Returns:
        A strategy, or None for "default".

    Example:

    ```python
    import dataclasses

    from mobilenet.datasets import load_cifar10
    from mobilenet.training import RECIPE, make_strategy, train

    (x, y), _ = load_cifar10("../shared/data/cifar10-subset")
    strategy = make_strategy("mirrored")  # every local GPU, or the CPU
    result = train((x[:64], y[:64]), output_dir="runs/gpus", strategy=strategy,
                   recipe=dataclasses.replace(RECIPE, epochs=1, alpha=0.25), verbose=0)
    ```
    """
    import tensorflow as tf

    if name in (None, "default"):
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        return _multi_worker_strategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        except ValueError as error:
            if os.environ.get("TPU_NAME"):
                raise
            raise invalid(
                "strategy", "", name, problem="no TPU was found from this machine (TensorFlow "
                "looks for the TPU of a Cloud TPU VM); name one in the TPU_NAME environment "
                "variable, as its Cloud TPU name or grpc://HOST:PORT address",
            ) from error
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise invalid("strategy", f"one of {STRATEGIES}", name)


def _multi_worker_strategy() -> Any:
    """A ``MultiWorkerMirroredStrategy`` whose ``reduce`` serves the two calls of Keras 3's ``fit``.

    With several workers, Keras 3 (up to 3.15 at least, keras-team/keras#20585)
    asks ``strategy.reduce`` for two things this strategy cannot do
    (keras/src/backend/tensorflow/trainer.py):

    - ``_maybe_symbolic_build`` averages the first input batch, a nest
      ``(images, labels)`` of per-replica values, only to learn its shapes.
      ``Strategy.reduce`` takes no nest, and an all-reduce would fail anyway
      where the workers' batches differ in size: this worker's batch serves.
    - ``reduce_per_replica`` averages each scalar log (loss, accuracy) with
      ``axis=0``, which a scalar lacks: the mean across workers is ``axis=None``.
    """
    import tensorflow as tf

    class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op: Any, value: Any, axis: Any = None) -> Any:
            if tf.nest.is_nested(value):
                return tf.nest.map_structure(lambda v: self.experimental_local_results(v)[0], value)
            if axis is not None and self.experimental_local_results(value)[0].shape.rank == 0:
                axis = None
            return super().reduce(reduce_op, value, axis)

    return MultiWorkerMirroredStrategy()


def worker_shard(strategy: Any) -> tuple[int, int]:
    """``(number of workers, this worker's index)`` of a multi-worker strategy; ``(1, 0)`` otherwise.

    A file dataset is split by these before any file is read, so that each
    worker reads only its own share.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if strategy is None or resolver is None or not is_multi_worker(strategy):
        return 1, 0
    cluster = resolver.cluster_spec().as_dict()
    workers = sum(len(cluster.get(job, ())) for job in ("chief", "worker"))
    index = int(resolver.task_id) + (1 if resolver.task_type == "worker" and "chief" in cluster else 0)
    return workers, index


def free_ports(count: int) -> list[int]:
    """``count`` TCP ports free on this machine now, for a cluster of local workers in ``TF_CONFIG``.

    Each is bound once and released, so another process may still take it
    before a worker does; tests and benchmarks that start a local
    multi-worker run use it.

    Example:

    ```python
    from mobilenet.training import free_ports

    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    ```
    """
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
