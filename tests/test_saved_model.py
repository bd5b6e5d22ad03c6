"""Saving a trained model from Python and reopening it with load_model: the same predictions."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ffnn_jax
from ffnn_jax import cli
from ffnn_jax._checkpoint import read_params, save_params


RNG = np.random.default_rng(0)
X = RNG.normal(size=(60, 3)) * [1.0, 10.0, 100.0] + [0.0, 5.0, -50.0]  # scales that standardize changes
NAMES = np.array(["setosa", "versicolor", "virginica"])[np.arange(60) % 3]

CASES = {
    "text-labels-standardized": dict(y=NAMES, standardize=True),
    "non-contiguous-labels": dict(y=np.arange(60) % 3 * 5 + 3),
    "float64-regression": dict(y=X @ [0.5, 0.1, 0.01], dtype="float64", standardize=True),
    "adamw": dict(y=NAMES, optimizer="adamw", weight_decay=0.1),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_saved_result_reopens_and_predicts_exactly_as_trained(tmp_path, case):
    settings = dict(CASES[case])
    y = settings.pop("y")
    result = ffnn_jax.train(X, y, hidden_sizes=(8,), epochs=3, batch_size=16, seed=1, **settings)
    path = str(tmp_path / "model.npz")
    result.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reopening a complete model file needs no warning
        model = ffnn_jax.load_model(path)
    assert model.task == result.task and model.l2 == result.l2 and model.layer_sizes == result.layer_sizes
    np.testing.assert_array_equal(model.predict(X), result.predict(X))
    assert model.predict(X).dtype == result.predict(X).dtype
    if result.task == "classification":
        np.testing.assert_array_equal(model.classes, result.classes)
        np.testing.assert_array_equal(model.predict_proba(X), result.predict_proba(X))
    assert model.evaluate(X, y) == result.evaluate(X, y)
    jax.tree_util.tree_map(np.testing.assert_array_equal, model.params, result.params)
    assert read_params(path)[1]["config"] == result.config.to_dict()


def test_save_keeps_an_existing_file_unless_told_to_overwrite(tmp_path):
    first = ffnn_jax.train(X, NAMES, hidden_sizes=(4,), epochs=1, seed=0)
    second = ffnn_jax.train(X, NAMES, hidden_sizes=(4,), epochs=1, seed=1)
    path = str(tmp_path / "model.npz")
    first.save(path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        second.save(path)
    np.testing.assert_array_equal(ffnn_jax.load_model(path).params[0].W, first.params[0].W)
    second.save(path, overwrite=True)
    np.testing.assert_array_equal(ffnn_jax.load_model(path).params[0].W, second.params[0].W)


def swish(x):
    return x * jax.nn.sigmoid(x)


def relu(x):  # a custom function with a built-in's name: never to be reopened as the built-in
    return jnp.maximum(x, 0.0) + 0.1 * jnp.minimum(x, 0.0)


@pytest.mark.parametrize("activation", [swish, relu], ids=["swish", "named-like-a-built-in"])
def test_a_custom_activation_is_refused_by_save_and_by_load_model(tmp_path, activation):
    result = ffnn_jax.train(
        X, NAMES, hidden_sizes=(4,), epochs=1, activation=activation, checkpoint_dir=str(tmp_path / "ckpt")
    )
    with pytest.raises(ValueError, match=f"activation '{activation.__name__}' is a custom function.*save_params"):
        result.save(str(tmp_path / "model.npz"))
    assert not (tmp_path / "model.npz").exists()
    with pytest.raises(ValueError, match="custom activation"):
        ffnn_jax.load_model(str(tmp_path / "ckpt"))


def test_an_activation_given_in_capitals_reopens(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "-a", "ReLU", "-e", "1", "-sz", "8", "--no_progress", "--no_plot", "--out", str(out)]
    assert cli.main(argv) == 0
    assert read_params(str(out / "params.npz"))[1]["model"]["activation"] == "relu"
    assert cli.main(["predict", "--model", str(out), "-d", "digits", "--out", str(tmp_path / "p.csv")]) == 0
    assert "wrote 1797 predictions" in capsys.readouterr().out
    params, meta = read_params(str(out / "params.npz"))  # a file written before names were lower-cased
    older = str(tmp_path / "older.npz")
    save_params(older, params, metadata={**meta, "model": {**meta["model"], "activation": "ReLU"}})
    model = ffnn_jax.load_model(older)
    assert model.model.activation == "relu"


def test_a_dataframe_with_other_columns_or_another_order_is_refused_where_it_would_mispredict(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=["sepal", "petal", "stem"])
    result = ffnn_jax.train(frame, NAMES, hidden_sizes=(8,), epochs=2, seed=0)
    assert result.feature_names == ("sepal", "petal", "stem")
    np.testing.assert_array_equal(result.predict(frame), result.predict(X))  # arrays carry no names: taken as given
    reordered = frame[["stem", "sepal", "petal"]]
    with pytest.raises(
        ValueError, match=r"`x` has the training columns in another order.*\['sepal', 'petal', 'stem'\]"
    ):
        result.predict(reordered)
    renamed = frame.rename(columns={"stem": "root"})
    with pytest.raises(ValueError, match=r"unseen \['root'\], missing \['stem'\]"):
        result.evaluate(renamed, NAMES)
    with pytest.raises(ValueError, match=r"`validation_data\[0\]` has the training columns in another order"):
        ffnn_jax.train(frame, NAMES, validation_data=(reordered, NAMES), epochs=1)
    path = str(tmp_path / "model.npz")
    result.save(path)
    reopened = ffnn_jax.load_model(path)
    assert reopened.feature_names == result.feature_names
    with pytest.raises(ValueError, match="another order"):
        reopened.predict_proba(reordered)
    checkpointed = ffnn_jax.train(frame, NAMES, hidden_sizes=(8,), epochs=1, checkpoint_dir=str(tmp_path / "ckpt"))
    assert ffnn_jax.load_model(str(tmp_path / "ckpt")).feature_names == checkpointed.feature_names


def test_saving_onto_a_folder_is_named_as_a_folder_even_with_overwrite(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    result = ffnn_jax.train(x, (x[:, 0] > 0).astype(int), epochs=1, hidden_sizes=(4,))
    for overwrite in (False, True):
        with pytest.raises(IsADirectoryError, match="is a folder; give the path of the file to write"):
            result.save(str(tmp_path), overwrite=overwrite)
