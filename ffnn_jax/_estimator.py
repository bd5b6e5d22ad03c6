"""``MLPClassifier`` and ``MLPRegressor``: scikit-learn's API over :func:`ffnn_jax.train`.

The estimators are the only stateful objects: they check inputs with scikit-learn's utilities,
encode labels, turn scikit-learn's hyperparameters into one :func:`train` call (or one
:func:`~ffnn_jax._lbfgs.minimize_lbfgs` call for ``solver="lbfgs"``) and keep the result as NumPy
arrays, so they pickle and clone. How the settings map is told in :mod:`ffnn_jax.estimators`.

Sparse ``X`` (scipy CSR or CSC) is never densified as a whole by ``predict``: its first layer is
a sparse-dense product. ``fit`` needs a dense array (:func:`train` places ``x`` on the device),
so it writes one float32 copy a block of rows at a time, refusing past
``SPARSE_FIT_MAX_DENSE_BYTES``.
"""

import numbers
import warnings
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.sparse
import scipy.special
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ._lbfgs import LIMIT_REACHED, STATUS_MESSAGES, minimize_lbfgs
from ._optim import OPTIMIZERS, make_optimizer
from ._params import WEIGHT_INITS, init_params
from ._step import TrainState
from ._train import TrainingDivergedError, train
from ._types import ArrayLike, LayerParams


SGD_FAMILY = ("sgd", "momentum", "nag")  # updates scale with the gradient: η/c undoes our factor c
NON_FINITE_MSG = (
    "Solver produced non-finite parameter weights. The input data may contain large values and need to be preprocessed."
)
NUMPY_ACTIVATIONS = {
    "identity": lambda a: a,
    "logistic": scipy.special.expit,
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, 0),
}
SPARSE_FIT_MAX_DENSE_BYTES = 1 << 30  # largest dense float32 copy fit makes of a sparse X (1 GiB)
DENSIFY_BLOCK_BYTES = 1 << 24  # a sparse X is densified in blocks of rows of about 16 MiB


def check_sparse_fit_size(X) -> None:
    """Refuses a sparse ``X`` [n, d] whose dense float32 copy (what fit trains on) would exceed
    ``SPARSE_FIT_MAX_DENSE_BYTES``, before anything is allocated."""
    dense, limit = 4 * X.shape[0] * X.shape[1], SPARSE_FIT_MAX_DENSE_BYTES
    if dense > limit:
        raise ValueError(
            f"`X` is a sparse matrix of shape {X.shape} ({X.nnz} stored values); fit trains on a dense float32 "
            f"copy of it, which would take {dense / 2**20:,.1f} MiB, above the limit for sparse input of "
            f"{limit / 2**20:,.1f} MiB (SPARSE_FIT_MAX_DENSE_BYTES). Reduce the features (e.g. feature selection "
            "or TruncatedSVD), fit on fewer rows, or pass X.toarray() to train on the dense array anyway."
        )


def dense_float32(X, *, block_bytes: int = DENSIFY_BLOCK_BYTES) -> np.ndarray:
    """``X`` [n, d] as a dense float32 array: a sparse ``X`` is written a block of rows at a time
    (each about ``block_bytes`` in its own dtype, then rounded to float32), so the result is the
    only full-size array made, with the values ``np.asarray(X.toarray(), np.float32)`` has."""
    if not scipy.sparse.issparse(X):
        return np.asarray(X, np.float32)
    X = X.tocsr()  # row blocks (a CSC X is converted once, O(stored values))
    dense = np.empty(X.shape, np.float32)
    rows = max(1, block_bytes // (X.dtype.itemsize * max(1, X.shape[1])))
    for start in range(0, X.shape[0], rows):
        dense[start : start + rows] = X[start : start + rows].toarray()
    return dense


def glorot_logistic(key, shape, dtype):
    """scikit-learn's init for logistic hidden units: W ~ U(±√(2 / (fan_in + fan_out)))."""
    limit = np.sqrt(2.0 / (shape[0] + shape[1]))
    return jax.random.uniform(key, shape, dtype, minval=-limit, maxval=limit)


def epoch_inverse_scaling(power_t: float, *, samples_seen: int, samples_per_epoch: int, steps_per_epoch: int):
    """scikit-learn's ``invscaling`` as an optax transformation: during epoch k ≥ 1 of a fit,
    updates are scaled by (t + 1)^(−power_t), t = samples_seen + k·samples_per_epoch; epoch 0
    keeps factor 1, as scikit-learn's fresh optimizer does even after a warm start. A state
    continued by ``partial_fit`` keeps counting updates (exact when the calls have equal sizes)."""

    def factory(power_t, samples_seen, samples_per_epoch, steps_per_epoch):
        def factor(count):
            epoch = jnp.floor(count / steps_per_epoch)
            return jnp.where(epoch == 0, 1.0, (samples_seen + epoch * samples_per_epoch + 1.0) ** -power_t)

        return optax.scale_by_schedule(factor)

    counts = dict(samples_seen=samples_seen, samples_per_epoch=samples_per_epoch, steps_per_epoch=steps_per_epoch)
    return optax.inject_hyperparams(factory)(power_t=power_t, **counts)


def _to_host(state: TrainState) -> TrainState:
    """NumPy copy of a state (the PRNG key as its raw data) for pickling."""
    return jax.device_get(state._replace(key=jax.random.key_data(state.key)))


def _to_device(state: TrainState) -> TrainState:
    return state._replace(key=jax.random.wrap_key_data(jnp.asarray(state.key)))


class _BaseMLP(BaseEstimator):
    """Shared fitting logic; see :class:`MLPClassifier` and :class:`MLPRegressor`."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(NUMPY_ACTIVATIONS))],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="left")],  # scikit-learn also allows 1
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left"), Options(numbers.Real, {np.inf})],
        "max_fun": [Interval(numbers.Integral, 1, None, closed="left")],
        "optimizer": [None, StrOptions(set(OPTIMIZERS)), optax.GradientTransformation],
        "weight_init": [None, StrOptions(set(WEIGHT_INITS)), callable],
    }

    def _is_stochastic(self) -> bool:
        return self.optimizer is not None or self.solver != "lbfgs"

    def _check_solver(self) -> bool:
        if not self._is_stochastic():
            raise AttributeError(
                f"partial_fit is only available for stochastic optimizers. {self.solver} is not stochastic."
            )
        return True

    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: Optional[ArrayLike] = None) -> "_BaseMLP":
        """Fits the network (from scratch, or from the current weights with ``warm_start``).

        Args:
          X: inputs [n, d], dense or scipy sparse (trained on a dense float32 copy, made a block of
            rows at a time, of at most ``SPARSE_FIT_MAX_DENSE_BYTES``).
          y: labels [n] or 0/1 indicators [n, k] (classifier); targets [n] or [n, k] (regressor).
          sample_weight: optional [n] non-negative row weights.

        Returns:
          ``self``, fitted.

        Raises:
          ValueError: invalid data or parameters (naming them), a sparse ``X`` too large to
            densify, or a diverging solver.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, *, incremental: bool):
        self._validate_params()
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        hidden = list(self.hidden_layer_sizes) if np.iterable(self.hidden_layer_sizes) else [self.hidden_layer_sizes]
        if any(not isinstance(h, numbers.Integral) or h <= 0 for h in hidden):
            raise ValueError(f"`hidden_layer_sizes` must be positive integers, got {self.hidden_layer_sizes!r}")
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = validate_data(
            self, X, y, accept_sparse=["csr", "csc"], multi_output=True, dtype=(np.float64, np.float32),
            y_numeric=not is_classifier(self), reset=first_pass,
        )  # fmt: skip
        if scipy.sparse.issparse(X):  # densified after the validation split (one float32 copy in all)
            check_sparse_fit_size(X)
            X = X.tocsr()
        else:
            X = np.asarray(X, np.float32)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        targets, loss, out_activation, n_outputs = self._encode_targets(y, incremental)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float32, ensure_non_negative=True)
        sizes = [X.shape[1], *hidden, n_outputs]
        if first_pass:
            self._initialize(n_outputs, len(sizes), out_activation)
        elif [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_] != sizes:
            raise ValueError(
                f"`hidden_layer_sizes` and the outputs give layer sizes {sizes}, but the fitted network has other sizes"
            )
        params = None if first_pass else tuple(map(LayerParams, self.coefs_, self.intercepts_))
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        settings = dict(activation=self.activation, loss=loss, scale=2.0 if loss == "squared_error" else 1.0)
        try:
            if self._is_stochastic():
                self._fit_stochastic(X, targets, sample_weight, params, hidden, seed, incremental, **settings)
            else:
                self._fit_lbfgs(X, targets, sample_weight, params, sizes, seed, **settings)
        except TrainingDivergedError as error:
            raise ValueError(NON_FINITE_MSG) from error
        return self

    def _initialize(self, n_outputs: int, n_layers: int, out_activation: str):
        self.n_iter_, self.t_, self.n_outputs_, self.n_layers_ = 0, 0, n_outputs, n_layers
        self.out_activation_ = out_activation
        self.loss_curve_, self._solver_state = [], None
        self.best_loss_ = None if self.early_stopping else np.inf
        self.validation_scores_ = [] if self.early_stopping else None
        self.validation_loss_curve_ = [] if self.early_stopping else None
        self.best_validation_score_ = -np.inf if self.early_stopping else None

    def _init_scheme(self):
        if self.weight_init is not None:
            return self.weight_init
        return glorot_logistic if self.activation == "logistic" else "xavier"

    def _store(self, params):
        self.coefs_ = [np.asarray(layer.W) for layer in params]
        self.intercepts_ = [np.asarray(layer.b) for layer in params]

    def _fit_lbfgs(self, X, targets, sample_weight, params, sizes, seed, *, activation, loss, scale):
        if params is None:
            params = init_params(jax.random.key(seed), sizes, init=self._init_scheme())
        X = dense_float32(X)
        weights = np.ones(len(X), np.float32) if sample_weight is None else sample_weight
        result = minimize_lbfgs(
            params, X, targets, weights, activation=activation, loss=loss, classification=is_classifier(self),
            weight_decay=scale * self.alpha / float(weights.sum()), scale=1.0 / scale,
            max_iter=self.max_iter, max_fun=self.max_fun, tol=self.tol,
        )  # fmt: skip
        result = jax.device_get(result)
        self.n_iter_, self.loss_ = int(result.n_iter), float(result.value)
        self.loss_curve_ = [float(v) for v in result.losses[: self.n_iter_]]
        self.best_loss_ = min(self.loss_curve_, default=self.loss_)
        self._store(result.params)  # finite: steps to non-finite values are rejected
        if int(result.status) == LIMIT_REACHED:
            warnings.warn(
                f"lbfgs failed to converge after {self.n_iter_} iteration(s) ({STATUS_MESSAGES[LIMIT_REACHED]}). "
                "Increase the number of iterations (max_iter) or the evaluation budget (max_fun), or scale the data.",
                ConvergenceWarning,
            )

    def _optimizer_settings(self, scale: float, n_samples: int, steps_per_epoch: int) -> dict:
        """``train()`` keywords for the optimizer and its learning-rate schedule."""
        sgd = "sgd" if self.momentum == 0 else ("nag" if self.nesterovs_momentum else "momentum")
        name = self.optimizer or ("adam" if self.solver == "adam" else sgd)
        if not isinstance(name, str):
            return dict(optimizer=name)
        schedule = self.learning_rate if (self.solver == "sgd" or self.optimizer is not None) else "constant"
        numbers_ = dict(
            learning_rate=self.learning_rate_init / scale if name in SGD_FAMILY else self.learning_rate_init,
            momentum=self.momentum, beta1=self.beta_1, beta2=self.beta_2,
            epsilon=self.epsilon if name in SGD_FAMILY else self.epsilon * scale,
        )  # fmt: skip
        if schedule == "invscaling":
            tx = make_optimizer(name, **numbers_)
            steps = dict(samples_seen=self.t_, samples_per_epoch=n_samples, steps_per_epoch=steps_per_epoch)
            return dict(optimizer=optax.chain(tx, epoch_inverse_scaling(self.power_t, **steps)))
        if schedule == "adaptive":
            # scikit-learn divides η by 5 when the no-improvement count runs out, until η <= 1e-6
            numbers_.update(
                reduce_lr_factor=0.2, min_learning_rate=1e-6 * numbers_["learning_rate"] / self.learning_rate_init
            )
        return dict(optimizer=name, **numbers_)

    def _fit_stochastic(self, X, targets, sample_weight, params, hidden, seed, incremental, *, activation, loss, scale):
        validation_data = None
        if self.early_stopping:
            stratify = targets if is_classifier(self) and self.n_outputs_ == 1 else None  # as scikit-learn
            arrays = [X, targets] + ([] if sample_weight is None else [sample_weight])
            split = train_test_split(*arrays, random_state=seed, test_size=self.validation_fraction, stratify=stratify)
            X, X_val, targets, y_val = split[:4]
            sample_weight = None if sample_weight is None else split[4]
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' or the size of your dataset."
                )
            validation_data = (dense_float32(X_val), y_val)
        X = dense_float32(X)
        n = len(X)
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n))
        mean_weight = 1.0 if sample_weight is None else float(np.mean(sample_weight))
        optimizer = self.optimizer if self.optimizer is None or isinstance(self.optimizer, str) else id(self.optimizer)
        state_key = (optimizer, self.solver, self.momentum == 0, self.nesterovs_momentum, self.learning_rate, *hidden)
        resume = self._solver_state if incremental and (self._solver_state or [None])[0] == state_key else None
        settings = self._optimizer_settings(scale, n, -(-n // batch_size))
        if resume is not None and "reduce_lr_factor" in settings:  # keep η where earlier plateaus left it
            settings["learning_rate"] = float(resume[1].opt_state.hyperparams["learning_rate"])
        result = train(
            X, targets, validation_data=validation_data, sample_weight=sample_weight,
            callbacks=[self._print_progress(scale)] if self.verbose else [],
            initial_params=params if resume is None else None,
            initial_state=None if resume is None else _to_device(resume[1]._replace(params=params)),
            hidden_sizes=tuple(hidden), activation=activation, loss=loss,
            task="classification" if is_classifier(self) else "regression", weight_init=self._init_scheme(),
            n_classes=self.n_outputs_ if loss == "cross_entropy" else None,
            weight_decay=self.alpha if self.optimizer == "adamw" else scale * self.alpha / (batch_size * mean_weight),
            epochs=1 if incremental else self.max_iter,
            batch_size=batch_size, shuffle=self.shuffle, seed=seed, plateau_rule="sklearn", early_stopping=True,
            patience=int(min(self.n_iter_no_change, self.max_iter)), **self._stopping_rule(scale), **settings,
        )  # fmt: skip
        history = result.history
        losses = [v / scale for v in history["train_loss"]]
        self.n_iter_, self.loss_ = len(losses), losses[-1]
        self.t_ += n * self.n_iter_
        self.loss_curve_ = self.loss_curve_ + losses
        if not self.early_stopping:
            self.best_loss_ = min(np.inf if self.best_loss_ is None else self.best_loss_, *losses)
        else:
            scores = history["val_accuracy" if is_classifier(self) else "val_r2"]
            self.validation_scores_ = (self.validation_scores_ or []) + scores  # None after a fit without it
            self.validation_loss_curve_ = (self.validation_loss_curve_ or []) + [v / scale for v in history["val_loss"]]
            self.best_validation_score_ = max(self.validation_scores_)
        self._store(result.params)
        self._solver_state = (state_key, _to_host(result.state))
        if not incremental and not result.stopped_early and self.n_iter_ == self.max_iter:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the optimization hasn't converged yet.",
                ConvergenceWarning,
            )

    def _stopping_rule(self, scale: float) -> dict:
        """scikit-learn's rule (one no-improvement counter, the running best, run on the device by
        :func:`train`): on the validation score (accuracy or R², higher is better) with
        ``early_stopping``, whose best epoch's weights are kept; else on the training loss (scaled as ours)."""
        if self.early_stopping:
            return dict(
                monitor="val_accuracy" if is_classifier(self) else "val_r2", min_delta=self.tol, restore_best=True
            )
        return dict(monitor="train_loss", min_delta=self.tol * scale, restore_best=False)

    def _print_progress(self, scale: float):
        """The ``verbose`` lines scikit-learn prints after each epoch (a callback: epochs then run one per dispatch)."""

        def on_epoch(epoch: int, row: dict) -> None:
            print(f"Iteration {epoch}, loss = {row['train_loss'] / scale:.8f}")
            if self.early_stopping:
                print(f"Validation score: {row.get('val_accuracy', row.get('val_r2')):f}")

        return on_epoch

    def _scores(self, X) -> np.ndarray:
        """Last-layer outputs before the output activation, float64 [n, n_outputs].

        A sparse ``X`` stays sparse: the first layer is a sparse-dense product, dense from [n, h1] on.
        """
        check_is_fitted(self)
        h = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        hidden = NUMPY_ACTIVATIONS[self.activation]
        for i, (W, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            h = np.asarray(h @ W.astype(np.float64)) + b
            if i < len(self.coefs_) - 1:
                h = hidden(h)
        return h

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.target_tags.multi_output = True
        return tags


def _keep_params(estimator, params: dict):
    """Stores every constructor argument unchanged, as scikit-learn requires."""
    for name, value in params.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """scikit-learn's ``MLPClassifier`` (same parameters and attributes) trained by ffnn_jax.

    Softmax outputs for more than two classes; one logistic output for two classes and one per
    label for multi-label 0/1 targets [n, k] (``binary_cross_entropy``), as scikit-learn. Any
    class labels (strings, non-contiguous integers) are encoded through ``classes_``.

    Two parameters are ours (:mod:`ffnn_jax.estimators` tells how the others map):

    Args:
      optimizer: None to follow ``solver``; otherwise an ffnn_jax optimizer name (``"sgd"``,
        ``"momentum"``, ``"nag"``, ``"rmsprop"``, ``"adagrad"``, ``"adam"``, ``"nadam"``,
        ``"adamw"``) fed ``learning_rate_init``, ``momentum``, ``beta_1``, ``beta_2``,
        ``epsilon`` and the ``learning_rate`` schedule, or an ``optax.GradientTransformation``
        used as is. Either one trains with :func:`ffnn_jax.train` whatever ``solver`` says.
      weight_init: None for scikit-learn's Glorot uniform, or a scheme of
        :func:`ffnn_jax.init_params` (a name or a callable ``init(key, (n_in, n_out), dtype)``).

    With ``optimizer="adamw"``, ``alpha`` is AdamW's decoupled weight decay (no L2 term).
    Besides scikit-learn's fitted attributes, ``validation_loss_curve_`` holds the validation
    loss per epoch with ``early_stopping`` (else None); with ``solver="lbfgs"``, ``loss_curve_``
    holds the objective after each L-BFGS iteration.

    Examples:
      >>> from sklearn.datasets import load_iris
      >>> X, y = load_iris(return_X_y=True)
      >>> clf = MLPClassifier(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=50, random_state=0).fit(X, y)
      >>> clf.predict_proba(X[:2]).shape
      (2, 3)
    """

    def __init__(
        self, hidden_layer_sizes=(100,), activation="relu", *,
        solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001,
        power_t=0.5, max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
        nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
        n_iter_no_change=10, max_fun=15000, optimizer=None, weight_init=None,
    ):  # fmt: skip
        _keep_params(self, locals())

    def _encode_targets(self, y, incremental: bool):
        """Labels -> (targets for train(), loss name, output activation, outputs) via a LabelBinarizer.

        Multiclass targets go to train() as class indices [n] (int32), not the binarizer's one-hot
        matrix: the same loss, and label_binarize's checks cost more than a small L-BFGS fit.
        """
        check_classification_targets(y)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start and set(classes) != set(self.classes_):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as in the previous call to fit. "
                    f"Previously got {self.classes_}, `y` has {classes}"
                )
            if len(np.setdiff1d(classes, self.classes_)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. 'y' has {classes}."
                )
        if self._label_binarizer.y_type_ == "multiclass":
            return np.searchsorted(self.classes_, y).astype(np.int32), "cross_entropy", "softmax", len(self.classes_)
        encoded = self._label_binarizer.transform(y).astype(np.float32)
        n_outputs = encoded.shape[1]
        return (encoded[:, 0] if n_outputs == 1 else encoded), "binary_cross_entropy", "logistic", n_outputs

    @available_if(lambda est: est._check_solver())
    def partial_fit(
        self, X: ArrayLike, y: ArrayLike, sample_weight: Optional[ArrayLike] = None, classes: Optional[ArrayLike] = None
    ) -> "MLPClassifier":
        """One epoch over ``(X, y)``, continuing the previous call's optimizer state.

        Args:
          X, y, sample_weight: as for :meth:`fit`.
          classes: every class label of the whole stream; required on the first call.

        Returns:
          ``self``.
        """
        self._validate_params()  # before the checks of `classes`, as scikit-learn does
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("`classes` must be passed on the first call to partial_fit.")
            self._label_binarizer = LabelBinarizer().fit(y if np.ndim(y) == 2 and np.shape(y)[1] > 1 else classes)
            self.classes_ = self._label_binarizer.classes_
        elif classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(
                f"`classes={classes!r}` is not the same as on last call to partial_fit, was: {self.classes_!r}"
            )
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Class labels [n] (or 0/1 indicators [n, k] for multi-label) for ``X`` [n, d]."""
        scores = self._scores(X)
        outputs = (
            scipy.special.softmax(scores, axis=1) if self.out_activation_ == "softmax" else scipy.special.expit(scores)
        )
        return self._label_binarizer.inverse_transform(outputs[:, 0] if self.n_outputs_ == 1 else outputs)

    def predict_log_proba(self, X: ArrayLike) -> np.ndarray:
        """Log-probabilities [n, n_classes], ordered as ``classes_`` (computed stably from the scores)."""
        scores = self._scores(X)
        if self.out_activation_ == "softmax":
            return scipy.special.log_softmax(scores, axis=1)
        if self.n_outputs_ == 1:
            return np.hstack([scipy.special.log_expit(-scores), scipy.special.log_expit(scores)])
        return scipy.special.log_expit(scores)

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Probabilities [n, n_classes] ([n, 2] for two classes), ordered as ``classes_``."""
        return np.exp(self.predict_log_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """scikit-learn's ``MLPRegressor`` (same parameters and attributes) trained by ffnn_jax.

    Linear outputs, one per target column (multi-output regression for y [n, k]), trained on
    scikit-learn's half squared error, or with ``loss="poisson"`` its half Poisson deviance with
    a log link (``out_activation_ = "exp"``, predictions ``exp`` of the last layer). ``optimizer`` and ``weight_init`` are ours, as in
    :class:`MLPClassifier`; :mod:`ffnn_jax.estimators` tells how the other parameters map.

    Examples:
      >>> from sklearn.datasets import load_diabetes
      >>> X, y = load_diabetes(return_X_y=True)
      >>> reg = MLPRegressor(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=50, random_state=0).fit(X, y)
      >>> reg.predict(X[:2]).shape
      (2,)
    """

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(
        self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
        solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001,
        power_t=0.5, max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
        nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
        n_iter_no_change=10, max_fun=15000, optimizer=None, weight_init=None,
    ):  # fmt: skip
        _keep_params(self, locals())

    def _encode_targets(self, y, incremental: bool):
        del incremental
        if self.loss == "poisson" and np.any(np.asarray(y) < 0):
            raise ValueError("Some value(s) of y are out of the valid range of the loss 'poisson'.")
        y = np.asarray(y, np.float32)
        return y, self.loss, "exp" if self.loss == "poisson" else "identity", 1 if y.ndim == 1 else y.shape[1]

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: ArrayLike, y: ArrayLike, sample_weight: Optional[ArrayLike] = None) -> "MLPRegressor":
        """One epoch over ``(X, y)`` (as for :meth:`fit`), continuing the previous call's optimizer state."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predictions [n] (one output) or [n, n_outputs] for ``X`` [n, d]."""
        scores = self._scores(X)
        if self.out_activation_ == "exp":
            scores = np.exp(scores)  # the Poisson loss's log link
        return scores[:, 0] if scores.shape[1] == 1 else scores
