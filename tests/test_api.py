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


def test_a_setting_named_as_keras_or_scikit_learn_name_it_is_refused_naming_ours_before_any_work():
    import numpy as np
    import pytest

    x, y = np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1])
    for given, meant in (("validation_split", "validation_fraction"), ("lr", "learning_rate"),
                         ("hidden_layer_sizes", "hidden_sizes"), ("learnin_rate", "learning_rate"),
                         ("checkpoint_dri", "checkpoint_dir")):  # fmt: skip
        with pytest.raises(TypeError, match=rf"^train\(\) got an unexpected keyword argument '{given}'; did you "
                                            rf"mean '{meant}'\?$"):  # fmt: skip
            ffnn_jax.train(x, y, **{given: 0.1})
    with pytest.raises(
        TypeError, match=r"^sweep\(\) got an unexpected keyword argument 'max_iter'; did you mean 'epochs'"
    ):
        ffnn_jax.sweep(x, y, grid={"learning_rate": [0.1]}, max_iter=3)
    with pytest.raises(TypeError, match=r"'zzz'; the settings are hidden_sizes, activation, "):
        ffnn_jax.train(x, y, zzz=1)
