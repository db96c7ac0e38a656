"""Runs `gradtts_tf.training.train` in a fresh process for the distributed tests.

``python tests/training/_train_worker.py JSON``: JSON holds ``config``, ``overrides``, ``data``,
``out``, ``epochs``, ``steps``, ``dump`` (npz of the final trainable weights) and
optionally ``cpus`` (logical CPU devices to create) and ``no_dropout`` (see
`without_dropout`). Prints one JSON line with the
number of replicas, the largest difference between replicas' copies of any weight
and the fit history (losses and gradient norms per epoch).
"""

import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[2]


def without_dropout(training_module) -> None:
    """Makes ``training_module.build_model`` (`gradtts_tf.training.run`'s, which `train`
    calls) switch every Dropout layer off.

    The prenet's dropout (0.5, hard-wired as official) draws one mask for the batch a
    replica sees, so only without it is a distributed step the same computation as
    one device's.
    """
    import keras

    build = training_module.build_model

    def build_model(*args, **kwargs):
        model = build(*args, **kwargs)
        for layer in model._flatten_layers():
            if isinstance(layer, keras.layers.Dropout):
                layer.rate = 0.0
        return model

    training_module.build_model = build_model


def main() -> None:
    args = json.loads(sys.argv[1])
    if args.get("cpus", 1) > 1:
        # Before TensorFlow runs any op: split the CPU into logical devices.
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args["cpus"]
        )
    sys.path.insert(0, str(ROOT))
    from gradtts_tf import training
    from gradtts_tf.config import load_config
    from gradtts_tf.training import run

    if args.get("no_dropout"):
        without_dropout(run)

    config = load_config(ROOT / args["config"], args["overrides"])
    history = training.train(config, args["data"], args["out"], epochs=args["epochs"],
                    steps_per_epoch=args["steps"], verbose=0)
    model = history.model
    strategy = model.distribute_strategy
    copies = [
        [np.asarray(c) for c in strategy.experimental_local_results(v.value)]
        for v in model.trainable_variables
    ]
    diff = max(float(np.max(np.abs(c[0] - other))) for c in copies for other in c[1:]) \
        if len(copies[0]) > 1 else 0.0
    np.savez(args["dump"], *[c[0] for c in copies])
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "local_copies": len(copies[0]),
                      "max_replica_diff": diff, "history": history.history}))


if __name__ == "__main__":
    main()
