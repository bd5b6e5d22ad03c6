"""Input validation (before anything compiles), loaders, splits and scaling."""

import gzip
import os
import warnings

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler
from test_train import _CompileCounter

import ffnn_jax
from ffnn_jax._data import (
    TargetColumn,
    csv_header,
    fit_standardizer,
    infer_task,
    load_csv,
    load_idx,
    load_mnist,
    load_npz,
    resolve_target,
    split_indices,
    train_test_split,
)


X = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
Y = np.arange(20) % 3


def _with(array, index, value):
    array = np.array(array, dtype=np.float64)
    array[index] = value
    return array


BAD_INPUTS = [
    (dict(x=_with(X, (0, 0), np.nan)), ValueError, "`x` must be finite"),
    (dict(x=_with(X, (3, 1), np.inf)), ValueError, "`x` must be finite"),
    (dict(y=_with(Y, 2, np.nan)), ValueError, "`y` must be finite"),
    (dict(x=X[:, 0]), ValueError, r"`x` must be 2-D"),
    (dict(x=X[None]), ValueError, r"`x` must be 2-D .*flatten each sample into a row: x.reshape\(len\(x\), -1\)"),
    (dict(y=Y[:-1]), ValueError, "same number of samples"),
    (dict(x=X[:0], y=Y[:0]), ValueError, "`x` must be non-empty"),
    (dict(y=_with(Y, 0, -1).astype(int), n_classes=3), ValueError, "must hold the integers 0..2 when `n_classes`=3"),
    (dict(n_classes=2), ValueError, "must hold the integers 0..1 when `n_classes`=2"),
    (dict(x=X.astype(str)), TypeError, "`x` must hold real numbers"),
    (dict(x=X.astype(str).astype(object)), TypeError, "`x` must hold real numbers"),  # text as objects
    (dict(y=Y.astype(complex)), TypeError, "`y` must hold real numbers"),
    (dict(y=np.array(["a"] * 20)), ValueError, "`y` has a single class \\('a'\\)"),
    (dict(hidden_sizes=(0,)), ValueError, r"`hidden_sizes\[0\]` must be a positive integer"),
    (dict(hidden_sizes=(-4,)), ValueError, r"`hidden_sizes\[0\]`"),
    (dict(batch_size=0), ValueError, "`batch_size` must be a positive integer or None"),
    (dict(epochs=0), ValueError, "`epochs` must be a positive integer"),
    (dict(learning_rate=0.0), ValueError, "`learning_rate` must be in"),
    (dict(learning_rate=-0.1), ValueError, "`learning_rate` must be in"),
    (dict(activation="swish2"), ValueError, "`activation` must be one of"),
    (dict(loss="hinge"), ValueError, "`loss` must be one of"),
    (dict(optimizer="adamax"), ValueError, "`optimizer` must be one of"),
    (dict(optimizer=3), TypeError, "`optimizer` must be one of"),
    (dict(weight_init="orthogonal"), ValueError, "`weight_init` must be one of"),
    (dict(y=X[:, 0], loss="cross_entropy"), ValueError, "class labels must be integers"),
    (dict(y=X[:, 0], task="regression", loss="cross_entropy"), ValueError, "needs class labels"),
    (dict(validation_fraction=1.0), ValueError, "`validation_fraction` must be in"),
    (dict(validation_data=(X[:, :2], Y)), ValueError, r"`validation_data\[0\]` must have 3 features"),
    (dict(sample_weight=np.ones(3)), ValueError, "`sample_weight` must have shape"),
    (dict(sample_weight=-np.ones(20)), ValueError, "`sample_weight` must be >= 0"),
    (dict(unknown_setting=1), TypeError, "unknown_setting"),
    (dict(monitor="val_accuracy"), ValueError, "needs validation_data"),
    (dict(monitor="val_r2", validation_fraction=0.2), ValueError, "needs a regression task"),
    (dict(monitor="loss"), ValueError, "`monitor` must be one of"),
]


@pytest.mark.parametrize("changes, error, message", BAD_INPUTS, ids=[m[2][:40] for m in BAD_INPUTS])
def test_bad_input_is_rejected_with_the_argument_named_before_anything_compiles(changes, error, message):
    changes = dict(changes)
    x, y = changes.pop("x", X), changes.pop("y", Y)
    with _CompileCounter() as compiles, pytest.raises(error, match=message):
        ffnn_jax.train(x, y, epochs=changes.pop("epochs", 1), **changes)
    assert compiles.count == 0


def test_a_dataframe_with_text_or_category_columns_is_refused_naming_them():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"size": [1.0, 2.0, 3.0], "colour": ["red", "blue", "red"]})
    frame["kind"] = pd.Categorical(["a", "b", "a"])
    with pytest.raises(TypeError, match=r"its columns \['colour', 'kind'\] are not numbers.*get_dummies"):
        ffnn_jax.train(frame, [0, 1, 0], epochs=1)


def test_numbers_held_as_objects_or_in_nullable_columns_train_as_the_floats_they_are():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"][: X.shape[1]])
    expected = ffnn_jax.train(X, Y, hidden_sizes=(4,), epochs=1).history["train_loss"]
    for given in (frame.astype(object), frame.astype("Float64"), X.astype(object)):  # were refused as "dtype object"
        assert ffnn_jax.train(given, Y, hidden_sizes=(4,), epochs=1).history["train_loss"] == expected
    missing = frame.astype("Float64")
    missing.iloc[2, 1] = pd.NA
    with pytest.raises(ValueError, match=r"`x` must be finite, got 1 NaN/inf values \(a missing value is one"):
        ffnn_jax.train(missing, Y, epochs=1)
    text = frame.astype(object)
    text.iloc[0, 0] = "1.5"  # a string is text, even one that reads as a number
    with pytest.raises(TypeError, match=r"its columns \['a'\] are not numbers"):
        ffnn_jax.train(text, Y, epochs=1)


def test_plain_lists_and_integer_features_are_accepted():
    result = ffnn_jax.train(X.tolist(), Y.tolist(), hidden_sizes=(4,), epochs=1)
    assert result.predict((X * 10).astype(int)).shape == (20,)


def test_stratified_split_is_seeded_and_keeps_class_proportions():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    keep, held = split_indices(100, 0.2, seed=1, stratify=labels)
    assert sorted(np.concatenate([keep, held]).tolist()) == list(range(100))
    assert np.bincount(labels[held]).tolist() == [10, 6, 4]
    again = split_indices(100, 0.2, seed=1, stratify=labels)
    np.testing.assert_array_equal(held, again[1])


def test_train_test_split_stratifies_labels_and_not_float_targets():
    (x_train, y_train), (x_test, y_test) = train_test_split(X, Y, 0.25, seed=0)
    assert len(x_test) + len(x_train) == 20 and set(np.unique(y_test)) <= {0, 1, 2}
    (_, _), (_, y_reg) = train_test_split(X, X[:, 0], 0.25, seed=0)
    assert y_reg.dtype == np.float32


def test_standardizer_centres_and_scales_and_leaves_constant_columns():
    x = np.column_stack([np.arange(10.0), np.full(10, 3.0)]).astype(np.float32)
    scaled = fit_standardizer(x).apply(x)
    np.testing.assert_allclose(scaled.mean(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(scaled[:, 0].std(), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(scaled[:, 1], 0.0)


def test_a_constant_column_whose_float32_std_is_rounding_gets_scale_1_as_in_standard_scaler():
    rng = np.random.default_rng(0)
    x = np.column_stack([np.full(1000, 0.1), rng.normal(100, 0.01, 1000), np.full(1000, 123.456)]).astype(np.float32)
    assert x[:, [0, 2]].std(0).min() > 0  # float32 rounding: not 0, so a test of std > 0 divides by ~1e-8
    standardizer = fit_standardizer(x, rows_per_pass=300)
    reference = StandardScaler().fit(x)
    np.testing.assert_allclose(standardizer.scale, reference.scale_, rtol=1e-6)
    np.testing.assert_allclose(standardizer.mean, reference.mean_, rtol=1e-6)
    shifted = standardizer.apply(np.array([[0.1001, 100.0, 123.5]], np.float32))
    assert np.all(np.abs(shifted) < 1.0)  # a value near the constant stays near 0, not in the thousands


def test_built_in_datasets_load_offline():
    x, y = ffnn_jax.load_digits()
    assert x.shape == (1797, 64) and y.shape == (1797,) and set(np.unique(y)) == set(range(10))
    assert 0.0 <= x.min() and x.max() <= 1.0
    xr, yr = ffnn_jax.load_diabetes()
    assert xr.shape == (442, 10) and yr.dtype == np.float32


def _write_idx(path, array, compress):
    codes = {np.uint8: 0x08}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape
    )
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_mnist_idx_files_load_plain_or_gzipped(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    suffix = ".gz" if compress else ""
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, compress)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, compress)
    x, y = load_mnist(str(tmp_path), "test")
    assert x.shape == (5, 784) and x.max() <= 1.0
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_array_equal(load_idx(str(tmp_path / f"t10k-images-idx3-ubyte{suffix}")), images)


def test_missing_mnist_files_say_where_to_put_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="downloads nothing"):
        load_mnist(str(tmp_path))


def test_a_truncated_idx_file_is_reported(tmp_path):
    path = tmp_path / "bad"
    _write_idx(path, np.zeros((4, 2), np.uint8), False)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 3)
    with pytest.raises(ValueError, match="truncated"):
        load_idx(str(path))


def test_npz_and_csv_loaders(tmp_path):
    np.savez(tmp_path / "d.npz", x=X, y=Y)
    x, y = load_npz(str(tmp_path / "d.npz"))
    np.testing.assert_array_equal(x, X)
    with pytest.raises(ValueError, match="no array"):
        load_npz(str(tmp_path / "d.npz"), y_key="labels")
    (tmp_path / "d.csv").write_text("a,b,label\n1,2,0\n3,4,1\n5,6,1\n")
    x, y = load_csv(str(tmp_path / "d.csv"), target_column="label")
    assert x.shape == (3, 2) and y.dtype == np.int32 and y.tolist() == [0, 1, 1]
    x, y = ffnn_jax.load_dataset(str(tmp_path / "d.csv"))
    assert y.tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="`dataset` must be one of"):
        ffnn_jax.load_dataset("imagenet")


def test_one_hot_targets_train_the_same_model_as_integer_labels():
    settings = dict(hidden_sizes=(4,), epochs=3, batch_size=8, seed=2)
    labels = ffnn_jax.train(X, Y, **settings)
    rows = ffnn_jax.train(X, ffnn_jax.one_hot(Y, 3), loss="cross_entropy", **settings)
    assert rows.task == "classification" and rows.predict(X).shape == (20,)
    np.testing.assert_array_equal(ffnn_jax.one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_allclose(rows.params[0].W, labels.params[0].W, rtol=1e-5, atol=1e-6)


def _csv(tmp_path, text, name="d.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


LABEL_FIRST = {
    "kaggle": "label,pixel0,pixel1,pixel2\n1,0.5,0.25,0.0\n0,0.0,0.75,1.0\n2,1.0,0.5,0.5\n",
    "pjreddie": "label,1x1,1x2,1x3\n1,0.5,0.25,0.0\n0,0.0,0.75,1.0\n2,1.0,0.5,0.5\n",
}


@pytest.mark.parametrize("layout", list(LABEL_FIRST), ids=list(LABEL_FIRST))
@pytest.mark.parametrize("target", ["label", 0, -4], ids=["name", "index", "negative"])
def test_load_dataset_takes_the_target_column_by_header_name_or_index(tmp_path, layout, target):
    path = _csv(tmp_path, LABEL_FIRST[layout])
    x, y = ffnn_jax.load_dataset(path, target=target)
    assert y.dtype == np.int32 and y.tolist() == [1, 0, 2]
    np.testing.assert_array_equal(x, [[0.5, 0.25, 0.0], [0.0, 0.75, 1.0], [1.0, 0.5, 0.5]])
    assert resolve_target(path, target) == (0, "label")


def test_resolve_target_is_none_for_data_without_columns():
    assert resolve_target("digits") is None and resolve_target("data.npz") is None


def test_resolve_target_reports_the_last_column_by_default(tmp_path):
    path = _csv(tmp_path, "a,b,y\n1,2,0\n3,4,1\n")
    assert resolve_target(path) == TargetColumn(index=2, name="y")
    assert resolve_target(_csv(tmp_path, "1,2,0\n3,4,1\n", "plain.csv"), 1) == TargetColumn(index=1, name=None)


@pytest.mark.parametrize(
    "target, message",
    [
        ("lable", r"`target_column`='lable' is not in the header .*\['label', 'pixel0', 'pixel1', 'pixel2'\]"),
        (4, r"`target_column`=4 is out of range .* 4 columns"),
        (-5, r"`target_column`=-5 is out of range .* 4 columns"),
    ],
    ids=["unknown-name", "index-too-large", "index-too-negative"],
)
def test_an_unknown_target_name_or_index_lists_the_header_or_column_count(tmp_path, target, message):
    with pytest.raises(ValueError, match=message):
        load_csv(_csv(tmp_path, LABEL_FIRST["kaggle"]), target_column=target)


def test_a_target_name_needs_a_header_and_a_target_needs_a_csv(tmp_path):
    with pytest.raises(ValueError, match=r"`target_column`='label' names a column, but .* has no header row"):
        load_csv(_csv(tmp_path, "1,2,0\n3,4,1\n"), target_column="label")
    with pytest.raises(ValueError, match="`target` picks a column of a .csv"):
        ffnn_jax.load_dataset("digits", target="label")


def test_a_duplicated_header_name_is_ambiguous(tmp_path):
    with pytest.raises(ValueError, match=r"names columns \[0, 2\]"):
        load_csv(_csv(tmp_path, "y,a,y\n1,2,0\n3,4,1\n"), target_column="y")


HEADERS = [
    ("a,b,label\n1,2,0\n3,4,1\n", [0, 1]),
    (",a,label\n0,2,0\n1,4,1\n", [0, 1]),  # pandas' to_csv with the index: the first name is empty
    ("RI,Na,Mg,Type\n1.5,13.6,4.5,2\n1.5,13.9,3.6,1\n", [2, 1]),  # 'Na' (sodium) is a name here
    ("1,2,0\n3,4,1\n", [0, 1]),
    ("1.5,-2e3,7\n3,4,1\n", [7, 1]),
    ("0,1,2\n1.5,2,0\n3,4,1\n", [0, 1]),  # pd.DataFrame(array).to_csv(index=False): names 0..k-1
    (",0,1,2\n0,1.5,2,0\n1,3,4,1\n", [0, 1]),  # the same with the index
]


@pytest.mark.parametrize(
    "text, y", HEADERS, ids=["names", "pandas-index", "na-name", "numbers", "floats", "pandas-names", "pandas-both"]
)
def test_a_first_row_is_a_header_when_its_names_outnumber_its_numbers(tmp_path, text, y):
    assert load_csv(_csv(tmp_path, text)).y.tolist() == y


SAME_TABLE = {
    "commas": "a,b,label\n1.5,2,0\n-3,4.25,1\n",
    "pandas-index": ",a,b,label\n0,1.5,2,0\n7,-3,4.25,1\n",  # df.to_csv(): the row index, unnamed, first
    "semicolons": "a;b;label\n1.5;2;0\n-3;4.25;1\n",
    "decimal-commas": "a;b;label\n1,5;2;0\n-3;4,25;1\n",  # Excel where the decimal mark is a comma
    "tabs": "a\tb\tlabel\n1.5\t2\t0\n-3\t4.25\t1\n",
    "tabs-decimal-commas": "a\tb\tlabel\n1,5\t2\t0\n-3\t4,25\t1\n",
    "crlf": "a,b,label\r\n1.5,2,0\r\n-3,4.25,1\r\n",
}


@pytest.mark.parametrize("layout", SAME_TABLE)
def test_csv_separators_decimal_commas_and_a_pandas_index_read_as_the_same_table(tmp_path, layout):
    path = tmp_path / "d.csv"
    path.write_bytes(SAME_TABLE[layout].encode())
    x, y = load_csv(str(path))
    np.testing.assert_array_equal(x, [[1.5, 2], [-3, 4.25]])  # the index was a feature; ';' files one text column
    assert y.tolist() == [0, 1] and resolve_target(str(path)) == TargetColumn(2, "label")
    assert csv_header(str(path)) == ("a", "b", "label")


@pytest.mark.parametrize(
    "text", ["1,5;2,0;0,5\n-3,0;4,25;1,5\n", "1,5\t2,0\t0,5\n-3,0\t4,25\t1,5\n"], ids=["semicolons", "tabs"]
)
def test_a_headerless_file_with_more_decimal_commas_than_separators_is_split_on_its_separator(tmp_path, text):
    x, y = load_csv(_csv(tmp_path, text))  # '1,5;2,0;0,5' has more commas than semicolons
    np.testing.assert_array_equal(x, [[1.5, 2], [-3, 4.25]])
    assert y.tolist() == [0.5, 1.5]


def test_an_unnamed_first_column_is_a_feature_unless_it_holds_whole_numbers_like_pandas_index(tmp_path):
    feature = load_csv(_csv(tmp_path, ",a,label\n5.1,2,0\n4.9,4,1\n"))  # 5.1: no row index
    np.testing.assert_array_equal(feature.x, np.array([[5.1, 2], [4.9, 4]], np.float32))
    assert csv_header(_csv(tmp_path, ",a,label\n5.1,2,0\n4.9,4,1\n")) == ("", "a", "label")
    with pytest.raises(ValueError, match=r"first column has no name.*line 3 holds '1.5'.*name that column"):
        load_csv(_csv(tmp_path, ",a,label\n0,2,0\n1.5,4,1\n"))


@pytest.mark.parametrize("column", ["0 1 2", "1 2 3", "12 0 7", "a b c"])  # 12 0 7: a split's index
def test_an_unnamed_column_that_numbers_or_names_the_rows_is_dropped_without_a_word(tmp_path, column):
    text = ",a,label\n" + "".join(f"{cell},{i},{i % 2}\n" for i, cell in enumerate(column.split()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x, _ = load_csv(_csv(tmp_path, text))
    np.testing.assert_array_equal(x, [[0], [1], [2]])


@pytest.mark.parametrize("column", ["3 3 5", "2 -1 4"])
def test_an_unnamed_column_of_whole_numbers_unlike_a_row_index_is_dropped_with_a_warning(tmp_path, column):
    text = ",a,label\n" + "".join(f"{cell},{i},{i % 2}\n" for i, cell in enumerate(column.split()))
    with pytest.warns(UserWarning, match=r"first column has no name.*repeated or negative.*name that column"):
        x, _ = load_csv(_csv(tmp_path, text))
    np.testing.assert_array_equal(x, [[0], [1], [2]])


MISSING = [
    ("1,,3\n4,5,6\n", r"line 1, column index 1: '' is not a finite number"),
    ("1,NA,3\n4,5,6\n", r"line 1, column index 1: 'NA' is not a finite number"),
    ("NA,NA\n4,5\n", r"line 1, column index 0: 'NA' is not a finite number"),
    ("NA\n4\n", r"line 1, column index 0: 'NA' is not a finite number"),
    ("a,b,c\n1,2,3\n4,nan,6\n", r"line 3, column index 1 \('b'\): 'nan' is not a finite number"),
    ("a,b,c\n1,2,3\n\n4,5,inf\n", r"line 4, column index 2 \('c'\): 'inf' is not a finite number"),
    ("label,0,1\n1,2,3\n", r"line 1, column index 0: 'label' is not a finite number.*read as data, not as a header"),
]


@pytest.mark.parametrize(
    "text, message", MISSING, ids=["empty", "NA", "all-NA", "NA-alone", "nan", "inf", "numeric-header"]
)
def test_a_missing_or_non_finite_cell_is_data_and_an_error_naming_its_line_and_column(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        load_csv(_csv(tmp_path, text))


TEXT_TARGETS = [
    ("sl,pl,species\n5.1,1.4,setosa\n7.0,4.7, versicolor\n6.3,6.0,setosa\n", "species"),
    ("5.1,1.4,setosa\n7.0,4.7,versicolor\n6.3,6.0,setosa\n", -1),  # no header: 2 numbers outnumber 1 name
    ("species,sl,pl\nsetosa,5.1,1.4\nversicolor,7.0,4.7\nsetosa,6.3,6.0\n", 0),
]


@pytest.mark.parametrize("text, target", TEXT_TARGETS, ids=["header", "no-header", "first-column"])
def test_a_text_target_column_is_read_as_class_names(tmp_path, text, target):
    x, y = load_csv(_csv(tmp_path, text), target_column=target)
    assert y.dtype.kind == "U" and y.tolist() == ["setosa", "versicolor", "setosa"]
    np.testing.assert_array_equal(x, np.array([[5.1, 1.4], [7.0, 4.7], [6.3, 6.0]], np.float32))
    assert infer_task(y) == "classification"


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,y\n1,yes\n2,\n", r"line 3, column index 1 \('y'\): the target '' is missing"),
        ("a,y\n1,yes\n2,NA\n", r"line 3, .*the target 'NA' is missing"),
        ("a,y\n1,3.5\n2,4.1\n3,4..2\n", r"mixes text \(line 4: '4..2'\) with numbers \(line 2: '3.5'\)"),
        ("a,y\n1,yes\nx,no\n", r"line 3, column index 0 \('a'\): 'x' is text, and features must be numbers"),
        ("colour,a,y\nred,1,0\nblue,2,1\n", r"\('colour'\): 'red' is text.*one 0/1 column per category"),
    ],
    ids=["empty-target", "NA-target", "typo-in-numeric-target", "text-feature", "categorical-feature"],
)
def test_a_text_target_with_a_gap_a_number_or_a_text_feature_is_an_error_naming_the_cell(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        load_csv(_csv(tmp_path, text))


def test_a_ragged_csv_names_the_short_line(tmp_path):
    with pytest.raises(ValueError, match="line 3 has 2 fields, expected 3"):
        load_csv(_csv(tmp_path, "a,b,c\n1,2,3\n4,5\n"))


def test_a_byte_order_mark_is_not_part_of_the_first_header_name(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("label,a,b\n1,0.5,2\n0,1.5,3\n".encode("utf-8-sig"))
    x, y = load_csv(str(path), target_column="label")
    assert y.tolist() == [1, 0] and x.shape == (2, 2)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bad.csv", b"\xff\xfe\x00\x81,\x80\n", r"'.*bad.csv' is not UTF-8 text"),
        ("bad.npz", b"not a zip archive", r"'.*bad.npz' is not an .npz file"),
        ("trunc.npz", None, r"'.*trunc.npz' is not a readable .npz file"),
    ],
    ids=["binary-csv", "not-a-zip", "truncated-zip"],
)
def test_a_corrupt_data_file_is_a_value_error_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:
        np.savez(path, x=X, y=Y)
        path.write_bytes(path.read_bytes()[:200])
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        ffnn_jax.load_dataset(str(path))


def test_a_missing_data_file_names_the_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"`dataset` file '.*nothing.csv' does not exist"):
        ffnn_jax.load_dataset(str(tmp_path / "nothing.csv"))


def test_a_stratified_split_keeps_every_class_of_two_or_more_rows_on_both_sides():
    labels = np.repeat([0, 1, 2, 3], [40, 2, 3, 15])
    keep, held = split_indices(60, 0.1, seed=0, stratify=labels)
    assert set(labels[keep]) == set(labels[held]) == {0, 1, 2, 3}
    assert sorted(np.concatenate([keep, held]).tolist()) == list(range(60))
    np.testing.assert_array_equal(held, split_indices(60, 0.1, seed=0, stratify=labels)[1])


def test_a_class_with_one_row_cannot_be_stratified_and_is_named():
    labels = np.repeat([0, 1, 7], [10, 10, 1])
    with pytest.raises(ValueError, match=r"`validation_fraction`.*at least 2 rows.*class 7 has 1"):
        split_indices(21, 0.2, seed=0, stratify=labels)
    with pytest.raises(ValueError, match=r"`test_fraction`.*at least 2 rows.*class 7 has 1"):
        train_test_split(np.zeros((21, 2)), labels, 0.2, seed=0)


def test_train_names_the_one_row_class_of_its_validation_split():
    y = np.append(Y, 3)
    with pytest.raises(ValueError, match=r"`validation_fraction`.*class 3 has 1"):
        ffnn_jax.train(np.vstack([X, X[:1]]), y, epochs=1, validation_fraction=0.1)


@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.9], ids=["tiny", "half", "huge"])
def test_train_test_split_never_returns_an_empty_side(fraction):
    (x_train, y_train), (x_test, y_test) = train_test_split(X, Y, fraction, seed=0)
    assert len(x_train) > 0 and len(x_test) > 0 and len(x_train) + len(x_test) == 20
    assert set(y_train) == set(y_test) == {0, 1, 2}


@pytest.mark.parametrize(
    "n, fraction, message",
    [
        (3, 0.9, r"`test_fraction`=0.9 .* 3 rows"),
        (1, 0.5, r"`test_fraction`=0.5 .* 1 row"),
        (20, 0.0, r"`test_fraction` must be in \(0.0, 1.0\)"),
        (20, 1.0, r"`test_fraction` must be in \(0.0, 1.0\)"),
    ],
    ids=["too-large-for-n", "one-row", "zero", "one"],
)
def test_a_test_fraction_that_leaves_a_side_empty_is_named_with_the_row_count(n, fraction, message):
    with pytest.raises(ValueError, match=message):
        train_test_split(X[:n], X[:n, 0], fraction, seed=0)


def test_a_trained_result_where_params_belong_is_a_clear_error_pointing_to_its_params():
    x = np.random.default_rng(0).random((40, 4), dtype=np.float32)
    y = np.arange(40) % 3
    result = ffnn_jax.train(x, y, hidden_sizes=(5,), epochs=1)
    calls = {
        "predict": lambda p: ffnn_jax.predict(p, x),
        "predict_proba": lambda p: ffnn_jax.predict_proba(p, x),
        "evaluate": lambda p: ffnn_jax.evaluate(p, x, y),
        "forward": lambda p: ffnn_jax.forward(p, x),
        "loss": lambda p: ffnn_jax.loss(p, (x, y)),
        "backprop": lambda p: ffnn_jax.backprop(p, (x, y)),
        "check_gradients": lambda p: ffnn_jax.check_gradients(p, (x, y)),
        "count_params": ffnn_jax.count_params,
        "ravel": ffnn_jax.ravel,
    }
    for name, call in calls.items():
        with pytest.raises(TypeError, match=r"`params` must be .*TrainResult: pass its `\.params`"):
            call(result)
        call(result.params)  # and the params themselves work
    with pytest.raises(TypeError, match=r"`initial_params` must be .*TrainResult"):
        ffnn_jax.train(x, y, hidden_sizes=(5,), epochs=1, initial_params=result)
    with pytest.raises(
        TypeError, match=r"`initial_state` must be a TrainState \(a trained result's is its `\.state`\)"
    ):
        ffnn_jax.train(x, y, hidden_sizes=(5,), epochs=1, initial_state=result)
    with pytest.raises(TypeError, match=r"Wrap each layer's dict as ffnn_jax\.LayerParams"):
        ffnn_jax.predict([{"W": np.ones((4, 3)), "b": np.zeros(3)}], x)


def test_an_npz_of_images_in_keras_layout_loads_both_splits_as_flat_rows(tmp_path):
    images = np.arange(5 * 4 * 3, dtype=np.uint8).reshape(5, 4, 3)
    path = str(tmp_path / "mnist.npz")
    np.savez(path, x_train=images[:3], y_train=[0, 1, 0], x_test=images[3:], y_test=[1, 1])
    x, y = ffnn_jax.load_dataset(path)
    assert x.shape == (3, 12) and y.tolist() == [0, 1, 0]
    np.testing.assert_array_equal(x[1], images[1].reshape(-1))
    x_test, y_test = ffnn_jax.load_dataset(path, "test")
    assert x_test.shape == (2, 12) and y_test.tolist() == [1, 1]
    np.savez(str(tmp_path / "one.npz"), x=images, y=np.arange(5) % 2)
    assert ffnn_jax.load_dataset(str(tmp_path / "one.npz")).x.shape == (5, 12)
    with pytest.raises(ValueError, match=r"has no arrays 'x_test' and 'y_test'"):
        ffnn_jax.load_dataset(str(tmp_path / "one.npz"), "test")


def test_a_tsv_file_is_read_as_a_csv_by_load_dataset_and_resolve_target(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_bytes(SAME_TABLE["tabs"].encode())
    x, y = ffnn_jax.load_dataset(str(path))
    np.testing.assert_array_equal(x, [[1.5, 2], [-3, 4.25]])
    assert y.tolist() == [0, 1] and resolve_target(str(path), "label") == TargetColumn(2, "label")


@pytest.mark.filterwarnings("ignore:the trained network gives:RuntimeWarning")  # raw bytes kill its ReLUs too
def test_integer_inputs_far_from_unit_scale_warn_to_scale_them_unless_standardized():
    import warnings

    d = ffnn_jax.load_digits()
    pixels = (d.x / d.x.max() * 255).astype(np.uint8)  # image bytes, as an IDX or PNG loader gives them
    settings = dict(hidden_sizes=(4,), epochs=1)
    with pytest.warns(UserWarning, match=r"`x` holds integers up to 255 \(uint8\).*x / 255.*standardize=True"):
        ffnn_jax.train(pixels, d.y, **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        ffnn_jax.train(pixels, d.y, standardize=True, **settings)
        ffnn_jax.train(pixels / np.float32(255), d.y, **settings)  # floats: taken as the caller scaled them
        ffnn_jax.train((pixels > 100).astype(np.int64), d.y, **settings)  # 0/1 flags
