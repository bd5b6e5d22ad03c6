"""The estimators against scikit-learn's own MLP where their behaviour should agree: training
dtype, warnings and errors (their wording), divergence with and without early stopping, label
handling in messages; and our additions to its API: ``class_weight``, ``dropout`` and warm starts
that continue the optimizer state."""

import re
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.class_weight import compute_class_weight
from test_estimator import SMALL, small

from ffnn_jax import _estimator
from ffnn_jax.estimators import MLPClassifier, MLPRegressor


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
SCALE_HINT = (
    "You might also want to scale the data as shown in:\n    https://scikit-learn.org/stable/modules/preprocessing.html"
)
NON_FINITE = "Solver produced non-finite parameter weights. The input data may contain large values"


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=90, n_features=4, noise=1.0, random_state=0)
    return StandardScaler().fit_transform(X), y / y.std()


# --- 1. dtype ---------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_fits_train_and_predict_in_the_dtype_of_x_as_scikit_learn(blobs, kind, solver):
    # Stochastic solvers keep X's dtype; L-BFGS weights are float64 (scipy's), whatever X is.
    X, y = blobs
    ours, theirs = (MLPClassifier, SkMLPClassifier) if kind == "classifier" else (MLPRegressor, SkMLPRegressor)
    y = y if kind == "classifier" else y.astype(float)
    method = "predict_proba" if kind == "classifier" else "predict"
    for dtype in (np.float64, np.float32):
        mine = ours(**small(solver=solver)).fit(X.astype(dtype), y)
        reference = theirs(**small(solver=solver)).fit(X.astype(dtype), y)
        expected = np.float64 if solver == "lbfgs" else dtype
        assert {a.dtype for a in mine.coefs_ + mine.intercepts_} == {reference.coefs_[0].dtype} == {np.dtype(expected)}
        for data in (X, X.astype(dtype)):  # float64 X on float32 weights promotes, as NumPy
            assert getattr(mine, method)(data).dtype == getattr(reference, method)(data).dtype


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_float64_sgd_epochs_equal_scikit_learns_to_float64_precision(regression, momentum):
    # In float64 our steps are scikit-learn's up to summation order, far tighter than float32
    # allows. train() holds η and λ as float32, so they are chosen exact in float32: η/2 = 2^-5,
    # λ = 2α/30 = 2^-6 (and momentum 0.5).
    X, y = regression
    settings = dict(hidden_layer_sizes=(8,), solver="sgd", alpha=15 / 64, momentum=momentum, nesterovs_momentum=False,
                    shuffle=False, batch_size=30, learning_rate_init=1 / 16, random_state=0)  # fmt: skip
    ours, theirs = MLPRegressor(**settings, max_iter=1), SkMLPRegressor(**settings, max_iter=1)
    ours.fit(X, y)
    theirs.fit(X, y)
    theirs.coefs_, theirs.intercepts_ = [W.copy() for W in ours.coefs_], [b.copy() for b in ours.intercepts_]
    ours._solver_state = None  # a fresh optimizer, as scikit-learn's warm fit
    ours.set_params(warm_start=True, max_iter=3)
    theirs.set_params(warm_start=True, max_iter=3)
    ours.fit(X, y)
    theirs.fit(X, y)
    for mine, reference in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(mine, reference, rtol=1e-12, atol=1e-14)
    # train() sums the epoch losses it reports in float32
    np.testing.assert_allclose(ours.loss_curve_[-3:], theirs.loss_curve_[-3:], rtol=1e-6)


@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_float64_inputs_too_large_for_float32_train_in_float64_as_scikit_learn(regression, solver):
    X, y = regression
    X = X.copy()
    X[0, 0] = 1e39  # finite in float64, inf in float32
    theirs = SkMLPRegressor(**small(solver=solver)).fit(X, y)
    assert np.all(np.isfinite(theirs.predict(X)))
    if solver == "lbfgs":
        ours = MLPRegressor(**small(solver=solver)).fit(X, y)
        assert ours.coefs_[0].dtype == np.float64 and np.all(np.isfinite(ours.predict(X)))
    else:
        # Our epoch metrics are float32, so a loss of 1e78 reads as a divergence: scikit-learn's error
        # for non-finite weights, never train()'s message about a non-finite `x`.
        with pytest.raises(ValueError, match=NON_FINITE), pytest.warns(ConvergenceWarning):
            MLPRegressor(**small(solver=solver)).fit(X, y)


def test_values_that_overflow_the_fitted_dtype_get_scikit_learns_error(regression):
    X, y = regression
    reg = MLPRegressor(**small(warm_start=True)).fit(X.astype(np.float32), y)
    big = X.copy()
    big[0, 0] = 1e39
    with pytest.raises(ValueError, match=r"Input X contains infinity or a value too large for dtype\('float32'\)"):
        reg.fit(big, y)  # a warm fit keeps the float32 weights, as scikit-learn's
    assert np.all(np.isfinite(reg.predict(big)))  # predict promotes to float64, as scikit-learn
    with pytest.raises(ValueError, match=r"Input y contains infinity or a value too large for dtype\('float32'\)"):
        MLPRegressor(**SMALL).fit(X.astype(np.float32), np.where(np.arange(len(y)) == 0, 1e39, y))


def test_weights_too_large_or_small_for_float32_fit_as_given(blobs):
    # scikit-learn divides the L2 term by Σ w of the batch, so weights × k fit as alpha / k does.
    X, y = blobs
    X = X.astype(np.float32)
    weights = np.random.default_rng(0).integers(1, 4, size=len(y)).astype(float)
    for factor, changes in [(2.0**140, {}), (2.0**-10, dict(batch_size=1, max_iter=2))]:  # inf in float32; batches < 1
        scaled = MLPClassifier(**small(**changes)).fit(X, y, sample_weight=weights * factor)
        reference = MLPClassifier(**small(alpha=SMALL.get("alpha", 1e-4) / factor, **changes))
        reference.fit(X, y, sample_weight=weights)
        for a, b in zip(scaled.coefs_ + scaled.intercepts_, reference.coefs_ + reference.intercepts_):
            np.testing.assert_array_equal(a, b)


# --- 2. predict_log_proba of multi-label classifiers ---------------------------------------------


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_multilabel_log_probabilities_are_the_log_of_the_sigmoid_probabilities(blobs, solver):
    X, y = blobs
    Y = np.stack([y == 0, y == 1, y != 2], axis=1).astype(int)
    for estimator in (MLPClassifier(**small(solver=solver)), SkMLPClassifier(**small(solver=solver))):
        clf = estimator.fit(X, Y)
        proba, log_proba = clf.predict_proba(X), clf.predict_log_proba(X)
        assert log_proba.shape == Y.shape and np.all(proba <= 1) and not np.allclose(proba.sum(1), 1)
        np.testing.assert_allclose(log_proba, np.log(proba), rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(log_proba.argmax(1), proba.argmax(1))


# --- 3. labels in messages -----------------------------------------------------------------------


def test_messages_name_the_labels_as_given(blobs):
    X, y = blobs
    names = np.array(["False", "True", "True"])[y]
    clf = MLPClassifier(**SMALL)
    clf.partial_fit(X, names, classes=["False", "True"])
    with pytest.raises(ValueError, match=r"has \['False' 'True'\]\. 'y' has \['False' 'True' 'x'\]"):
        clf.partial_fit(X, np.where(y == 2, "x", names))
    with pytest.raises(ValueError, match=r"`classes=\['True', 'x'\]` is not the same"):
        clf.partial_fit(X, names, classes=["True", "x"])
    with pytest.raises(
        ValueError, match=r"not classes of the classifier: \['x'\]\. The classes are \['False', 'True'\]"
    ):
        MLPClassifier(**small(class_weight={"True": 2.0, "x": 1.0})).fit(X, names)
    with pytest.raises(ValueError, match=r"not classes of the classifier: \[2\]\. The classes are \[False, True\]"):
        MLPClassifier(**small(class_weight={True: 2.0, 2: 1.0})).fit(X, y == 1)


# --- 4. convergence warnings ---------------------------------------------------------------------


def _warning_texts(fit) -> list:
    """The messages of the ConvergenceWarnings that ``fit()`` emits."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit()
    return [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]


def test_lbfgs_warns_with_scikit_learns_message_at_max_iter_and_max_fun(blobs):
    X, y = blobs
    settings = small(solver="lbfgs", max_iter=3)
    ours = _warning_texts(lambda: MLPClassifier(**settings).fit(X, y))
    theirs = _warning_texts(lambda: SkMLPClassifier(**settings).fit(X, y))
    assert (
        ours
        == theirs
        == [
            "lbfgs failed to converge after 3 iteration(s) (status=1):\nSTOP: TOTAL NO. OF ITERATIONS REACHED LIMIT\n\n"
            "Increase the number of iterations to improve the convergence (max_iter=3).\n" + SCALE_HINT
        ]
    )
    settings = small(solver="lbfgs", max_iter=100, max_fun=5)
    clf = MLPClassifier(**settings)
    ours = _warning_texts(lambda: clf.fit(X, y))
    theirs = _warning_texts(lambda: SkMLPClassifier(**settings).fit(X, y))
    expected = "lbfgs failed to converge after {} iteration(s) (status=1):\n"
    expected += "STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT\n\n"
    assert ours == [expected.format(clf.n_iter_) + SCALE_HINT] and 1 <= clf.n_iter_ <= 5
    assert len(theirs) == 1 and re.fullmatch(
        re.escape(expected).replace(r"\{\}", r"\d+") + re.escape(SCALE_HINT), theirs[0]
    )


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_stochastic_solvers_warn_as_scikit_learn_at_max_iter(blobs, solver, early_stopping):
    X, y = blobs
    settings = small(solver=solver, max_iter=5, early_stopping=early_stopping, n_iter_no_change=50)
    ours = _warning_texts(lambda: MLPClassifier(**settings).fit(X, y))
    theirs = _warning_texts(lambda: SkMLPClassifier(**settings).fit(X, y))
    assert (
        ours
        == theirs
        == ["Stochastic Optimizer: Maximum iterations (5) reached and the optimization hasn't converged yet."]
    )
    if not early_stopping:  # partial_fit never warns (one epoch is all it was asked for)
        assert _warning_texts(lambda: MLPClassifier(**settings).partial_fit(X, y, classes=[0, 1, 2])) == []


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lbfgs_fits_targets_near_1e9_as_scikit_learn(dtype):
    X, y = make_regression(n_samples=90, n_features=4, noise=1.0, random_state=0)
    X, y = StandardScaler().fit_transform(X).astype(dtype), y + 1e9
    settings = dict(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=300)
    for seed in range(3):
        theirs = SkMLPRegressor(**settings, random_state=seed).fit(X, y).score(X, y)
        ours = MLPRegressor(**settings, random_state=seed).fit(X, y)
        # scikit-learn: 0.99996 from float64 X, 0.92..0.98 from float32 X (its float64 solve of float32 X)
        assert theirs > (0.999 if dtype == np.float64 else 0.9)
        assert ours.score(X, y) > 0.999 and 1 < ours.n_iter_  # before: one iteration, R² -4e13, no warning
        assert ours.loss_ < 10.0  # scikit-learn's objective, in y's units


def test_lbfgs_reports_scikit_learns_objective_for_standardized_targets(regression):
    X, y = regression
    for shift, spread in [(0.0, 1.0), (1e6, 1e3)]:
        reg = MLPRegressor(**small(solver="lbfgs", alpha=0.5)).fit(X, shift + spread * y)
        scores = np.maximum(X @ reg.coefs_[0] + reg.intercepts_[0], 0) @ reg.coefs_[1] + reg.intercepts_[1]
        data = 0.5 * np.mean((scores[:, 0] - shift - spread * y) ** 2)
        penalty = 0.5 * 0.5 * sum(np.sum(W**2) for W in reg.coefs_) / len(X)
        assert reg.loss_ == pytest.approx(data + penalty, rel=1e-9)
        assert reg.loss_curve_[-1] == pytest.approx(reg.loss_) and np.all(np.diff(reg.loss_curve_) <= 0)


# --- 5. divergence -------------------------------------------------------------------------------

DIVERGING = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=1.5, momentum=0.9, max_iter=30,
                 random_state=0, n_iter_no_change=100)  # fmt: skip


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scikit-learn's NumPy overflows
def test_a_diverging_fit_with_early_stopping_keeps_its_best_weights_as_scikit_learn(regression):
    X, y = regression
    for estimator in (MLPRegressor(**DIVERGING, early_stopping=True), SkMLPRegressor(**DIVERGING, early_stopping=True)):
        texts = _warning_texts(lambda: estimator.fit(X, y))
        scores = np.array(estimator.validation_scores_)
        assert estimator.n_iter_ == len(scores) == len(estimator.loss_curve_) == 30
        assert 0 < np.isnan(scores).sum() < 30 and np.all(np.isnan(scores[np.argmax(np.isnan(scores)) :]))
        assert estimator.best_validation_score_ == np.nanmax(scores)
        assert all(np.all(np.isfinite(W)) for W in estimator.coefs_) and np.all(np.isfinite(estimator.predict(X)))
        assert texts == [
            "Stochastic Optimizer: Maximum iterations (30) reached and the optimization hasn't converged yet."
        ]
    ours = MLPRegressor(**DIVERGING, early_stopping=True)
    ours.fit(X, y)
    finite = int(np.argmax(np.isnan(ours.validation_scores_)))
    best = MLPRegressor(**{**DIVERGING, "max_iter": finite}, early_stopping=True).fit(X, y)
    for mine, reference in zip(ours.coefs_ + ours.intercepts_, best.coefs_ + best.intercepts_):
        np.testing.assert_array_equal(mine, reference)  # the best of the finite epochs
    assert ours.validation_scores_[:finite] == best.validation_scores_ and ours._solver_state is None


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverging_fit_without_early_stopping_warns_and_raises_as_scikit_learn(regression):
    X, y = regression
    for estimator in (MLPRegressor(**DIVERGING), SkMLPRegressor(**DIVERGING)):
        with pytest.raises(ValueError, match=NON_FINITE), pytest.warns(ConvergenceWarning, match="Maximum iterations"):
            estimator.fit(X, y)


# --- 6. class_weight -----------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
@pytest.mark.parametrize("labels", ["multiclass", "binary_strings"])
@pytest.mark.parametrize("class_weight", ["dict", "balanced"])
def test_class_weight_equals_the_matching_sample_weight(blobs, solver, labels, class_weight):
    X, y = blobs
    y = y if labels == "multiclass" else np.array(["no", "yes", "yes"])[y]
    classes = np.unique(y)
    given = np.random.default_rng(0).integers(1, 4, size=len(y)).astype(float)
    if class_weight == "dict":
        class_weight = {classes[0]: 5.0, classes[-1]: 0.5}
        per_class = np.array([class_weight.get(c, 1.0) for c in classes])
    else:
        per_class = compute_class_weight("balanced", classes=classes, y=y, sample_weight=given)
    rows = per_class[np.searchsorted(classes, y)]
    by_class = MLPClassifier(**small(solver=solver, class_weight=class_weight)).fit(X, y, sample_weight=given)
    by_row = MLPClassifier(**small(solver=solver)).fit(X, y, sample_weight=given * rows)
    for a, b in zip(by_class.coefs_ + by_class.intercepts_, by_row.coefs_ + by_row.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert by_class.get_params()["class_weight"] is class_weight


def test_balanced_class_weight_counts_all_of_y_before_the_validation_split(blobs):
    X, y = blobs
    keep = (y != 1) | (np.arange(len(y)) % 3 == 0)
    X, y = X[keep], y[keep]
    rows = compute_class_weight("balanced", classes=np.unique(y), y=y)[y]
    settings = small(early_stopping=True, validation_fraction=0.2)
    by_class = MLPClassifier(**settings, class_weight="balanced").fit(X, y)
    by_row = MLPClassifier(**settings).fit(X, y, sample_weight=rows)
    np.testing.assert_array_equal(by_class.coefs_[0], by_row.coefs_[0])
    assert not np.array_equal(by_class.coefs_[0], MLPClassifier(**settings).fit(X, y).coefs_[0])


def test_class_weight_in_partial_fit_multilabel_and_invalid_values(blobs):
    X, y = blobs
    clf = MLPClassifier(**small(class_weight={0: 2.0}))
    clf.partial_fit(X, y, classes=[0, 1, 2])
    reference = MLPClassifier(**SMALL).partial_fit(X, y, sample_weight=np.where(y == 0, 2.0, 1.0), classes=[0, 1, 2])
    np.testing.assert_array_equal(clf.coefs_[0], reference.coefs_[0])
    with pytest.raises(ValueError, match="class_weight='balanced' is not supported for partial_fit"):
        MLPClassifier(**small(class_weight="balanced")).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="not supported for multi-label"):
        MLPClassifier(**small(class_weight="balanced")).fit(X, np.stack([y == 0, y == 1], axis=1).astype(int))
    with pytest.raises(InvalidParameterError, match="class_weight"):
        MLPClassifier(**small(class_weight="even")).fit(X, y)
    assert "class_weight" not in MLPRegressor().get_params()


# --- 7. warm starts continue the optimizer ---------------------------------------------------------


@pytest.mark.parametrize(
    "kind, changes",
    [
        ("classifier", dict(solver="adam")),
        ("classifier", dict(solver="sgd", momentum=0.9, nesterovs_momentum=True)),
        ("classifier", dict(solver="sgd", momentum=0.0, learning_rate="invscaling", learning_rate_init=0.1)),
        ("regressor", dict(solver="adam", batch_size=16)),
        ("regressor", dict(solver="sgd", momentum=0.5, nesterovs_momentum=False, batch_size=16, dropout=0.2)),
    ],
    ids=["adam", "nesterov", "invscaling", "regressor_adam", "regressor_momentum_dropout"],
)
def test_a_warm_fit_continues_where_the_last_fit_stopped(blobs, regression, kind, changes):
    (X, y), estimator = (blobs, MLPClassifier) if kind == "classifier" else (regression, MLPRegressor)
    settings = {**SMALL, "shuffle": True, "n_iter_no_change": 1000, "batch_size": 30, **changes}
    whole = estimator(**{**settings, "max_iter": 12}).fit(X, y)
    warm = estimator(**{**settings, "max_iter": 5}, warm_start=True).fit(X, y)
    warm.set_params(max_iter=7).fit(X, y)
    for a, b in zip(warm.coefs_ + warm.intercepts_, whole.coefs_ + whole.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert warm.loss_curve_ == whole.loss_curve_ and warm.t_ == whole.t_ and warm.n_iter_ == 7


def test_partial_fit_invscaling_rate_follows_scikit_learns(blobs):
    X, y = blobs
    settings = small(solver="sgd", momentum=0.0, learning_rate="invscaling", power_t=0.5, batch_size=90,
                     learning_rate_init=0.1, shuffle=False)  # fmt: skip
    ours, theirs = MLPClassifier(**settings), SkMLPClassifier(**settings)
    ours.partial_fit(X, y, classes=[0, 1, 2])
    theirs.partial_fit(X, y, classes=[0, 1, 2])
    theirs.coefs_, theirs.intercepts_ = [W.copy() for W in ours.coefs_], [b.copy() for b in ours.intercepts_]
    theirs._optimizer.params = theirs.coefs_ + theirs.intercepts_
    for _ in range(3):  # one step per call: η/(t + 1)^power_t with t the samples seen before it
        ours.partial_fit(X, y)
        theirs.partial_fit(X, y)
    for mine, reference in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(mine, reference, rtol=1e-6, atol=1e-9)  # train() holds η and its factor as float32


# --- 8. dropout ----------------------------------------------------------------------------------


def test_dropout_is_passed_to_train_per_hidden_layer(blobs, monkeypatch):
    X, y = blobs
    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs["dropout"])
        return train(*args, **kwargs)

    train = _estimator.train
    monkeypatch.setattr(_estimator, "train", spy)
    MLPClassifier(**small(hidden_layer_sizes=(8, 6), dropout=0.25)).fit(X, y)
    MLPClassifier(**small(hidden_layer_sizes=(8, 6), dropout=(0.5, 0.0))).fit(X, y)
    MLPClassifier(**small(hidden_layer_sizes=(8, 6))).fit(X, y)
    assert seen == [(0.25, 0.25), (0.5, 0.0), (0.0, 0.0)]


def test_dropout_changes_training_reproducibly_and_is_off_in_predict(blobs):
    X, y = blobs
    plain = MLPClassifier(**SMALL).fit(X, y)
    dropped = MLPClassifier(**small(dropout=0.5)).fit(X, y)
    again = clone(dropped).fit(X, y)
    np.testing.assert_array_equal(dropped.coefs_[0], again.coefs_[0])
    assert not np.array_equal(dropped.coefs_[0], plain.coefs_[0])
    assert dropped.loss_curve_[-1] > plain.loss_curve_[-1]  # a noisier training loss
    np.testing.assert_array_equal(dropped.predict_proba(X), dropped.predict_proba(X))
    assert dropped.get_params()["dropout"] == 0.5 and "dropout" in MLPRegressor().get_params()


def test_bad_dropout_settings_raise_naming_them(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match=r"`dropout` must be one rate or one per hidden layer \(1\), got 2"):
        MLPClassifier(**small(dropout=(0.1, 0.2))).fit(X, y)
    with pytest.raises(ValueError, match=r"`dropout` rates must be real numbers in \[0, 1\)"):
        MLPClassifier(**small(dropout=(1.0,))).fit(X, y)
    with pytest.raises(InvalidParameterError, match="dropout"):
        MLPClassifier(**small(dropout=1.0)).fit(X, y)
    with pytest.raises(ValueError, match="`dropout` needs a stochastic solver"):
        MLPClassifier(**small(dropout=0.1, solver="lbfgs")).fit(X, y)
