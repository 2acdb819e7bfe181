"""Train a tiny model under a tf.distribute strategy with the loggers; run as a subprocess.

``python -m tests.distribute_run mirrored LOG_DIR`` or ``... multiworker LOG_DIR [DIE_AT_EPOCH]``
(with ``TF_CONFIG`` set by the caller; worker 1 exits at once as epoch ``DIE_AT_EPOCH`` begins, as
a crashed worker would). Prints one JSON line with what the test compares.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf


def main(kind: str, log_dir: str, die_at_epoch: int = -1) -> None:
    if kind == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        strategy: tf.distribute.Strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    else:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()

    import keras
    from sklearn.datasets import load_digits

    import vizcallbacks as vc
    from tests import models

    keras.utils.set_random_seed(0)
    keras.config.disable_traceback_filtering()
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32").repeat(2, 1).repeat(2, 2)[..., None][:64]
    y = digits.target[:64]
    with strategy.scope():
        model = models.compiled(models.functional())
        model.optimizer.build(model.trainable_variables)
    writers: list = [vc.TensorBoardWriter(log_dir)]
    if os.environ.get("MLFLOW_TRACKING_URI"):
        writers.append(vc.MLflowWriter(experiment_name="multiworker"))
    callbacks = [
        vc.ActivationLogger(x[0], writers, layers=["conv_a", "conv_b"]),
        vc.FilterLogger(writers),
        vc.GradCAMLogger(x[:2], writers, layer="conv_b"),
    ]
    if kind == "mirrored":
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=callbacks)
    else:
        train_multiworker(strategy, model, x, y, callbacks, die_at_epoch)

    # The same weights in a plain single-device model, for the statistics comparison.
    single = models.functional()
    single.set_weights(model.get_weights())
    acts = vc.layer_activations(single, x[:1], ["conv_a", "conv_b"])
    print(
        json.dumps(
            {
                "replicas": strategy.num_replicas_in_sync,
                "single_device_means": {k: float(np.mean(v)) for k, v in acts.items()},
            }
        )
    )


def train_multiworker(strategy, model, x, y, callbacks, die_at_epoch: int) -> None:
    """A custom loop driving the callbacks through Keras' own CallbackList, as fit() would.

    Keras 3's fit() itself fails under MultiWorkerMirroredStrategy before any callback runs
    (tensorflow/tensorflow#72388; Keras 3.15: "ValueError: Attempt to convert a value
    (PerReplica:{...}) with an unsupported type ... to a Tensor").
    """
    import keras

    loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction="sum")
    data = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(16, drop_remainder=True)
    )

    @tf.function
    def train_step(batch):
        def step(images, labels):
            with tf.GradientTape() as tape:
                loss = loss_fn(labels, model(images, training=True)) / 16.0
            grads = tape.gradient(loss, model.trainable_variables)
            model.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        return strategy.reduce("SUM", strategy.run(step, args=batch), axis=None)

    hooks = keras.callbacks.CallbackList(callbacks, model=model, epochs=2, verbose=0)
    hooks.on_train_begin()
    worker = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    for epoch in range(2):
        if epoch == die_at_epoch and worker == 1:
            os._exit(17)
        hooks.on_epoch_begin(epoch)
        for batch in data:
            train_step(batch)
        hooks.on_epoch_end(epoch)
    hooks.on_train_end()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:4]))
