"""TFX Trainer module: trains the demo model (model.py) on curated, weighted examples.

Use with `Trainer(run_fn="tfx_curator.pipelines.trainer_module.run_fn", ...)` (the package is installed
wherever the Trainer runs) or `Trainer(module_file=<this file>, ...)`.

`fn_args.custom_config` keys (all optional):

    weight_feature   feature holding each example's weight, passed to Keras as `sample_weight`
                     (default "sample_weight"; an example without it weighs 1; None or "" trains unweighted)
    warm_start_from  a served model exported by model.export() to continue training from (its weights are
                     loaded). The Trainer's `base_model` input does the same; custom_config wins when both
                     are given.
    epochs           passes over the training files (default 2); fn_args.train_steps, when set, wins
    batch_size       default 256
    seed             default 0

Besides the serving model (model.export(): the recorder's SavedModel, so the next step's forward records come
from it) the module writes `training_summary.json` to `fn_args.model_run_dir`: examples and sum of weights
the Keras fit saw, the weight feature, warm start, steps and final training metrics. The sum of weights is the
Horvitz-Thompson estimate of the number of examples the curated split stands for.
"""

from __future__ import annotations

import json
import os
import time

import tensorflow as tf
from absl import logging

from tfx_curator.pipelines import model as model_lib

SUMMARY_FILE = "training_summary.json"
DEFAULTS = {"weight_feature": model_lib.WEIGHT_FEATURE, "epochs": 2, "batch_size": 256, "seed": 0}


def training_config(custom_config: dict | None) -> dict:
    """custom_config merged over DEFAULTS; unknown keys are an error (a typo must not train silently)."""
    config = dict(DEFAULTS, warm_start_from=None)
    unknown = set(custom_config or {}) - set(config)
    if unknown:
        raise ValueError(f"unknown trainer custom_config key(s) {sorted(unknown)}; known: {sorted(config)}")
    config.update(custom_config or {})
    return config


def run_fn(fn_args) -> None:
    """Train (warm-started when asked), evaluate on the eval files, export with the recorder, summarise."""
    config = training_config(fn_args.custom_config)
    weight_feature = config["weight_feature"] or None
    warm_start_from = config["warm_start_from"] or getattr(fn_args, "base_model", None)
    start = time.time()

    model_config = (model_lib.load_config(warm_start_from) if warm_start_from else None) or (
        model_lib.flights_config()
    )
    model = model_lib.build_model(model_config, seed=int(config["seed"]))
    if warm_start_from:
        model_lib.load_weights(model, warm_start_from)
        logging.info("Warm start from %s", warm_start_from)

    examples, weight_sum = model_lib.weight_sum(fn_args.train_files, weight_feature, model_config)
    logging.info(
        "Training on %d examples, sum of %s = %.1f", examples, weight_feature or "(no weights)", weight_sum
    )
    steps = fn_args.train_steps or None
    history = model_lib.train(
        model,
        fn_args.train_files,
        weight_feature=weight_feature,
        epochs=int(config["epochs"]),
        batch_size=int(config["batch_size"]),
        steps=steps,
        config=model_config,
        seed=int(config["seed"]),
    )
    # In create_pipeline the eval files are the (curated) training split: weighted, the metrics estimate
    # the fit on the whole new span. The next span is the Evaluator's job.
    eval_metrics = (
        model_lib.evaluate(model, fn_args.eval_files, model_config, weight_feature)
        if fn_args.eval_files
        else {}
    )
    model_lib.export(model, fn_args.serving_model_dir, model_config)

    summary = {
        "examples": examples,
        "weight_feature": weight_feature,
        "weight_sum": weight_sum,
        "warm_start_from": warm_start_from,
        "epochs": None if steps else int(config["epochs"]),
        "steps": steps,
        "batch_size": int(config["batch_size"]),
        "backward_passes": _backward_passes(history, examples, steps, int(config["batch_size"])),
        "train_metrics": {k: float(v[-1]) for k, v in history.items()},
        "eval_metrics": {k: float(v) for k, v in eval_metrics.items()},
        "eval_weighted_by": weight_feature if eval_metrics else None,
        "seconds": round(time.time() - start, 1),
    }
    if getattr(fn_args, "model_run_dir", None):
        tf.io.gfile.makedirs(fn_args.model_run_dir)
        with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, SUMMARY_FILE), "w") as f:
            f.write(json.dumps(summary, indent=2, sort_keys=True))
    logging.info("Training summary: %s", summary)


def _backward_passes(history: dict, examples: int, steps: int | None, batch_size: int) -> int:
    """Per-example backward passes the fit made (examples x epochs, or steps x batch size)."""
    if steps:
        return int(steps) * batch_size
    epochs = len(next(iter(history.values()), []))
    return int(examples) * epochs


def read_summary(model_run_uri: str) -> dict:
    """The training_summary.json a run_fn wrote into a ModelRun artifact's folder."""
    with tf.io.gfile.GFile(os.path.join(model_run_uri, SUMMARY_FILE)) as f:
        return json.loads(f.read())
