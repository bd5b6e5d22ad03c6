"""``MLPClassifier`` and ``MLPRegressor``: scikit-learn's API over :func:`ffnn_jax.train`.

The estimators are the only stateful objects: they check inputs with scikit-learn's utilities,
encode labels, turn scikit-learn's hyperparameters into one :func:`train` call (or one
:func:`~ffnn_jax._lbfgs.minimize_lbfgs` call for ``solver="lbfgs"``) and keep the result as NumPy
arrays, so they pickle and clone. How the settings map is told in :mod:`ffnn_jax.estimators`.

A fit trains in the dtype of ``X`` as scikit-learn does (float64 inside a scoped
``jax_enable_x64``, float32 as it is); a warm or incremental fit keeps the fitted weights' dtype.
Sparse ``X`` (scipy CSR or CSC) is never densified as a whole by ``predict``: its first layer is
a sparse-dense product. Stochastic fits hand a sparse ``X`` to :func:`train` as it is (padded rows
on the device, never dense); an L-BFGS fit needs a dense array (its full-batch solve),
so it writes one copy in the training dtype a block of rows at a time, refusing past
``SPARSE_FIT_MAX_DENSE_BYTES``.
"""

import contextlib
import contextvars
import functools
import numbers
import warnings
from typing import NamedTuple, Optional

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

from ._gradcheck import x64_scope
from ._lbfgs import CONVERGED, minimize_lbfgs, status_message
from ._optim import OPTIMIZERS, make_optimizer
from ._params import WEIGHT_INITS, init_params
from ._step import TrainState
from ._train import TrainingDivergedError, TrainingInterrupted, train
from ._types import ArrayLike, LayerParams


SGD_FAMILY = ("sgd", "momentum", "nag")  # updates scale with the gradient: η/c undoes our factor c
# scikit-learn's messages (sklearn/neural_network/_multilayer_perceptron.py, sklearn/utils/optimize.py).
NON_FINITE_MSG = (
    "Solver produced non-finite parameter weights. The input data may contain large values and need to be preprocessed."
)
MAX_ITER_MSG = "Stochastic Optimizer: Maximum iterations ({}) reached and the optimization hasn't converged yet."
SCALE_HINT = (
    "You might also want to scale the data as shown in:\n    https://scikit-learn.org/stable/modules/preprocessing.html"
)
NUMPY_ACTIVATIONS = {
    "identity": lambda a: a,
    "logistic": scipy.special.expit,
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, 0),
}
SPARSE_FIT_MAX_DENSE_BYTES = 1 << 30  # largest dense copy fit makes of a sparse X (1 GiB)
DENSIFY_BLOCK_BYTES = 1 << 24  # a sparse X is densified in blocks of rows of about 16 MiB
# What a stochastic fit calls instead of train() while set: ffnn_jax._sweep_search records fits'
# train() calls with it, runs them as members of one sweep, and hands each fit its member's result.
TRAINER: contextvars.ContextVar = contextvars.ContextVar("ffnn_jax_estimator_trainer", default=None)


def check_sparse_fit_size(X, dtype=np.float32) -> None:
    """Refuses a sparse ``X`` [n, d] whose dense copy in ``dtype`` (what fit trains on) would
    exceed ``SPARSE_FIT_MAX_DENSE_BYTES``, before anything is allocated."""
    dtype = np.dtype(dtype)
    dense, limit = dtype.itemsize * X.shape[0] * X.shape[1], SPARSE_FIT_MAX_DENSE_BYTES
    if dense > limit:
        raise ValueError(
            f"`X` is a sparse matrix of shape {X.shape} ({X.nnz} stored values); fit trains on a dense {dtype} "
            f"copy of it, which would take {dense / 2**20:,.1f} MiB, above the limit for sparse input of "
            f"{limit / 2**20:,.1f} MiB (SPARSE_FIT_MAX_DENSE_BYTES). Reduce the features (e.g. feature selection "
            "or TruncatedSVD), fit on fewer rows, or pass X.toarray() to train on the dense array anyway."
        )


def _trainable(X, dtype):
    """What ``train()`` gets: a sparse ``X`` as it is (train() holds it as padded rows, never dense),
    a dense one as ``dtype``."""
    return X.astype(dtype) if scipy.sparse.issparse(X) else dense_array(X, dtype)


def dense_array(X, dtype=np.float32, *, block_bytes: int = DENSIFY_BLOCK_BYTES) -> np.ndarray:
    """``X`` [n, d] as a dense ``dtype`` array: a sparse ``X`` is written a block of rows at a time
    (each about ``block_bytes`` in its own dtype, then cast), so the result is the only
    full-size array made, with the values ``np.asarray(X.toarray(), dtype)`` has."""
    if not scipy.sparse.issparse(X):
        return np.asarray(X, dtype)
    X = X.tocsr()  # row blocks (a CSC X is converted once, O(stored values))
    dense = np.empty(X.shape, dtype)
    rows = max(1, block_bytes // (X.dtype.itemsize * max(1, X.shape[1])))
    for start in range(0, X.shape[0], rows):
        dense[start : start + rows] = X[start : start + rows].toarray()
    return dense


def as_training_dtype(values: np.ndarray, name: str, dtype) -> np.ndarray:
    """``values`` in ``dtype``; values finite in their own dtype that overflow ``dtype`` (1e39 in
    float32) raise scikit-learn's error for non-finite input."""
    with np.errstate(over="ignore"):  # the overflow is reported below
        cast = np.asarray(values, dtype)
    if cast.dtype != np.asarray(values).dtype and not np.all(np.isfinite(cast)):
        raise ValueError(
            f"Input {name} contains infinity or a value too large for {np.dtype(dtype)!r}. The fit trains in "
            f"{np.dtype(dtype)} (X's dtype, or the fitted weights' in a warm or incremental fit); pass float64 X to "
            "a fresh fit to train in float64."
        )
    return cast


def normalized_weights(sample_weight: np.ndarray, dtype) -> np.ndarray:
    """Row weights [n] (float64) times a power of two, in ``dtype``: the smallest positive weight
    in [1, 2), unless that would put Σ w near ``dtype``'s largest value.

    :func:`ffnn_jax.loss` divides by ``max(Σ w, 1)``, so a batch must weigh at least 1, and float32
    must hold the weights (scikit-learn keeps them in float64). A power of two changes no
    weighted mean: the fit is that of the weights as given, λ being computed from those.
    """
    positive = sample_weight[sample_weight > 0]
    if positive.size == 0:
        return np.asarray(sample_weight, dtype)
    _, exponent = np.frexp(positive.min())  # min = m·2^e, m in [0.5, 1)
    shift = 1 - int(exponent)
    ceiling = np.log2(np.finfo(dtype).max) - np.log2(4.0 * len(sample_weight)) - np.log2(positive.max())
    return np.ldexp(sample_weight, min(shift, int(np.floor(ceiling)))).astype(dtype)


def target_scaling(y: np.ndarray, sample_weight: Optional[np.ndarray]):
    """``(shift [k] or scalar, spread)``: the weighted mean of each target column and one root-mean
    standard deviation over the columns (1 where it is 0 or not finite)."""
    columns = y.reshape(len(y), -1).astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        shift = np.average(columns, axis=0, weights=sample_weight)
        spread = float(np.sqrt(np.mean(np.average((columns - shift) ** 2, axis=0, weights=sample_weight))))
    if not (np.isfinite(spread) and spread > 0 and np.all(np.isfinite(shift))):
        shift, spread = np.zeros_like(shift), 1.0
    return (shift if y.ndim == 2 else shift[0]), spread


def _output_layer_mapped(params, dtype, transform):
    """``params`` (NumPy, ``dtype``) with the last layer's (W, b) replaced by ``transform(W, b)`` (float64)."""
    *hidden, (W, b) = [(np.asarray(layer.W, np.float64), np.asarray(layer.b, np.float64)) for layer in params]
    layers = [*hidden, transform(W, b)]
    return tuple(LayerParams(np.asarray(W, dtype), np.asarray(b, dtype)) for W, b in layers)


def glorot_logistic(key, shape, dtype):
    """scikit-learn's init for logistic hidden units: W ~ U(±√(2 / (fan_in + fan_out)))."""
    limit = np.sqrt(2.0 / (shape[0] + shape[1]))
    return jax.random.uniform(key, shape, dtype, minval=-limit, maxval=limit)


def epoch_inverse_scaling(power_t: float, *, samples_seen: int, samples_per_epoch: int, steps_per_epoch: int):
    """scikit-learn's ``invscaling`` as an optax transformation: during epoch k ≥ 1 of the state's
    life, updates are scaled by (t + 1)^(−power_t), t = samples_seen + k·samples_per_epoch, where
    ``samples_seen`` counts the samples before the state began; epoch 0 keeps factor 1, as
    scikit-learn's fresh optimizer does even after a warm start. A state continued by a warm
    ``fit`` or ``partial_fit`` keeps counting updates (exact when the calls have equal sizes)."""

    def factory(power_t, samples_seen, samples_per_epoch, steps_per_epoch):
        def factor(count):
            epoch = jnp.floor(count / steps_per_epoch)
            return jnp.where(epoch == 0, 1.0, (samples_seen + epoch * samples_per_epoch + 1.0) ** -power_t)

        return optax.scale_by_schedule(factor)

    counts = dict(samples_seen=samples_seen, samples_per_epoch=samples_per_epoch, steps_per_epoch=steps_per_epoch)
    return optax.inject_hyperparams(factory)(power_t=power_t, **counts)


def _precision(dtype):
    """float64 arrays inside (a scoped ``jax_enable_x64``) when ``dtype`` is float64."""
    return x64_scope() if np.dtype(dtype) == np.float64 else contextlib.nullcontext()


def _to_host(state: TrainState) -> TrainState:
    """NumPy copy of a state (the PRNG key as its raw data) for pickling."""
    return jax.device_get(state._replace(key=jax.random.key_data(state.key)))


def _to_device(state: TrainState) -> TrainState:
    return state._replace(key=jax.random.wrap_key_data(jnp.asarray(state.key)))


class _SolverState(NamedTuple):
    """What a warm ``fit`` or ``partial_fit`` continues: the optimizer's whole train state."""

    key: tuple  # the settings that shape the state; another key starts a fresh optimizer
    state: TrainState  # NumPy copy (params, optimizer state, step, data-order key, plateau counters)
    samples_seen: int  # ``t_`` when the state began (the origin of ``invscaling``'s count)


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
        "dropout": [Interval(numbers.Real, 0, 1, closed="left"), "array-like"],
    }

    def _is_stochastic(self) -> bool:
        return self.optimizer is not None or self.solver != "lbfgs"

    def _check_solver(self) -> bool:
        if not self._is_stochastic():
            raise AttributeError(
                f"partial_fit is only available for stochastic optimizers. {self.solver} is not stochastic."
            )
        return True

    def _dropout_rates(self, hidden: list) -> tuple:
        """``dropout`` as one rate per hidden layer, checked before anything trains."""
        given = self.dropout
        rates = tuple(given) if np.iterable(given) else (given,) * len(hidden)
        if len(rates) != len(hidden):
            raise ValueError(
                f"`dropout` must be one rate or one per hidden layer ({len(hidden)}), got {len(rates)}: {given!r}"
            )
        if any(not isinstance(r, numbers.Real) or isinstance(r, bool) or not 0 <= r < 1 for r in rates):
            raise ValueError(f"`dropout` rates must be real numbers in [0, 1), got {given!r}")
        if any(rates) and not self._is_stochastic():
            raise ValueError(
                "`dropout` needs a stochastic solver ('sgd' or 'adam') or an `optimizer`: solver='lbfgs' minimises "
                "the deterministic full-data objective"
            )
        return tuple(float(r) for r in rates)

    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: Optional[ArrayLike] = None) -> "_BaseMLP":
        """Fits the network (from scratch, or from the current weights with ``warm_start``).

        Args:
          X: inputs [n, d], dense or scipy sparse (sgd/adam: never densified; lbfgs: a dense copy
            of at most ``SPARSE_FIT_MAX_DENSE_BYTES``), float64 or float32: the fit runs
            in that dtype (a warm fit in the fitted weights' dtype).
          y: labels [n] or 0/1 indicators [n, k] (classifier); targets [n] or [n, k] (regressor).
          sample_weight: optional [n] non-negative row weights.

        Returns:
          ``self``, fitted.

        Raises:
          ValueError: invalid data or parameters (naming them), a sparse ``X`` too large to
            densify, or a diverging solver without ``early_stopping`` (scikit-learn's message).
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, *, incremental: bool):
        self._validate_params()
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        hidden = list(self.hidden_layer_sizes) if np.iterable(self.hidden_layer_sizes) else [self.hidden_layer_sizes]
        if any(not isinstance(h, numbers.Integral) or h <= 0 for h in hidden):
            raise ValueError(f"`hidden_layer_sizes` must be positive integers, got {self.hidden_layer_sizes!r}")
        dropout = self._dropout_rates(hidden)
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = validate_data(
            self, X, y, accept_sparse=["csr", "csc"], multi_output=True, dtype=(np.float64, np.float32),
            y_numeric=not is_classifier(self), reset=first_pass,
        )  # fmt: skip
        # Trained in X's dtype; a warm or incremental stochastic fit keeps its weights' dtype, as
        # scikit-learn's in-place updates do (L-BFGS keeps float64 weights, as scipy's, see _fit_lbfgs).
        dtype = X.dtype if first_pass or not self._is_stochastic() else self.coefs_[0].dtype
        if scipy.sparse.issparse(X):  # stochastic solvers train on it as it is; L-BFGS on a dense copy
            if not self._is_stochastic():
                check_sparse_fit_size(X, dtype)
            X = X.tocsr()
            as_training_dtype(X.data, "X", dtype)
        else:
            X = as_training_dtype(X, "X", dtype)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        targets, loss, out_activation, n_outputs = self._encode_targets(y, incremental)
        sample_weight = self._row_weights(X, y, sample_weight, incremental)
        sizes = [X.shape[1], *hidden, n_outputs]
        if first_pass:
            self._initialize(n_outputs, len(sizes), out_activation)
        elif [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_] != sizes:
            raise ValueError(
                f"`hidden_layer_sizes` and the outputs give layer sizes {sizes}, but the fitted network has other sizes"
            )
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        if first_pass:
            params = self._fresh_params(sizes, seed, dtype, stochastic=self._is_stochastic())
        else:
            params = tuple(LayerParams(W, b) for W, b in zip(self.coefs_, self.intercepts_))
        settings = dict(activation=self.activation, loss=loss, scale=2.0 if loss == "squared_error" else 1.0)
        if self._is_stochastic():
            self._fit_stochastic(X, targets, sample_weight, params, hidden, dropout, seed, incremental, first_pass,
                                 **settings)  # fmt: skip
        else:
            self._fit_lbfgs(X, targets, sample_weight, params, first_pass, **settings)
        return self

    def _row_weights(self, X, y, sample_weight, incremental: bool) -> Optional[np.ndarray]:
        """Row weights [n] as float64 (None: all 1), as scikit-learn keeps them whatever X's dtype."""
        del y, incremental
        if sample_weight is None:
            return None
        return _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)

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

    def _fresh_params(self, sizes: list, seed: int, dtype, *, stochastic: bool):
        """A new network's weights as NumPy arrays in ``dtype`` (scikit-learn's Glorot uniform, biases 0).

        A stochastic fit draws them as ``train(seed=seed)`` would (from the first split of its key).
        """
        key = jax.random.key(seed)
        with _precision(dtype):
            key = jax.random.split(key)[0] if stochastic else key
            return jax.device_get(init_params(key, sizes, init=self._init_scheme(), dtype=dtype))

    def _store(self, params):
        self.coefs_ = [np.asarray(layer.W) for layer in params]
        self.intercepts_ = [np.asarray(layer.b) for layer in params]

    def _fit_lbfgs(self, X, targets, sample_weight, params, fresh: bool, *, activation, loss, scale):
        """Full-batch L-BFGS in ``X``'s dtype, the weights kept as float64 (scikit-learn's are scipy's
        float64 whatever X is). Regression targets (squared error) are standardized first, the
        objective kept scikit-learn's: with y = μ + σ y', the last layer is W/σ, (b − μ)/σ, the
        other layers' λ is divided by σ², and the stopping rules read σ² × the objective. A
        fresh network starts in the standardized units (output bias μ, output weights σ × Glorot):
        from a zero bias, targets near 1e9 are out of reach of the first line searches, and
        float32 has no digits left to fit them with."""
        dtype = X.dtype
        weights = np.ones(X.shape[0]) if sample_weight is None else sample_weight
        decay = scale * self.alpha / float(weights.sum())
        shift, spread = 0.0, 1.0
        if not is_classifier(self) and loss == "squared_error":
            shift, spread = target_scaling(targets, sample_weight)
            targets = (targets - shift) / spread
        if targets.dtype.kind == "f":
            targets = as_training_dtype(targets, "y", dtype)
        hidden_layers = len(params) - 1
        start = (
            params if fresh else _output_layer_mapped(params, dtype, lambda W, b: (W / spread, (b - shift) / spread))
        )
        per_layer = dict(
            weight_decay=[decay / spread**2] * hidden_layers + [decay],
            grad_factors=[1.0] * hidden_layers + [1.0 / spread],
        )
        with _precision(dtype):
            result = minimize_lbfgs(
                start, dense_array(X, dtype), targets, normalized_weights(weights, dtype), activation=activation,
                loss=loss, classification=is_classifier(self), scale=1.0 / scale, units=spread**2, **per_layer,
                max_iter=self.max_iter, max_fun=self.max_fun, tol=self.tol,
            )  # fmt: skip
            result = jax.device_get(result)
        units = spread**2
        self.n_iter_, self.loss_ = int(result.n_iter), units * float(result.value)
        self.loss_curve_ = [units * float(v) for v in result.losses[: self.n_iter_]]
        self.best_loss_ = min(self.loss_curve_, default=self.loss_)
        # finite: steps to non-finite values are rejected
        self._store(_output_layer_mapped(result.params, np.float64, lambda W, b: (W * spread, b * spread + shift)))
        status = int(result.status)
        if status != CONVERGED:  # scikit-learn warns on every scipy status but 0 (sklearn.utils.optimize)
            n_iter = min(self.n_iter_, self.max_iter)
            message = f"lbfgs failed to converge after {n_iter} iteration(s) (status={status}):\n"
            message += status_message(status, n_iter, self.max_iter) + "\n"
            if n_iter == self.max_iter:
                message += f"\nIncrease the number of iterations to improve the convergence (max_iter={self.max_iter})."
            warnings.warn(message + "\n" + SCALE_HINT, ConvergenceWarning, stacklevel=4)

    def _optimizer_settings(self, scale: float, n_samples: int, steps_per_epoch: int, samples_seen: int) -> dict:
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
            steps = dict(samples_seen=samples_seen, samples_per_epoch=n_samples, steps_per_epoch=steps_per_epoch)
            return dict(optimizer=optax.chain(tx, epoch_inverse_scaling(self.power_t, **steps)))
        if schedule == "adaptive":
            # scikit-learn divides η by 5 when the no-improvement count runs out, until η <= 1e-6
            numbers_.update(
                reduce_lr_factor=0.2, min_learning_rate=1e-6 * numbers_["learning_rate"] / self.learning_rate_init
            )
        return dict(optimizer=name, **numbers_)

    def _fit_stochastic(self, X, targets, sample_weight, params, hidden, dropout, seed, incremental, first_pass, *,
                        activation, loss, scale):  # fmt: skip
        """Epochs of :func:`train`, continuing the previous optimizer state for a warm ``fit`` and
        ``partial_fit``. A diverging run raises scikit-learn's error, or with ``early_stopping``
        keeps the best epoch's weights and records NaN for the rest, as scikit-learn does."""
        dtype = params[0].W.dtype
        if targets.dtype.kind == "f":
            targets = as_training_dtype(targets, "y", dtype)
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
            validation_data = (_trainable(X_val, dtype), y_val)
        X = _trainable(X, dtype)
        n = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n))
        mean_weight = 1.0 if sample_weight is None else float(np.mean(sample_weight))
        weights = None if sample_weight is None else normalized_weights(sample_weight, dtype)
        optimizer = self.optimizer if self.optimizer is None or isinstance(self.optimizer, str) else id(self.optimizer)
        state_key = (optimizer, self.solver, self.momentum == 0, self.nesterovs_momentum, self.learning_rate,
                     dtype.name, *hidden)  # fmt: skip
        previous = None if first_pass else self._solver_state
        resume = previous if isinstance(previous, _SolverState) and previous.key == state_key else None
        samples_seen = self.t_ if resume is None else resume.samples_seen
        settings = self._optimizer_settings(scale, n, -(-n // batch_size), samples_seen)
        # scikit-learn's squared loss is a mean over the outputs too (its gradient is not): our loss per
        # row sums them, so the reported losses and tol's comparisons divide by them as well
        outputs = targets.shape[1] if loss == "squared_error" and not is_classifier(self) and targets.ndim == 2 else 1
        reported = scale * outputs
        if resume is not None and "reduce_lr_factor" in settings:  # keep η where earlier plateaus left it
            settings["learning_rate"] = float(resume.state.opt_state.hyperparams["learning_rate"])
        run = functools.partial(
            TRAINER.get() or train, X, targets, validation_data=validation_data, sample_weight=weights,
            hidden_sizes=tuple(hidden), activation=activation, loss=loss, dtype=dtype.name, dropout=dropout,
            task="classification" if is_classifier(self) else "regression", weight_init=self._init_scheme(),
            n_classes=self.n_outputs_ if loss == "cross_entropy" else None,
            weight_decay=self.alpha if self.optimizer == "adamw" else scale * self.alpha / (batch_size * mean_weight),
            batch_size=batch_size, shuffle=self.shuffle, seed=seed, plateau_rule="sklearn", early_stopping=True,
            patience=int(min(self.n_iter_no_change, self.max_iter)), **self._stopping_rule(reported), **settings,
        )  # fmt: skip

        def start(progress) -> dict:  # fresh device copies each call (a run donates its buffers)
            # verbose: one epoch per dispatch (a callback), in a rerun too, where it prints nothing
            callbacks = [progress] if self.verbose else []
            if resume is None:
                return dict(initial_params=params, callbacks=callbacks)
            return dict(initial_state=_to_device(resume.state._replace(params=params)), callbacks=callbacks)

        epochs, diverged = 1 if incremental else self.max_iter, False
        try:
            result = run(epochs=epochs, **start(self._print_progress(reported)))
        except TrainingInterrupted as interrupt:  # Ctrl-C: scikit-learn keeps the epochs done, with a warning
            if interrupt.result is None:
                raise
            warnings.warn("Training interrupted by user.", stacklevel=4)
            result = interrupt.result
        except TrainingDivergedError as error:
            if not self.early_stopping:  # scikit-learn runs on with NaN weights to max_iter, then raises
                if not incremental:
                    warnings.warn(MAX_ITER_MSG.format(self.max_iter), ConvergenceWarning, stacklevel=4)
                raise ValueError(NON_FINITE_MSG) from error
            # The finite epochs again (the same run, bit for bit): train() keeps their best epoch's weights.
            diverged, finite_epochs = True, error.epoch - 1
            result = run(epochs=finite_epochs, **start(lambda epoch, row: None)) if finite_epochs > 0 else None
        history = {} if result is None else result.history
        missing = epochs - len(history.get("train_loss", [])) if diverged else 0  # NaN epochs, as scikit-learn's
        losses = [v / reported for v in history.get("train_loss", [])] + [np.nan] * missing
        self.n_iter_, self.loss_ = len(losses), losses[-1]
        self.t_ += n * self.n_iter_
        self.loss_curve_ = self.loss_curve_ + losses
        if not self.early_stopping:
            self.best_loss_ = min(np.inf if self.best_loss_ is None else self.best_loss_, *losses)
        else:
            scores = history.get("val_accuracy" if is_classifier(self) else "val_r2", []) + [np.nan] * missing
            val_losses = [v / reported for v in history.get("val_loss", [])] + [np.nan] * missing
            self.validation_scores_ = (self.validation_scores_ or []) + scores  # None after a fit without it
            self.validation_loss_curve_ = (self.validation_loss_curve_ or []) + val_losses
            # scikit-learn's running best ignores NaN scores (-inf if there is none)
            self.best_validation_score_ = max((s for s in self.validation_scores_ if s == s), default=-np.inf)
        self._store(params if result is None else result.params)
        # After a divergence the next warm fit starts a fresh optimizer from the kept weights.
        self._solver_state = None if diverged else _SolverState(state_key, _to_host(result.state), samples_seen)
        if not incremental and (diverged or (not result.stopped_early and self.n_iter_ == self.max_iter)):
            warnings.warn(MAX_ITER_MSG.format(self.max_iter), ConvergenceWarning, stacklevel=4)

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
        """Last-layer outputs before the output activation [n, n_outputs].

        Computed in the dtype ``X`` and the weights promote to, as scikit-learn's NumPy forward
        pass: float32 for float32 ``X`` on float32 weights, float64 otherwise. A sparse ``X``
        stays sparse: the first layer is a sparse-dense product, dense from [n, h1] on.
        """
        check_is_fitted(self)
        h = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        dtype = np.result_type(h.dtype, self.coefs_[0].dtype)
        dtype = dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)
        h = h.astype(dtype, copy=False)
        hidden = NUMPY_ACTIVATIONS[self.activation]
        for i, (W, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            h = np.asarray(h @ W.astype(dtype, copy=False)) + b.astype(dtype, copy=False)
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

    Four parameters are ours (:mod:`ffnn_jax.estimators` tells how the others map):

    Args:
      optimizer: None to follow ``solver``; otherwise an ffnn_jax optimizer name (``"sgd"``,
        ``"momentum"``, ``"nag"``, ``"rmsprop"``, ``"adagrad"``, ``"adam"``, ``"nadam"``,
        ``"adamw"``) fed ``learning_rate_init``, ``momentum``, ``beta_1``, ``beta_2``,
        ``epsilon`` and the ``learning_rate`` schedule, or an ``optax.GradientTransformation``
        used as is. Either one trains with :func:`ffnn_jax.train` whatever ``solver`` says.
      weight_init: None for scikit-learn's Glorot uniform, or a scheme of
        :func:`ffnn_jax.init_params` (a name or a callable ``init(key, (n_in, n_out), dtype)``).
      dropout: drop rate of the hidden units while training (inverted dropout, off in
        ``predict``): one rate for every hidden layer or one per hidden layer, each in [0, 1).
        Stochastic solvers only.
      class_weight: None, ``"balanced"`` or ``{label: weight}``, as in scikit-learn's
        ``LogisticRegression``: each row's weight is multiplied by its class's weight (labels
        missing from the dict weigh 1), so a fit equals one with the matching ``sample_weight``.
        ``"balanced"`` is n / (n_classes · count(label)), the counts weighted by
        ``sample_weight``, over all of ``y`` (before the ``early_stopping`` split). Not for
        multi-label targets, and ``"balanced"`` not in ``partial_fit`` (as ``SGDClassifier``).

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

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(
        self, hidden_layer_sizes=(100,), activation="relu", *,
        solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001,
        power_t=0.5, max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
        nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
        n_iter_no_change=10, max_fun=15000, optimizer=None, weight_init=None, dropout=0.0, class_weight=None,
    ):  # fmt: skip
        _keep_params(self, locals())

    def _encode_targets(self, y, incremental: bool):
        """Labels -> (targets for train(), loss name, output activation, outputs) via a LabelBinarizer.

        Multiclass targets go to train() as class indices [n] (int32), not the binarizer's one-hot
        matrix: the same loss, and label_binarize's checks cost more than a small L-BFGS fit.
        Binary and multi-label targets are 0/1 floats [n] or [n, k] (float64, cast by the fit).
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
        encoded = self._label_binarizer.transform(y).astype(np.float64)
        n_outputs = encoded.shape[1]
        return (encoded[:, 0] if n_outputs == 1 else encoded), "binary_cross_entropy", "logistic", n_outputs

    def _row_weights(self, X, y, sample_weight, incremental: bool) -> Optional[np.ndarray]:
        """``sample_weight`` (float64, None: all 1) times each row's ``class_weight``."""
        sample_weight = super()._row_weights(X, y, sample_weight, incremental)
        if self.class_weight is None:
            return sample_weight
        if self._label_binarizer.y_type_.startswith("multilabel"):
            raise ValueError("`class_weight` is not supported for multi-label targets (0/1 indicators [n, k])")
        classes, codes = self.classes_, np.searchsorted(self.classes_, y)
        if isinstance(self.class_weight, dict):
            known = set(classes.tolist())
            unknown = [label for label in self.class_weight if label not in known]
            if unknown:
                raise ValueError(
                    f"`class_weight` has labels that are not classes of the classifier: {unknown}. "
                    f"The classes are {classes.tolist()}"
                )
            per_class = np.array([float(self.class_weight.get(label, 1.0)) for label in classes.tolist()])
        else:  # "balanced", as scikit-learn's compute_class_weight (counts weighted by sample_weight)
            if incremental:
                raise ValueError(
                    "class_weight='balanced' is not supported for partial_fit: one batch does not tell the class "
                    "frequencies. Compute the weights once, e.g. sklearn.utils.class_weight.compute_class_weight("
                    "'balanced', classes=classes, y=y) on a large enough sample of the targets, and pass them as "
                    "the class_weight dict."
                )
            counts = np.bincount(codes, weights=sample_weight, minlength=len(classes))
            per_class = np.ones(len(classes))
            np.divide(counts.sum(), len(classes) * counts, out=per_class, where=counts > 0)
        row = per_class[codes]
        return row if sample_weight is None else sample_weight * row

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
        """Log-probabilities [n, n_classes] (or [n, k] per label for multi-label), ordered as
        ``classes_``: the log of :meth:`predict_proba`, computed stably from the scores."""
        scores = self._scores(X)
        if self.out_activation_ == "softmax":
            return scipy.special.log_softmax(scores, axis=1)
        if self.n_outputs_ == 1:
            return np.hstack([scipy.special.log_expit(-scores), scipy.special.log_expit(scores)])
        return scipy.special.log_expit(scores)

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Probabilities [n, n_classes] ([n, 2] for two classes; per-label sigmoids [n, k] for
        multi-label), ordered as ``classes_``."""
        return np.exp(self.predict_log_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """scikit-learn's ``MLPRegressor`` (same parameters and attributes) trained by ffnn_jax.

    Linear outputs, one per target column (multi-output regression for y [n, k]), trained on
    scikit-learn's half squared error, or with ``loss="poisson"`` its half Poisson deviance with
    a log link (``out_activation_ = "exp"``, predictions ``exp`` of the last layer).
    ``optimizer``, ``weight_init`` and ``dropout`` are ours, as in :class:`MLPClassifier`;
    :mod:`ffnn_jax.estimators` tells how the other parameters map.

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
        n_iter_no_change=10, max_fun=15000, optimizer=None, weight_init=None, dropout=0.0,
    ):  # fmt: skip
        _keep_params(self, locals())

    def _encode_targets(self, y, incremental: bool):
        """Targets as float64 (cast to the training dtype by the fit, after L-BFGS's standardization)."""
        del incremental
        if self.loss == "poisson" and np.any(np.asarray(y) < 0):
            raise ValueError("Some value(s) of y are out of the valid range of the loss 'poisson'.")
        y = np.asarray(y, np.float64)
        return y, self.loss, "exp" if self.loss == "poisson" else "identity", 1 if y.ndim == 1 else y.shape[1]

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: ArrayLike, y: ArrayLike, sample_weight: Optional[ArrayLike] = None) -> "MLPRegressor":
        """One epoch over ``(X, y)`` (as for :meth:`fit`), continuing the previous call's optimizer state."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predictions [n] (one output) or [n, n_outputs] for ``X`` [n, d], in the dtype of
        :meth:`_scores` (float32 for float32 ``X`` on a float32 fit, as scikit-learn)."""
        scores = self._scores(X)
        if self.out_activation_ == "exp":
            scores = np.exp(scores)  # the Poisson loss's log link
        return scores[:, 0] if scores.shape[1] == 1 else scores
