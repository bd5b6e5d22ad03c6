"""``SweepSearchCV``: scikit-learn's ``GridSearchCV`` with its fits run as members of one sweep.

Each candidate × fold is the fit ``GridSearchCV`` makes: a clone of the estimator with the
candidate's parameters, fitted on the fold's training rows. The fit's :func:`ffnn_jax.train` call
is recorded instead of run (through :data:`ffnn_jax._estimator.TRAINER`, so scikit-learn's
hyperparameters map to train() settings in the estimator alone); the recorded calls train
together through :func:`ffnn_jax._sweep.train_members`, one compiled program per structure; then
each fit is run again with its member's result in place of train(), so it ends as the fitted
estimator its own fit would give (``coefs_``, ``loss_curve_``, ``n_iter_``, warnings). Scores
are the scorer's on those estimators and the held-out rows, as ``GridSearchCV``'s.
"""

import dataclasses
import hashlib
import numbers
import time
import warnings
from typing import Any, List, Optional

import jax
import numpy as np
from scipy.stats import rankdata
from sklearn.base import clone, is_classifier
from sklearn.exceptions import FitFailedWarning
from sklearn.metrics import check_scoring
from sklearn.model_selection import ParameterGrid, check_cv
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import indexable

from ._config import TrainConfig
from ._estimator import TRAINER
from ._sweep import Member, train_members
from ._train import TrainingDivergedError, train


_CALL_DATA = ("validation_data", "sample_weight", "initial_params", "callbacks")  # train() keywords, not settings


class _Recorded(Exception):
    """Ends a fit at its train() call, carrying the call."""

    def __init__(self, args: tuple, kwargs: dict):
        super().__init__("train() call recorded for a sweep")
        self.call = (args, kwargs)


def _record(*args, **kwargs):
    """The trainer of a first pass: records a call a sweep member can stand for; runs any other
    (sparse ``X``, ``verbose``'s callbacks, an optax transformation, a warm state) as it is."""
    x = args[0]
    settings_only = "initial_state" not in kwargs and not kwargs.get("callbacks")
    if isinstance(x, np.ndarray) and settings_only and isinstance(kwargs.get("optimizer"), str):
        raise _Recorded(args, kwargs)
    return train(*args, **kwargs)


def _replay(result):
    """The trainer of the second pass: hands back the member's ``result`` (raising train()'s
    error first where the member diverged, as the standalone call would)."""
    raised = []

    def trainer(*args, **kwargs):
        del args, kwargs
        if bool(result.run.diverged) and not raised:
            raised.append(True)
            history = result.history
            epoch = len(history.get("epoch", [])) + 1
            raise TrainingDivergedError(epoch, int(result.run.diverged_step), result.params, history)
        return result

    return trainer


@dataclasses.dataclass
class _Fit:
    """One candidate × fold."""

    candidate: int
    split: int
    estimator: Any = None  # fitted, or None while not (yet) or when the fit failed
    member: Optional[Member] = None  # its recorded train() call, as a sweep member
    error: Optional[BaseException] = None
    fit_time: float = 0.0
    score: float = np.nan
    score_time: float = 0.0


def _as_member(call: tuple, split: int, arrays: dict) -> Member:
    """A recorded ``train(x, y, **kwargs)`` call as a sweep member; its data go into ``arrays``
    once per split and content (every candidate of a split shares them)."""
    (x, targets), kwargs = call
    data = (x, targets, kwargs.get("validation_data"), kwargs.get("sample_weight"))
    h = hashlib.sha256()
    leaves, structure = jax.tree_util.tree_flatten(data)
    for leaf in leaves:
        leaf = np.ascontiguousarray(leaf)
        h.update(f"{leaf.shape}{leaf.dtype.str}".encode())
        h.update(leaf.tobytes())
    key = (split, str(structure), h.hexdigest())
    arrays.setdefault(key, data)
    settings = {name: value for name, value in kwargs.items() if name not in _CALL_DATA}
    return Member(TrainConfig(**settings), key, kwargs.get("initial_params"))


class SweepSearchCV(BaseSearchCV):
    """Exhaustive search over ``param_grid`` with cross-validation, as ``GridSearchCV``, whose
    fits of an ffnn_jax estimator run as members of one compiled program per structure.

    Every candidate × fold is the fit ``GridSearchCV`` would make (same folds: ``check_cv``,
    stratified for classifiers; same clones and seeds), trained by :func:`ffnn_jax.train`'s
    loop ``jax.vmap``ped over the members: numeric parameters (``alpha``,
    ``learning_rate_init``, ``momentum``, ``beta_1``, ``tol``, ``max_iter``, ``random_state``, ...)
    vary inside one program; parameters that change structure (``hidden_layer_sizes``,
    ``activation``, ``solver``, ``batch_size``) and folds of different sizes make one program
    each. Fits ``sweep()`` cannot express run one by one with ``clone(...).fit``: ``solver="lbfgs"``,
    ``learning_rate="invscaling"`` and optax ``optimizer`` objects, ``verbose``, sparse ``X``,
    and any estimator that is not ffnn_jax's.

    Args:
      estimator: an :class:`ffnn_jax.MLPClassifier` or :class:`ffnn_jax.MLPRegressor` (or any
        scikit-learn estimator, fitted one by one).
      param_grid: a dict of lists or a list of such dicts, as ``GridSearchCV``'s.
      cv: folds as ``GridSearchCV`` takes them: an int (``StratifiedKFold`` for classifiers,
        ``KFold`` otherwise), a splitter or an iterable of (train, test) index pairs.
      scoring: None (the estimator's ``score``: accuracy or R²), a scorer name or a callable
        ``scorer(estimator, X, y)``; one metric.
      refit: refit the best candidate on all the data (``best_estimator_``, ``predict``, ...).
      error_score: the score of a fit that fails (a diverging one included), or ``"raise"``.

    Attributes (after ``fit``): ``cv_results_`` (``GridSearchCV``'s keys: ``params``,
    ``param_<name>``, ``split<k>_test_score``, ``mean_test_score``, ``std_test_score``,
    ``rank_test_score``, ``mean_fit_time``, ...; a fit's time is its share of the sweep's time
    plus its own host work), ``best_params_``, ``best_score_``, ``best_index_``,
    ``best_estimator_``, ``refit_time_``, ``n_splits_``, ``scorer_``, ``classes_`` (classifiers),
    and ``n_programs_``: the compiled sweep programs the fits ran in.

    Examples:
      >>> from sklearn.datasets import load_iris
      >>> X, y = load_iris(return_X_y=True)
      >>> search = SweepSearchCV(MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0),
      ...                        {"alpha": [1e-4, 1e-2], "learning_rate_init": [1e-2, 3e-2]}, cv=3).fit(X, y)
      >>> len(search.cv_results_["params"]), search.n_programs_
      (4, 1)
    """

    def __init__(self, estimator, param_grid, *, cv=5, scoring=None, refit=True, error_score=np.nan):
        self.estimator = estimator
        self.param_grid = param_grid
        self.cv = cv
        self.scoring = scoring
        self.refit = refit
        self.error_score = error_score

    def fit(self, X, y=None, *, groups=None, **fit_params) -> "SweepSearchCV":
        """Fits every candidate on every fold (as sweep members), then refits the best on ``X, y``.

        Args:
          X, y: the data, as ``GridSearchCV.fit`` takes them.
          groups: group labels for a group splitter ``cv``.
          **fit_params: passed to each fit (``sample_weight``: the fold's rows of it).

        Returns:
          ``self``.

        Raises:
          ValueError: a parameter the estimator does not have, a bad ``cv`` or ``scoring``, or
            every fit failing (``error_score`` ``"raise"``: the first failure).
        """
        candidates = self._check_inputs()
        scorer = check_scoring(self.estimator, scoring=self.scoring)
        X, y, groups = indexable(X, y, groups)
        try:
            cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
            splits = list(cv.split(X, y, groups))
        except (TypeError, ValueError) as error:
            raise ValueError(f"`cv`={self.cv!r} gives no folds: {error}") from error
        base = clone(self.estimator)
        fits = [_Fit(c, k) for c in range(len(candidates)) for k in range(len(splits))]
        n, arrays = len(X), {}

        def fit_with(trainer, fit: _Fit) -> None:
            rows = splits[fit.split][0]
            params = {k: _safe_indexing(v, rows) if np.ndim(v) and len(v) == n else v for k, v in fit_params.items()}
            estimator = clone(base).set_params(**clone(candidates[fit.candidate], safe=False))
            start, token, call = time.perf_counter(), TRAINER.set(trainer), None
            try:
                estimator.fit(_safe_indexing(X, rows), _safe_indexing(y, rows), **params)
                fit.estimator = estimator
            except _Recorded as recorded:
                call = recorded.call
            except Exception as error:  # noqa: BLE001 -- GridSearchCV's error_score
                if self.error_score == "raise":
                    raise
                fit.error = error
            finally:
                TRAINER.reset(token)
                fit.fit_time += time.perf_counter() - start
            if call is not None:
                fit.member = _as_member(call, fit.split, arrays)

        for fit in fits:
            fit_with(_record, fit)
        self.n_programs_ = self._train_recorded([fit for fit in fits if fit.member is not None], arrays, fit_with)
        for fit in fits:
            self._score(fit, scorer, X, y, splits[fit.split][1])
        self._report_failures(fits)
        self._store_results(candidates, fits, len(splits))
        self.scorer_, self.multimetric_, self.n_splits_ = scorer, False, len(splits)
        if self.refit:
            self.best_estimator_ = clone(base).set_params(**clone(self.best_params_, safe=False))
            start = time.perf_counter()
            self.best_estimator_.fit(X, y, **fit_params)
            self.refit_time_ = time.perf_counter() - start
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_
        return self

    def _check_inputs(self) -> List[dict]:
        """The candidates, after checking the grid's names against the estimator's parameters."""
        if not isinstance(self.refit, bool):
            raise TypeError(f"`refit` must be True or False, got {self.refit!r}")
        if self.scoring is not None and not isinstance(self.scoring, str) and not callable(self.scoring):
            raise TypeError(
                f"`scoring` must be None, a scorer name or a callable scorer(estimator, X, y), got {self.scoring!r}"
            )
        if not (self.error_score == "raise" or isinstance(self.error_score, numbers.Real)):
            raise TypeError(f"`error_score` must be 'raise' or a number, got {self.error_score!r}")
        candidates = list(ParameterGrid(self.param_grid))
        known = self.estimator.get_params(deep=True)
        unknown = sorted({name for candidate in candidates for name in candidate} - set(known))
        if unknown:
            raise ValueError(
                f"`param_grid` names parameters {unknown} that {type(self.estimator).__name__} does not have; "
                f"its parameters are {sorted(known)}"
            )
        return candidates

    @staticmethod
    def _train_recorded(recorded: List[_Fit], arrays: dict, fit_with) -> int:
        """The recorded fits' members in one sweep, then each fit again with its member's result;
        returns the compiled programs."""
        if not recorded:
            return 0
        start = time.perf_counter()
        trained = train_members([fit.member for fit in recorded], arrays)
        share = (time.perf_counter() - start) / len(recorded)
        for fit, result in zip(recorded, trained.results):
            fit.fit_time += share
            fit_with(_replay(result), fit)
        return trained.programs

    def _score(self, fit: _Fit, scorer, X, y, rows) -> None:
        if fit.estimator is None:
            fit.score = self.error_score
            return
        start = time.perf_counter()
        try:
            fit.score = float(scorer(fit.estimator, _safe_indexing(X, rows), _safe_indexing(y, rows)))
        except Exception as error:  # noqa: BLE001 -- GridSearchCV's error_score
            if self.error_score == "raise":
                raise
            fit.error, fit.score = error, self.error_score
        fit.score_time = time.perf_counter() - start

    @staticmethod
    def _report_failures(fits: List[_Fit]) -> None:
        """GridSearchCV's reports: an error when every fit failed, else a ``FitFailedWarning``."""
        failed = [fit for fit in fits if fit.error is not None]
        if not failed:
            return
        first = f"{type(failed[0].error).__name__}: {failed[0].error}"
        if len(failed) == len(fits):
            raise ValueError(f"All the {len(fits)} fits failed; the first failure: {first}") from failed[0].error
        warnings.warn(f"{len(failed)} fits failed out of a total of {len(fits)} (their score is error_score); "
                      f"the first failure: {first}", FitFailedWarning, stacklevel=3)  # fmt: skip

    def _store_results(self, candidates: List[dict], fits: List[_Fit], n_splits: int) -> None:
        """``cv_results_`` with GridSearchCV's keys, and the best candidate."""
        shape = (len(candidates), n_splits)
        results = {}
        for name in ("fit_time", "score_time"):
            times = np.array([getattr(fit, name) for fit in fits]).reshape(shape)
            results[f"mean_{name}"], results[f"std_{name}"] = times.mean(axis=1), times.std(axis=1)
        for name in dict.fromkeys(name for candidate in candidates for name in candidate):
            column = np.ma.MaskedArray(np.empty(len(candidates), dtype=object), mask=True)
            for i, candidate in enumerate(candidates):
                if name in candidate:
                    column[i] = candidate[name]
            results[f"param_{name}"] = column
        results["params"] = candidates
        scores = np.array([fit.score for fit in fits], dtype=np.float64).reshape(shape)
        for k in range(n_splits):
            results[f"split{k}_test_score"] = scores[:, k]
        means = scores.mean(axis=1)
        results["mean_test_score"], results["std_test_score"] = means, scores.std(axis=1)
        if not np.all(np.isfinite(means)):
            warnings.warn(f"One or more of the test scores are non-finite: {means}", UserWarning, stacklevel=3)
        if np.isnan(means).all():
            results["rank_test_score"] = np.ones(len(means), np.int32)
        else:  # failed candidates tie with the worst, as GridSearchCV ranks them
            ranked = np.where(np.isnan(means), np.nanmin(means) - 1, means)
            results["rank_test_score"] = rankdata(-ranked, method="min").astype(np.int32)
        self.cv_results_ = results
        self.best_index_ = int(results["rank_test_score"].argmin())
        self.best_score_ = float(means[self.best_index_])
        self.best_params_ = candidates[self.best_index_]
