"""Right answers for ordinary targets: labels as given, a column of labels, float64 that is float64."""

import subprocess
import sys
import warnings

import jax
import numpy as np
import pytest

import ffnn_jax


FAST = dict(hidden_sizes=(16,), optimizer="adam", learning_rate=0.01, epochs=5)


def test_non_contiguous_labels_get_one_output_each_and_predict_only_seen_classes(digits):
    x, y = digits
    keep = np.isin(y, [3, 7, 9])
    result = ffnn_jax.train(x[keep], y[keep], **FAST)
    assert result.layer_sizes[-1] == 3  # was 10 outputs (max label + 1)
    np.testing.assert_array_equal(result.classes, [3, 7, 9])
    assert set(np.unique(result.predict(x[keep]))) <= {3, 7, 9}
    assert result.evaluate(x[keep], y[keep])["accuracy"] > 0.9
    assert result.predict_proba(x[keep][:2]).shape == (2, 3)


@pytest.mark.parametrize(
    "labels", [np.array(["cat", "dog", "eel"]), np.array([True, False, True])], ids=["strings", "bools"]
)
def test_string_and_bool_labels_are_decoded_on_predict(digits, labels):
    x, y = digits
    y_given = labels[y % 3]
    result = ffnn_jax.train(x, y_given, **FAST)
    np.testing.assert_array_equal(result.classes, np.unique(y_given))
    predicted = result.predict(x)
    assert predicted.dtype == y_given.dtype and np.mean(predicted == y_given) > 0.5
    assert result.evaluate(x, y_given)["accuracy"] == pytest.approx(np.mean(predicted == y_given), abs=1e-6)


def test_a_column_of_binary_labels_is_binary_classification_not_a_one_output_softmax(digits):
    x, y = digits
    column = (y > 4).astype(np.int32)[:, None]  # [n, 1] of 0/1
    result = ffnn_jax.train(x, column, **FAST)
    assert result.layer_sizes[-1] == 2  # was 1 output: loss 0.0, predicts all 0, accuracy 1.0
    assert result.history["train_loss"][-1] > 0
    predicted = result.predict(x)
    assert set(np.unique(predicted)) == {0, 1} and 0.85 < np.mean(predicted == column[:, 0]) < 1.0
    assert result.evaluate(x, column)["accuracy"] == pytest.approx(np.mean(predicted == column[:, 0]), abs=1e-6)


def test_a_one_output_softmax_is_refused(digits):
    x, _ = digits
    with pytest.raises(ValueError, match="single class"):
        ffnn_jax.train(x, np.zeros(len(x), np.int32), epochs=1)
    with pytest.raises(ValueError, match="`n_classes`=1"):
        ffnn_jax.train(x, np.zeros(len(x), np.int32), n_classes=1, epochs=1)


def test_many_distinct_integers_under_auto_ask_which_task_is_meant(digits):
    x, _ = digits
    prices = np.arange(len(x)) * 7  # integer-valued regression target
    with pytest.raises(ValueError, match="distinct integers.*task='regression'"):
        ffnn_jax.train(x, prices, epochs=1)
    assert ffnn_jax.train(x, prices, task="regression", epochs=1, hidden_sizes=(4,)).layer_sizes[-1] == 1


def test_validation_labels_never_seen_in_training_are_named(digits):
    x, y = digits
    with pytest.raises(ValueError, match=r"validation_data\[1\].*not among the training classes.*\[42\]"):
        ffnn_jax.train(x, y, validation_data=(x[:3], np.array([1, 2, 42])), epochs=1)


@pytest.mark.parametrize(
    "y, named",
    [([42] * 6 + [7, 9], "classes 7, 9 have 1 row"), (["cat"] * 6 + ["dog", "emu"], "classes 'dog', 'emu' have 1 row")],
    ids=["integers", "strings"],
)
def test_classes_too_small_for_a_stratified_validation_split_are_named_as_given(digits, y, named):
    x, _ = digits
    with pytest.raises(ValueError, match=named):  # not the codes 0, 1 the classes are trained as
        ffnn_jax.train(x[:8], np.array(y), epochs=1, validation_fraction=0.3)


def test_a_reloaded_model_keeps_the_classes(tmp_path, digits):
    x, y = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    result = ffnn_jax.train(x, names[y], checkpoint_dir=str(tmp_path), standardize=True, **FAST)
    model = ffnn_jax.load_model(str(tmp_path))
    np.testing.assert_array_equal(model.classes, result.classes)
    np.testing.assert_array_equal(model.predict(x), result.predict(x))
    assert model.evaluate(x, names[y]) == result.evaluate(x, names[y])
    with pytest.raises(ValueError, match=r"`x` must have 64 features \(columns\), got 3"):  # x named before labels
        model.evaluate(x[:, :3], np.array(["ten"] * len(x)))


def test_float64_trains_in_float64_and_leaves_the_global_setting_alone(digits):
    x, y = digits
    before = jax.config.jax_enable_x64
    result = ffnn_jax.train(x, y, dtype="float64", **FAST)
    assert jax.config.jax_enable_x64 == before
    leaves = jax.tree_util.tree_leaves((result.params, result.state.opt_state))
    tensors = [leaf for leaf in leaves if leaf.ndim > 0]  # W, b and Adam's moments (hyperparameters are scalars)
    assert len(tensors) == 3 * len(jax.tree_util.tree_leaves(result.params))
    assert {leaf.dtype for leaf in tensors} == {np.dtype("float64")}
    start = ffnn_jax.init_params(jax.random.key(1), [64, 16, 10])  # one start for both precisions
    single = ffnn_jax.train(x, y, initial_params=start, **FAST)
    result = ffnn_jax.train(x, y, dtype="float64", initial_params=jax.tree_util.tree_map(np.float64, start), **FAST)
    assert single.params[0].W.dtype == np.float32 and result.params[0].W.dtype == np.float64
    assert result.history["train_loss"] != single.history["train_loss"]  # really another precision
    np.testing.assert_allclose(result.history["train_loss"], single.history["train_loss"], rtol=1e-3)
    assert result.predict_proba(x[:2]).dtype == np.float64
    assert result.evaluate(x, y)["accuracy"] > 0.9


def test_cli_float64_writes_float64_params(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "ffnn_jax", "train", "-e", "2", "-sz", "8", "--dtype", "float64"]
    subprocess.run(command + ["--out", str(out), "--no_plot", "--no_progress"], check=True, capture_output=True)
    with pytest.warns(UserWarning, match="standardized inputs"):  # the CLI standardizes by default
        params, meta = ffnn_jax.load_params(str(out / "params.npz"))
    assert params[0].W.dtype == np.float64 and meta["config"]["dtype"] == "float64"


def test_whole_number_targets_with_classes_of_one_example_ask_which_task_is_meant(digits):
    x, _ = digits
    ages = np.arange(len(x)) % 60 + 18  # 60 whole-number values
    ages[0] = 99  # one of them seen once
    with pytest.raises(ValueError, match=r"61 distinct integers, 1 of them seen once.*--task regression"):
        ffnn_jax.train(x, ages, epochs=1)
    assert ffnn_jax.train(x, ages, task="regression", epochs=1, hidden_sizes=(4,)).task == "regression"
    assert ffnn_jax.train(x, ages, task="classification", epochs=1, hidden_sizes=(4,)).layer_sizes[-1] == 61
    assert ffnn_jax.train(x, ages % 20, epochs=1, hidden_sizes=(4,)).task == "classification"  # 20 classes: as given


def test_float_one_hot_rows_are_classification_without_naming_the_loss(digits):
    x, y = digits
    rows = ffnn_jax.one_hot(y, 10)  # float32, as keras' to_categorical gives them
    result = ffnn_jax.train(x, rows, **FAST)
    assert result.task == "classification" and "train_accuracy" in result.history  # was a 10-output regression
    labels = ffnn_jax.train(x, y, **FAST)
    np.testing.assert_allclose(result.params[0].W, labels.params[0].W, rtol=1e-5, atol=1e-6)
    assert result.evaluate(x, rows) == pytest.approx(labels.evaluate(x, y))
    assert labels.evaluate(x, rows) == pytest.approx(labels.evaluate(x, y))  # one-hot rows for a model of labels
    assert ffnn_jax.evaluate(labels.params, x, rows)["accuracy"] == pytest.approx(labels.evaluate(x, y)["accuracy"])


def test_float_targets_that_look_like_labels_are_a_regression_with_a_warning_naming_the_task(digits):
    x, y = digits
    with pytest.warns(
        UserWarning, match=r"only 10 distinct whole numbers \(0, 1, 2, 3, 4, \.\.\.\).*task='classification'"
    ):
        result = ffnn_jax.train(x, y.astype(np.float32), epochs=1, hidden_sizes=(4,))
    assert result.task == "regression"
    with pytest.warns(UserWarning, match="loss='binary_cross_entropy'"):
        ffnn_jax.train(x, np.stack([y > 4, y % 2 == 0], 1).astype(np.float32), epochs=1, hidden_sizes=(4,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning once the task is named, nor for real-valued targets
        ffnn_jax.train(x, y.astype(np.float32), task="regression", epochs=1, hidden_sizes=(4,))
        ffnn_jax.train(x, y + 0.5, epochs=1, hidden_sizes=(4,))
        named = ffnn_jax.train(x, y.astype(np.float32), task="classification", epochs=1, hidden_sizes=(4,))
    assert named.layer_sizes[-1] == 10 and named.predict(x[:3]).dtype.kind == "i"


def test_evaluate_names_the_shape_mismatch_of_float_labels_for_a_classifier(digits):
    x, y = digits
    result = ffnn_jax.train(x, y, **FAST)
    with pytest.raises(ValueError, match=r"one regression target per row, but the network has 10 outputs"):
        ffnn_jax.evaluate(result.params, x, y.astype(np.float32))  # was NumPy's "cannot reshape"
    with pytest.raises(ValueError, match="`y` has 3 columns, but the network has 10 outputs"):
        ffnn_jax.evaluate(result.params, x, ffnn_jax.one_hot(y % 3, 3))


def test_integer_labels_held_as_python_objects_are_labels_not_a_mix():
    x = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    labels = np.array([3, 7, 10] * 20, dtype=object)  # a pandas object column of ints, or np.array(list(y), object)
    result = ffnn_jax.train(x, labels, epochs=1, hidden_sizes=(4,))
    assert result.classes.tolist() == [3, 7, 10] and result.predict(x).dtype.kind == "i"


def test_a_binary_cross_entropy_target_of_other_labels_and_a_short_validation_y_are_named():
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="as a binary_cross_entropy target must hold only 0 and 1"):
        ffnn_jax.train(x, np.where(x[:, 0] > 0, 3, 7), loss="binary_cross_entropy", epochs=1)
    with pytest.raises(ValueError, match=r"`validation_data\[0\]` and `validation_data\[1\]` must have the same"):
        ffnn_jax.train(x, (x[:, 0] > 0).astype(int), validation_data=(x[:10], np.zeros(9, int)), epochs=1)


def test_a_pandas_categorical_is_labels_even_of_floats_where_a_float_array_would_be_a_regression(digits):
    pd = pytest.importorskip("pandas")
    x, y = digits
    x, y = x[:300], y[:300]
    halves = pd.Series(pd.Categorical(np.where(y < 5, 1.5, 2.5)))  # was trained as a regression on 1.5 / 2.5
    result = ffnn_jax.train(x, halves, hidden_sizes=(8,), epochs=2)
    assert result.task == "classification" and result.classes.tolist() == [1.5, 2.5]
    assert set(result.predict(x).tolist()) <= {1.5, 2.5}
    assert result.evaluate(x, np.asarray(halves)) == result.evaluate(x, halves)  # the plain floats are the labels too
    with pytest.raises(ValueError, match=r"not among the training classes \[1.5, 2.5\]: \[2.0\]"):
        result.evaluate(x, np.where(y < 5, 1.5, 2.0))
    whole = pd.Series(pd.Categorical(np.where(y < 5, 1.0, 2.0)))
    ensemble = ffnn_jax.train(x, whole, ensemble=2, hidden_sizes=(8,), epochs=1, validation_fraction=0.2)
    assert ensemble.task == "classification" and ensemble.classes.tolist() == [1, 2]
    with pytest.raises(ValueError, match=r"pandas categorical of non-integer floats.*astype\(str\)"):
        ffnn_jax.sweep(x, halves, grid={"seed": [0]}, epochs=1)


def test_integer_or_bool_rows_with_several_classes_each_are_multi_label_targets(digits):
    x, y = digits
    rows = np.stack([y > 4, y % 2 == 0, y == 3], 1)  # bool [n, 3]: some rows hold two 1s, some none
    for targets in (rows, rows.astype(np.int64)):
        result = ffnn_jax.train(x, targets, **FAST)
        assert result.model.loss == "binary_cross_entropy"  # was a 3-class softmax, trained on the multi-hot rows
        assert result.predict(x[:5]).shape == (5, 3)
    one_hot_ints = np.eye(10, dtype=np.int64)[y]
    assert ffnn_jax.train(x, one_hot_ints, **FAST).model.loss == "cross_entropy"  # one class per row: a softmax


def test_a_softmax_refuses_target_rows_that_are_not_one_hot_naming_the_rows(digits):
    x, y = digits
    rows = np.stack([y > 4, y % 2 == 0], 1).astype(np.int64)
    with pytest.raises(ValueError, match=r"`y` as one-hot rows .* exactly one 1 per row, but \d+ of 1797 rows hold "
                                         r"(several|none) .*loss='binary_cross_entropy'"):  # fmt: skip
        ffnn_jax.train(x, rows, loss="cross_entropy", epochs=1, hidden_sizes=(4,))
    one_hot = np.eye(2, dtype=np.float32)[y % 2]
    empty = one_hot.copy()
    empty[7] = 0
    with pytest.raises(ValueError, match=r"`validation_data\[1\]` as one-hot rows .* 1 of 1797 rows hold none \(row 7"):
        ffnn_jax.train(x, one_hot, validation_data=(x, empty), epochs=1, hidden_sizes=(4,))
    model = ffnn_jax.train(x, y % 2, **FAST)
    with pytest.raises(ValueError, match="exactly one 1 per row"):
        model.evaluate(x, empty)


def test_warnings_about_the_data_name_the_users_line_however_deep_the_call(digits):
    x, y = digits
    pixels = (x / x.max() * 255).astype(np.uint8)
    calls = {
        "train": lambda: ffnn_jax.train(pixels, y.astype(np.float32), epochs=1, hidden_sizes=(4,)),
        "sweep": lambda: ffnn_jax.sweep(pixels, y.astype(np.float32), grid={"seed": [0]}, epochs=1, hidden_sizes=(4,)),
        "ensemble": lambda: ffnn_jax.train(pixels, y.astype(np.float32), ensemble=2, epochs=1, hidden_sizes=(4,)),
    }
    for name, call in calls.items():
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            call()
        ours = [w for w in record if "holds integers" in str(w.message) or "distinct whole numbers" in str(w.message)]
        assert len(ours) >= 2 and all(w.filename == __file__ for w in ours), (name, [w.filename for w in ours])
