"""SweepSearchCV: GridSearchCV's results and API, its candidates × folds trained as members of one sweep."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
from sklearn.model_selection import GridSearchCV, KFold

import ffnn_jax
from ffnn_jax._loop import run_members
from ffnn_jax.estimators import MLPClassifier, MLPRegressor


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
SMALL = dict(hidden_layer_sizes=(8,), max_iter=30, learning_rate_init=0.01, random_state=0)
GRID = {"alpha": [1e-4, 1e-2], "learning_rate_init": [1e-2, 3e-2]}


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def searched(iris):
    """A classifier search and GridSearchCV's on the same estimator, grid and cv."""
    X, y = iris
    ours = ffnn_jax.SweepSearchCV(MLPClassifier(**SMALL), GRID, cv=3).fit(X, y)
    theirs = GridSearchCV(MLPClassifier(**SMALL), GRID, cv=3).fit(X, y)
    return ours, theirs


def _same_results(ours, theirs, *, rtol=1e-6):
    assert set(ours.cv_results_) == set(theirs.cv_results_)
    assert ours.cv_results_["params"] == theirs.cv_results_["params"]
    for name in theirs.cv_results_:
        if name.startswith("split") or name in ("mean_test_score", "std_test_score"):
            np.testing.assert_allclose(ours.cv_results_[name], theirs.cv_results_[name], rtol=rtol, atol=1e-9)
        elif name.startswith("param_"):
            assert list(ours.cv_results_[name]) == list(theirs.cv_results_[name])
    np.testing.assert_array_equal(ours.cv_results_["rank_test_score"], theirs.cv_results_["rank_test_score"])
    assert ours.best_params_ == theirs.best_params_ and ours.best_index_ == theirs.best_index_
    assert ours.best_score_ == pytest.approx(theirs.best_score_, rel=rtol)


def test_a_classifier_search_gives_grid_search_cvs_scores_and_best_candidate(searched):
    ours, theirs = searched
    _same_results(ours, theirs)
    assert ours.n_splits_ == theirs.n_splits_ == 3 and ours.n_programs_ == 1
    assert np.all(ours.cv_results_["mean_fit_time"] > 0) and np.all(ours.cv_results_["mean_score_time"] > 0)


def test_a_regressor_search_with_a_scorer_and_structural_parameters(iris):
    X, y = iris
    X, y = X[:, 1:], X[:, 0]
    grid = {"hidden_layer_sizes": [(4,), (8,)], "alpha": [1e-4, 1e-1]}
    settings = dict(estimator=MLPRegressor(**SMALL), param_grid=grid, cv=KFold(3), scoring="neg_mean_squared_error")
    ours = ffnn_jax.SweepSearchCV(**settings).fit(X, y)
    theirs = GridSearchCV(**settings).fit(X, y)
    _same_results(ours, theirs, rtol=1e-5)  # the vmapped sums round like the standalone ones, to the last bits
    assert ours.n_programs_ == 2  # one per hidden size
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), rel=1e-5)


def test_the_candidates_times_folds_run_in_one_compiled_program(iris):
    X, y = iris
    before = run_members._cache_size()
    search = ffnn_jax.SweepSearchCV(
        MLPClassifier(**{**SMALL, "hidden_layer_sizes": (5,)}), {"alpha": [1e-4, 1e-2], "random_state": [0, 1, 2]},
        cv=3, refit=False,
    ).fit(X, y)  # fmt: skip
    assert run_members._cache_size() - before == 1  # 6 candidates × 3 folds: one program
    assert search.n_programs_ == 1 and len(search.cv_results_["params"]) == 6


def test_fits_sweep_cannot_express_run_one_by_one_and_still_match_grid_search_cv(iris):
    X, y = iris
    grid = [{"solver": ["lbfgs"]}, {"solver": ["adam"], "early_stopping": [False, True]}]
    ours = ffnn_jax.SweepSearchCV(MLPClassifier(**SMALL), grid, cv=3).fit(X, y)
    theirs = GridSearchCV(MLPClassifier(**SMALL), grid, cv=3).fit(X, y)
    _same_results(ours, theirs)
    assert ours.n_programs_ == 2  # L-BFGS fits alone; adam with and without early stopping swept


@pytest.mark.filterwarnings("ignore:One or more of the test scores are non-finite")
def test_a_diverging_fit_scores_error_score_as_in_grid_search_cv(iris):
    X, y = iris
    X, y = X[:, 1:], X[:, 0] * 1e3
    grid = {"learning_rate_init": [1e-3, 1e3]}
    settings = dict(estimator=MLPRegressor(**{**SMALL, "solver": "sgd"}), param_grid=grid, cv=KFold(3))
    with pytest.warns(FitFailedWarning, match="3 fits failed out of a total of 6"):
        ours = ffnn_jax.SweepSearchCV(**settings).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = GridSearchCV(**settings).fit(X, y)
    assert np.isnan(ours.cv_results_["mean_test_score"][1]) and np.isnan(theirs.cv_results_["mean_test_score"][1])
    _same_results(ours, theirs)
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
        ffnn_jax.SweepSearchCV(**settings, error_score="raise").fit(X, y)


def test_the_refit_best_estimator_serves_predict_score_and_classes(searched, iris):
    X, y = iris
    ours, theirs = searched
    best = ours.best_estimator_
    assert best.get_params() == theirs.best_estimator_.get_params() and ours.refit_time_ > 0
    np.testing.assert_array_equal(ours.predict(X), best.predict(X))
    np.testing.assert_array_equal(ours.predict_proba(X), best.predict_proba(X))
    np.testing.assert_array_equal(ours.classes_, [0, 1, 2])
    assert ours.score(X, y) == best.score(X, y) and ours.n_features_in_ == 4
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-6, atol=1e-9)


def test_without_refit_the_best_candidate_is_known_but_nothing_predicts(iris):
    X, y = iris
    search = ffnn_jax.SweepSearchCV(MLPClassifier(**SMALL), {"alpha": [1e-4, 1e-2]}, cv=3, refit=False).fit(X, y)
    assert search.best_params_ in search.cv_results_["params"] and not hasattr(search, "best_estimator_")
    with pytest.raises(AttributeError, match="has no attribute 'predict'"):  # as GridSearchCV(refit=False)
        search.predict(X)


@pytest.mark.parametrize(
    "changes, error, message",
    [
        (dict(param_grid={"alpah": [1e-4]}), ValueError, r"`param_grid` names parameters \['alpah'\] that MLPClass"),
        (dict(param_grid={"alpha": 1e-4}), TypeError, "needs to be a list or a numpy array"),
        (dict(cv="abc"), ValueError, "`cv`='abc' gives no folds"),
        (dict(cv=1), ValueError, "`cv`=1 gives no folds: .*n_splits=2 or more"),
        (dict(scoring=["accuracy"]), TypeError, "`scoring` must be None, a scorer name or a callable"),
        (dict(scoring="accuracyy"), ValueError, "'scoring' parameter .* Got 'accuracyy' instead"),
        (dict(refit="yes"), TypeError, "`refit` must be True or False"),
    ],
    ids=["unknown-parameter", "not-a-list", "cv-string", "cv-one", "multi-metric", "unknown-scorer", "refit"],
)
def test_bad_arguments_raise_naming_them_before_anything_trains(iris, changes, error, message):
    X, y = iris
    settings = {"estimator": MLPClassifier(**SMALL), "param_grid": {"alpha": [1e-4]}, **changes}
    with pytest.raises(error, match=message):
        ffnn_jax.SweepSearchCV(**settings).fit(X, y)


def test_it_clones_and_exposes_its_parameters_and_the_estimators_as_scikit_learn_does(searched):
    search, _ = searched
    params = search.get_params()
    assert {"estimator", "param_grid", "cv", "scoring", "refit", "error_score", "estimator__alpha"} <= set(params)
    copy = clone(search)
    assert not hasattr(copy, "cv_results_") and copy.get_params()["param_grid"] == GRID
    copy.set_params(cv=4, estimator__alpha=0.5)
    assert copy.cv == 4 and copy.estimator.alpha == 0.5 and search.estimator.alpha == 1e-4
    assert "SweepSearchCV(" in repr(copy)


def test_a_convergence_warning_of_a_member_fit_is_the_fits_own(iris):
    X, y = iris
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(30\) reached"):
        ffnn_jax.SweepSearchCV(MLPClassifier(**SMALL), {"alpha": [1e-4]}, cv=3, refit=False).fit(X, y)
