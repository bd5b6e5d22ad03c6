"""The public surface: every documented name imports from the top level."""

import ffnn_jax


PUBLIC_NAMES = [
    "init_params",
    "forward",
    "loss",
    "ravel",
    "count_params",
    "train",
    "predict",
    "predict_proba",
    "evaluate",
    "make_optimizer",
    "make_train_step",
    "init_train_state",
    "TrainState",
    "TrainConfig",
    "TrainResult",
    "TrainingDivergedError",
    "LayerParams",
    "load_digits",
    "load_diabetes",
    "load_dataset",
    "Dataset",
    "save_params",
    "one_hot",
    "train_test_split",
    "load_mnist",
    "backprop",
    "check_gradients",
    "GradientReport",
    "load_params",
    "EnsembleResult",
]


def test_every_public_name_is_importable_from_the_top_level():
    missing = [name for name in PUBLIC_NAMES if not hasattr(ffnn_jax, name)]
    assert not missing, missing
    assert isinstance(ffnn_jax.__version__, str)


def test_train_signature_lists_every_config_field():
    import inspect

    parameters = inspect.signature(ffnn_jax.train).parameters
    assert {"hidden_sizes", "learning_rate", "epochs", "batch_size", "early_stopping", "patience"} <= set(parameters)
