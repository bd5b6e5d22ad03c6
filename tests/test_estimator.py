"""Tests of the scikit-learn estimators: sklearn's own check suite, parity of the objective and
of SGD steps with scikit-learn's MLP, label handling, partial_fit, L-BFGS limits and the
model-selection tools, and sparse input. Shapes are shared between tests so that compiled programs are reused."""

import inspect
import pickle
import sys
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import optax
import pytest
import scipy.sparse
from sklearn.base import clone, is_classifier
from sklearn.datasets import load_iris, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.neural_network._base import LOSS_FUNCTIONS
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import (
    check_dataframe_column_names_consistency,
    check_param_validation,
    parametrize_with_checks,
)

from ffnn_jax import _estimator
from ffnn_jax._estimator import dense_array, epoch_inverse_scaling
from ffnn_jax._lbfgs import _solve
from ffnn_jax._step import run_epoch
from ffnn_jax.estimators import MLPClassifier, MLPRegressor


SMALL = dict(hidden_layer_sizes=(8,), max_iter=20, learning_rate_init=0.01, random_state=0)
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def small(**changes) -> dict:
    """The small test settings with some changed."""
    return {**SMALL, **changes}


# Every check of scikit-learn's suite runs; none is skipped or expected to fail. (Checks that need
# pandas or SCIPY_ARRAY_API skip themselves when those are absent.) The checks' data are float64,
# so the fits train in float64, and weights of k against k repeated rows agree to the 1e-7 that
# check_sample_weight_equivalence asks (in float32 they agree to ~1e-6, see
# test_sample_weights_equal_repeated_rows_to_the_training_precision).
@parametrize_with_checks([MLPClassifier(**SMALL), MLPRegressor(**SMALL)])
def test_estimator_passes_the_scikit_learn_check_suite(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", [MLPClassifier(**SMALL), MLPRegressor(**SMALL)], ids=["classifier", "regressor"])
def test_invalid_parameters_raise_errors_naming_them(estimator):
    check_param_validation(type(estimator).__name__, estimator)  # scikit-learn runs this one outside the suite


@pytest.mark.parametrize("estimator", [MLPClassifier(**SMALL), MLPRegressor(**SMALL)], ids=["classifier", "regressor"])
def test_feature_names_of_dataframes_are_kept_and_checked(estimator):
    pytest.importorskip("pandas")
    check_dataframe_column_names_consistency(type(estimator).__name__, estimator)


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=90, n_features=4, n_targets=2, noise=1.0, random_state=0)
    return StandardScaler().fit_transform(X), y / y.std(axis=0)


@pytest.mark.parametrize(
    "ours, theirs", [(MLPClassifier, SkMLPClassifier), (MLPRegressor, SkMLPRegressor)], ids=["classifier", "regressor"]
)
def test_constructors_take_scikit_learns_parameters_and_defaults_plus_ours(ours, theirs):
    mine, reference = ours().get_params(), theirs().get_params()
    ours_only = {"optimizer", "weight_init", "dropout"} | ({"class_weight"} if ours is MLPClassifier else set())
    assert set(mine) - set(reference) == ours_only
    assert {name: mine[name] for name in reference} == reference
    positional = [p.name for p in inspect.signature(theirs).parameters.values() if p.kind == p.POSITIONAL_OR_KEYWORD]
    assert [p.name for p in inspect.signature(ours).parameters.values()][: len(positional)] == positional


def _sklearn_objective(est, X, Y, alpha):
    """scikit-learn's objective (its own loss functions) at ``est``'s coefficients.

    For several regression outputs scikit-learn's gradients follow the squared error summed
    over outputs (its reported loss averages them), so the data term is multiplied by their number.
    """
    scores = X
    for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        scores = scores @ W + b
        if i < len(est.coefs_) - 1:
            scores = np.maximum(scores, 0)
    if est.out_activation_ == "softmax":
        outputs, name = np.exp(scores) / np.exp(scores).sum(1, keepdims=True), "log_loss"
    elif est.out_activation_ == "logistic":
        outputs, name = 1 / (1 + np.exp(-scores)), "binary_log_loss"
    else:
        outputs, name = scores, "squared_error"
    l2 = sum(np.sum(W.astype(np.float64) ** 2) for W in est.coefs_)
    n_summed = Y.shape[1] if name == "squared_error" else 1
    return n_summed * LOSS_FUNCTIONS[name](Y, outputs) + 0.5 * alpha * l2 / len(X)


@pytest.mark.parametrize("kind", ["multiclass", "binary", "multi_output_regression"])
def test_lbfgs_minimises_scikit_learns_objective_and_reports_it_as_loss(blobs, regression, kind):
    alpha = 0.5
    if kind == "multi_output_regression":
        X, y = regression
        est, Y = MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", alpha=alpha, max_iter=15, random_state=0), y
    else:
        X, y = blobs
        y = y if kind == "multiclass" else (y == 1).astype(int)
        est = MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", alpha=alpha, max_iter=15, random_state=0)
        Y = np.eye(3)[y] if kind == "multiclass" else y[:, None]
    est.fit(X, y)
    assert est.loss_ == pytest.approx(_sklearn_objective(est, X, Y, alpha), rel=1e-4)
    assert est.loss_curve_[-1] == pytest.approx(est.loss_) and np.all(np.diff(est.loss_curve_) <= 1e-6)


def _start_both_from_the_same_weights(ours, theirs, X, y):
    ours.set_params(max_iter=1).fit(X, y)
    theirs.set_params(max_iter=1).fit(X, y)
    ours._solver_state = None  # a fresh optimizer from these weights, as scikit-learn's every warm fit
    theirs.coefs_ = [W.astype(np.float64) for W in ours.coefs_]
    theirs.intercepts_ = [b.astype(np.float64) for b in ours.intercepts_]
    ours.set_params(warm_start=True, max_iter=3)
    theirs.set_params(warm_start=True, max_iter=3)


@pytest.mark.parametrize(
    "kind, schedule, momentum",
    [
        ("classifier", "constant", 0.5),
        ("regressor", "constant", 0.5),
        ("multi_output_regressor", "constant", 0.5),
        ("classifier", "invscaling", 0.0),
    ],
    ids=["classifier", "regressor", "multi_output_regressor", "invscaling"],
)
def test_sgd_epochs_match_scikit_learn_from_the_same_weights(blobs, regression, kind, schedule, momentum):
    settings = dict(hidden_layer_sizes=(8,), solver="sgd", alpha=0.3, momentum=momentum, nesterovs_momentum=False)
    settings.update(shuffle=False, learning_rate=schedule, power_t=0.25)
    if kind == "classifier":
        (X, y), ours, theirs = blobs, MLPClassifier(**settings), SkMLPClassifier(**settings)
    else:
        X, y = regression
        y = y if kind == "multi_output_regressor" else y[:, 0]
        ours, theirs = MLPRegressor(**settings), SkMLPRegressor(**settings)
    settings.update(batch_size=30, learning_rate_init=0.05)  # three full batches per epoch
    ours.set_params(**settings), theirs.set_params(**settings)
    _start_both_from_the_same_weights(ours, theirs, X, y)
    ours.fit(X, y), theirs.fit(X, y)
    for mine, reference in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(mine, reference, rtol=2e-4, atol=2e-5)
    if kind != "multi_output_regressor":  # there scikit-learn reports the data term divided by 2
        np.testing.assert_allclose(ours.loss_curve_[-3:], theirs.loss_curve_[-3:], rtol=1e-4)


def test_inverse_scaling_follows_scikit_learns_per_epoch_formula():
    tx = epoch_inverse_scaling(0.5, samples_seen=0, samples_per_epoch=100, steps_per_epoch=4)
    state, factors = tx.init(np.zeros(1, np.float32)), []
    for _ in range(9):
        update, state = tx.update(np.ones(1, np.float32), state)
        factors.append(float(update[0]))
    expected = [(k * 100 + 1.0) ** -0.5 for k in (0, 0, 0, 0, 1, 1, 1, 1, 2)]
    np.testing.assert_allclose(factors, expected, rtol=1e-6)


def test_classifier_encodes_string_labels_and_gives_two_column_binary_probabilities(blobs):
    X, y = blobs
    labels = np.array(["no", "yes"])[(y == 1).astype(int)]
    clf = MLPClassifier(**SMALL).fit(X, labels)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 1 and list(clf.classes_) == ["no", "yes"]
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba)
    assert set(clf.predict(X)) <= {"no", "yes"} and clf.score(X, labels) > 0.8


def test_classifier_handles_multilabel_indicators_with_logistic_outputs(blobs):
    X, y = blobs
    Y = np.stack([y == 0, y == 1, y != 2], axis=1).astype(int)
    clf = MLPClassifier(**SMALL).fit(X, Y)
    assert clf.out_activation_ == "logistic" and clf.predict(X).shape == Y.shape
    assert clf.predict_proba(X).shape == Y.shape and [W.shape for W in clf.coefs_] == [(4, 8), (8, 3)]


def test_regressor_fits_multiple_outputs_and_sets_scikit_learns_attributes(regression):
    X, y = regression
    reg = MLPRegressor(**SMALL, early_stopping=True, validation_fraction=0.2).fit(X, y)
    assert reg.predict(X).shape == y.shape and reg.n_outputs_ == 2 and reg.n_layers_ == 3
    assert len(reg.loss_curve_) == len(reg.validation_scores_) == len(reg.validation_loss_curve_) == reg.n_iter_
    assert reg.best_validation_score_ == max(reg.validation_scores_) and reg.best_loss_ is None
    assert reg.t_ == 72 * reg.n_iter_  # samples seen: the 80% kept for training, per epoch


def test_partial_fit_continues_the_optimizer_state_and_needs_classes_first(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="classes"):
        MLPClassifier(**SMALL).partial_fit(X, y)
    clf = MLPClassifier(**SMALL)
    for _ in range(3):
        clf.partial_fit(X[:60], y[:60], classes=[0, 1, 2])
    assert clf.n_iter_ == 1 and clf.t_ == 180 and len(clf.loss_curve_) == 3
    assert int(clf._solver_state[1].step) == 3  # adam's step count carried across calls
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    restored = pickle.loads(pickle.dumps(clf)).partial_fit(X[:60], y[:60])
    assert int(restored._solver_state[1].step) == 4 and len(restored.loss_curve_) == 4


def test_partial_fit_is_refused_for_lbfgs_and_with_early_stopping(blobs):
    X, y = blobs
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    with pytest.raises(ValueError, match="early_stopping"):
        MLPRegressor(early_stopping=True).partial_fit(X, y.astype(float))


def test_lbfgs_honours_max_iter_max_fun_and_tol(blobs):
    X, y = blobs
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        limited = MLPClassifier(**small(max_iter=3, solver="lbfgs")).fit(X, y)
    assert limited.n_iter_ == 3 and len(limited.loss_curve_) == 3
    with pytest.warns(ConvergenceWarning, match="F,G EVALUATIONS EXCEEDS LIMIT"):
        few_calls = MLPClassifier(**SMALL, solver="lbfgs", max_fun=4).fit(X, y)
    assert few_calls.n_iter_ <= 4  # scipy's rule: stop after the iteration that made more than max_fun calls
    loose = MLPClassifier(**SMALL, solver="lbfgs", tol=10.0).fit(X, y)
    assert loose.n_iter_ == 0


def test_lbfgs_sample_weights_equal_repeated_rows(blobs):
    X, y = blobs
    weights = np.arange(len(X)) % 3
    settings = dict(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=10, random_state=0)
    weighted = MLPClassifier(**settings).fit(X, y, sample_weight=weights)
    repeated = MLPClassifier(**settings).fit(np.repeat(X, weights, 0), np.repeat(y, weights))
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X), atol=2e-3)


def test_refits_of_the_same_shapes_compile_nothing(blobs):
    X, y = blobs
    MLPClassifier(**SMALL).fit(X, y)
    MLPClassifier(**SMALL, solver="lbfgs").fit(X, y)
    epochs, solves = run_epoch._cache_size(), _solve._cache_size()
    MLPClassifier(**small(random_state=1, alpha=0.1, learning_rate_init=0.02)).fit(X, y)
    MLPClassifier(**small(max_iter=30, solver="lbfgs", alpha=0.1, tol=1e-3)).fit(X, y)
    assert (run_epoch._cache_size(), _solve._cache_size()) == (epochs, solves)


@pytest.mark.parametrize("optimizer", ["rmsprop", optax.sgd(0.05, momentum=0.9)], ids=["name", "optax_transformation"])
def test_optimizer_overrides_the_solver(blobs, optimizer):
    X, y = blobs
    clf = MLPClassifier(**SMALL, solver="lbfgs", optimizer=optimizer).fit(X, y)
    assert clf.n_iter_ == len(clf.loss_curve_) and hasattr(clf, "partial_fit") and clf.score(X, y) > 0.8


def test_adaptive_learning_rate_and_verbose_progress(blobs, capsys):
    X, y = blobs
    clf = MLPClassifier(**SMALL, solver="sgd", learning_rate="adaptive", n_iter_no_change=1, tol=10.0, verbose=True)
    clf.fit(X, y)
    assert "Iteration 1, loss = " in capsys.readouterr().out
    assert 1 <= clf.n_iter_ < SMALL["max_iter"]  # lr ÷ 5 on each plateau until it is below 1e-6


def test_estimators_work_in_pipeline_grid_search_and_cross_validation(blobs):
    X, y = blobs
    pipeline = make_pipeline(StandardScaler(), MLPClassifier(**SMALL))
    assert cross_val_score(pipeline, X, y, cv=3).mean() > 0.8
    # η = 1e-6 learns nothing in 20 epochs; it is listed first, so if the search's set_params were
    # lost (every candidate the same model) the tie would pick it and this test would fail.
    grid = {"mlpclassifier__learning_rate_init": [1e-6, 1e-2]}
    search = GridSearchCV(pipeline, grid, cv=3).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert scores[0] < 0.7 < 0.9 < scores[1]
    assert search.best_params_ == {"mlpclassifier__learning_rate_init": 1e-2}
    assert search.best_estimator_[-1].learning_rate_init == 1e-2
    assert search.best_score_ == pytest.approx(cross_val_score(search.best_estimator_, X, y, cv=3).mean())
    restored = pickle.loads(pickle.dumps(search.best_estimator_))
    np.testing.assert_array_equal(restored.predict_proba(X), search.best_estimator_.predict_proba(X))


def test_training_error_is_reported_as_scikit_learns_value_error(regression):
    X, y = regression
    with pytest.raises(ValueError, match="non-finite"):
        MLPRegressor(**SMALL, solver="sgd").set_params(learning_rate_init=1e6).fit(X * 1e3, y * 1e6)


def test_warm_start_continues_from_the_fitted_weights(blobs):
    X, y = blobs
    clf = MLPClassifier(**small(warm_start=True)).fit(X, y)
    first_curve = list(clf.loss_curve_)
    clf.fit(X, y)
    assert clf.loss_curve_[:20] == first_curve and len(clf.loss_curve_) == 20 + clf.n_iter_
    assert clf.loss_curve_[20] < first_curve[0] and clf.t_ == 90 * len(clf.loss_curve_)


def test_parity_benchmark_runs_a_small_case_and_prints_its_table():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import bench_sklearn_parity as bench

    case = bench.Case("iris", load_iris, True, dict(solver="adam", hidden_layer_sizes=(8,), max_iter=20))
    result = bench.run_case(case, runs=1)
    assert 0 <= result["diff_points"] <= 100 and result["speedup"] > 0
    assert bench.markdown([result]).splitlines()[2].startswith("| iris | MLPClassifier (adam) | accuracy |")


def test_poisson_regressor_uses_an_exp_output_like_scikit_learn():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = rng.poisson(np.exp(0.5 * X[:, 0] + 0.3 * X[:, 1])).astype(float)
    settings = dict(loss="poisson", hidden_layer_sizes=(8,), max_iter=100)
    ours = [MLPRegressor(**settings, random_state=seed).fit(X, y) for seed in range(5)]
    theirs = [SkMLPRegressor(**settings, random_state=seed).fit(X, y) for seed in range(5)]
    assert ours[0].out_activation_ == theirs[0].out_activation_ == "exp"
    assert np.all(ours[0].predict(X) > 0)
    # Not worse: a median over seeds, since one seed's init decides a lot (scikit-learn's own range over these: -1.65..0.31)
    assert np.median([m.score(X, y) for m in ours]) > np.median([m.score(X, y) for m in theirs]) - 0.1
    with pytest.raises(ValueError, match="valid range"):
        MLPRegressor(loss="poisson", max_iter=5).fit(X, -y - 1)


def _sklearn_stopping_epoch(losses, tol, n_iter_no_change):
    """scikit-learn's no-improvement rule on the training loss, replayed on a loss curve."""
    best, count = np.inf, 0
    for epoch, loss in enumerate(losses, 1):
        count = count + 1 if loss > best - tol else 0
        best = min(best, loss)
        if count > n_iter_no_change:
            return epoch
    return None


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_training_stops_where_sklearns_rule_stops_on_our_own_loss_curve(blobs, solver):
    X, y = blobs
    clf = MLPClassifier(**small(max_iter=400, tol=1e-3, n_iter_no_change=4, solver=solver)).fit(X, y)
    assert clf.n_iter_ < 400
    assert _sklearn_stopping_epoch(clf.loss_curve_, 1e-3, 4) == clf.n_iter_
    assert clf.best_loss_ == min(clf.loss_curve_)


def test_partial_fit_with_an_adaptive_rate_divides_it_when_sklearn_does(blobs):
    X, y = blobs
    settings = small(solver="sgd", learning_rate="adaptive", n_iter_no_change=1, tol=10.0)
    ours, theirs = MLPClassifier(**settings), SkMLPClassifier(**settings)
    rates, expected = [], []
    for _ in range(6):  # tol 10: no epoch is an improvement, so the count runs out every other call
        ours.partial_fit(X, y, classes=[0, 1, 2])
        theirs.partial_fit(X, y, classes=[0, 1, 2])
        rates.append(float(ours._solver_state[1].opt_state.hyperparams["learning_rate"]))
        expected.append(theirs._optimizer.learning_rate)
    assert expected[-1] < expected[0]
    np.testing.assert_allclose(np.array(rates) / rates[0], np.array(expected) / expected[0], rtol=1e-5)


@pytest.mark.parametrize("estimator", [MLPClassifier(**SMALL), MLPRegressor(**SMALL)], ids=["classifier", "regressor"])
@pytest.mark.parametrize("seed", [0, 42])
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-6), (np.float64, 1e-9)], ids=["float32", "float64"])
def test_sample_weights_equal_repeated_rows_to_the_training_precision(estimator, seed, dtype, rtol):
    # scikit-learn's check_sample_weight_equivalence at the training dtype's tolerance: integer
    # weights (zeros included) against the rows repeated that many times, full-batch as there (15 rows).
    rng = np.random.RandomState(seed)
    X, y, weights = rng.rand(15, 30).astype(dtype), rng.randint(0, 3, size=15), rng.randint(0, 5, size=15)
    y = y if is_classifier(estimator) else y.astype(float)
    repeated = clone(estimator).fit(X.repeat(weights, axis=0), y.repeat(weights))
    weighted = clone(estimator).fit(X[::-1], y[::-1], sample_weight=weights[::-1])
    method = "predict_proba" if is_classifier(estimator) else "predict"
    np.testing.assert_allclose(getattr(weighted, method)(X), getattr(repeated, method)(X), rtol=rtol)
    assert not np.allclose(getattr(clone(estimator).fit(X, y), method)(X), getattr(repeated, method)(X), rtol=2e-6)


def _sparsified(X, seed=0):
    """``X`` with about half its entries set to 0 (kept dense)."""
    return np.where(np.random.default_rng(seed).random(X.shape) < 0.5, 0.0, X)


def _traced_peak(call) -> int:
    """Peak bytes allocated through Python's allocators (NumPy's arrays included) during ``call()``."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize(
    "kind, changes",
    [
        ("classifier", {}),
        ("classifier", dict(solver="lbfgs")),
        ("classifier", dict(early_stopping=True)),
        ("regressor", {}),
        ("regressor", dict(solver="lbfgs")),
    ],
    ids=["classifier_adam", "classifier_lbfgs", "classifier_early_stopping", "regressor_adam", "regressor_lbfgs"],
)
def test_sparse_fit_and_predict_give_the_dense_results(blobs, regression, kind, changes, fmt):
    (X, y), estimator = (blobs, MLPClassifier) if kind == "classifier" else (regression, MLPRegressor)
    X = _sparsified(X)
    sparse = scipy.sparse.csr_matrix(X).asformat(fmt)
    dense_fit = estimator(**small(**changes)).fit(X, y)
    sparse_fit = estimator(**small(**changes)).fit(sparse, y)
    pairs = zip(sparse_fit.coefs_ + sparse_fit.intercepts_, dense_fit.coefs_ + dense_fit.intercepts_)
    if changes.get("solver") == "lbfgs":  # the full-batch solve gets the same dense array: the same bits
        for mine, reference in pairs:
            np.testing.assert_array_equal(mine, reference)
        assert sparse_fit.loss_curve_ == dense_fit.loss_curve_
    else:  # padded sparse rows: the first layer sums value x W[column] in another order than the dense matmul
        for mine, reference in pairs:
            np.testing.assert_allclose(mine, reference, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(sparse_fit.loss_curve_, dense_fit.loss_curve_, rtol=1e-9)
    # Prediction is float64 either way; a sparse-dense product sums in another order than BLAS.
    methods = ["predict", "predict_proba", "predict_log_proba"] if kind == "classifier" else ["predict"]
    for method in methods:
        np.testing.assert_allclose(
            getattr(sparse_fit, method)(sparse), getattr(dense_fit, method)(X), rtol=1e-12, atol=1e-12
        )
    assert sparse_fit.score(sparse, y) == pytest.approx(dense_fit.score(X, y), rel=1e-12)


@pytest.mark.parametrize("estimator", [MLPClassifier, MLPRegressor], ids=["classifier", "regressor"])
def test_sparse_partial_fit_gives_the_dense_results(blobs, estimator):
    X, y = blobs
    X = _sparsified(X)
    y = y if estimator is MLPClassifier else y.astype(float)
    extra = dict(classes=[0, 1, 2]) if estimator is MLPClassifier else {}
    dense_fit, sparse_fit = estimator(**SMALL), estimator(**SMALL)
    for _ in range(2):
        dense_fit.partial_fit(X, y, **extra)
        sparse_fit.partial_fit(scipy.sparse.csr_matrix(X), y, **extra)
    for mine, reference in zip(sparse_fit.coefs_ + sparse_fit.intercepts_, dense_fit.coefs_ + dense_fit.intercepts_):
        np.testing.assert_allclose(mine, reference, rtol=1e-9, atol=1e-10)  # float64: sums in another order


def test_a_stochastic_sparse_fit_is_never_densified():
    wide = scipy.sparse.random(400, 200_000, density=2e-5, format="csr", random_state=0)  # 640 MB dense float64
    y = np.arange(400) % 2
    peak = _traced_peak(lambda: MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(wide, y))
    assert peak < 8 * wide.shape[0] * wide.shape[1] / 20  # W (6.4 MB in float64) and padded rows, no dense copy


def test_dense_array_writes_blocks_of_rows_with_the_values_of_toarray():
    rows, cols = [0, 0, 3, 5, 5], [1, 1, 2, 0, 3]  # a repeated entry (0, 1): stored twice, summed
    values = np.array([0.1, 0.2, 1 / 3, -2.0, 1e-40])
    for sparse in [scipy.sparse.coo_matrix((values, (rows, cols)), shape=(7, 4)).asformat(f) for f in ("csr", "csc")]:
        for dtype in (np.float32, np.float64):
            expected = np.asarray(sparse.toarray(), dtype)
            for block_bytes in (1, 64, 1 << 20):  # one row, two rows, everything per block
                dense = dense_array(sparse, dtype, block_bytes=block_bytes)
                assert dense.dtype == dtype
                np.testing.assert_array_equal(dense, expected)
    wide = scipy.sparse.random(2000, 4000, density=1e-3, format="csr", random_state=0)  # float64
    result, block = 4 * 2000 * 4000, 1 << 20
    peak = _traced_peak(lambda: dense_array(wide, np.float32, block_bytes=block))
    assert result <= peak < result + 2 * block  # the float32 result and one float64 block, not a float64 copy


def test_sparse_predict_does_not_materialise_the_dense_matrix():
    n_features = 20_000
    fit_rows = scipy.sparse.random(60, n_features, density=2e-3, format="csr", random_state=0)
    y = np.arange(60) % 3
    clf = MLPClassifier(**SMALL).fit(fit_rows, y)
    wide = scipy.sparse.random(2000, n_features, density=2.5e-4, format="csr", random_state=1)
    dense_bytes = 8 * wide.shape[0] * wide.shape[1]  # float64, 320 MB
    for X in (wide, wide.tocsc()):
        for call in (clf.predict, clf.predict_proba, lambda X: clf.score(X, np.arange(2000) % 3)):
            assert _traced_peak(lambda: call(X)) < dense_bytes / 100
    head = wide[:100]
    np.testing.assert_allclose(clf.predict_proba(head), clf.predict_proba(head.toarray()), rtol=1e-12, atol=1e-12)


def test_lbfgs_sparse_fits_too_large_to_densify_are_refused_before_anything_trains(blobs, monkeypatch):
    X, y = blobs
    sparse = scipy.sparse.csr_matrix(_sparsified(X))  # float64: the L-BFGS fit trains on a float64 copy
    lbfgs = small(solver="lbfgs")
    monkeypatch.setattr(_estimator, "SPARSE_FIT_MAX_DENSE_BYTES", 8 * X.size - 1)
    clf = MLPClassifier(**lbfgs)
    with pytest.raises(ValueError, match=r"shape \(90, 4\).*dense float64 copy.*SPARSE_FIT_MAX_DENSE_BYTES.*toarray"):
        clf.fit(sparse, y)
    assert not hasattr(clf, "coefs_")
    clf.fit(sparse.toarray(), y)  # the dense array is taken as it is
    MLPClassifier(**lbfgs).fit(sparse.astype(np.float32), y)  # a float32 copy: half the size
    MLPClassifier(**SMALL).fit(sparse, y)  # a stochastic fit never densifies: no limit
    monkeypatch.setattr(_estimator, "SPARSE_FIT_MAX_DENSE_BYTES", 8 * X.size)
    MLPClassifier(**lbfgs).fit(sparse, y)  # exactly at the limit: densified


def test_default_limit_refuses_a_huge_sparse_fit_without_allocating_it():
    huge = scipy.sparse.csr_matrix(([1.0], ([0], [0])), shape=(100_000, 1_000_000), dtype=np.float32)  # 400 GB dense
    with pytest.raises(ValueError, match=r"381,469.7 MiB, above the limit for sparse input of 1,024.0 MiB"):
        MLPRegressor(**small(solver="lbfgs")).fit(huge, np.zeros(100_000))


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_a_multi_output_loss_is_scikit_learns_half_squared_error_averaged_over_the_outputs(solver):
    X, Y = make_regression(300, 6, n_targets=4, noise=5, random_state=0)
    Y = Y / Y.std()
    kw = dict(hidden_layer_sizes=(16,), solver=solver, alpha=0.0, max_iter=300, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = MLPRegressor(batch_size=300, shuffle=False, **kw).fit(X, Y)
    # scikit-learn's LOSS_FUNCTIONS["squared_error"] at the final weights: a mean over rows and outputs, halved
    expected = LOSS_FUNCTIONS["squared_error"](Y, fitted.predict(X))
    assert fitted.loss_ == pytest.approx(expected, rel=0.03)  # the last epoch's loss, before its update
