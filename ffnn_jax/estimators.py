"""scikit-learn estimators trained by ffnn_jax (needs scikit-learn >= 1.6).

``MLPClassifier`` and ``MLPRegressor`` take scikit-learn's parameters (plus ``optimizer``,
``weight_init``, ``dropout`` and, for the classifier, ``class_weight``) and give its fitted
attributes as NumPy arrays (``coefs_`` [n_in, n_out],
``intercepts_`` [n_out] per layer), so they drop into ``Pipeline``, ``GridSearchCV`` and
``cross_val_score``, pickle and clone.

How scikit-learn's settings map (n_b rows in a batch, w̄ their mean weight):

- scikit-learn minimises ``data + α/(2 Σw) Σ‖W‖²``, ``data`` the weighted mean log-loss, or half
  the squared error summed over outputs (its gradients follow that; with several outputs its
  reported loss averages them instead). :func:`ffnn_jax.loss` is ``c · data + (λ/2) Σ‖W‖²``,
  c = 1 (classification) or 2 (regression). So λ = c·α/(n_b·w̄), SGD gets η/c, Adam-type
  optimizers ε·c, and ``loss_curve_`` is divided by c (by c·k for k regression outputs, as
  scikit-learn's reported loss averages them, ``tol`` compared on that; the L2 part is then
  divided by k too, where scikit-learn's is not; lbfgs reports the objective it minimises, summed
  over the outputs as scikit-learn's gradients are). The last, smaller batch of an epoch
  keeps a full batch's λ (scikit-learn's grows).
- ``solver="lbfgs"`` minimises that objective over the whole set (λ = c·α/Σw) with optax's
  L-BFGS (memory 10, zoom line search) compiled into one loop, stopping by scipy's rules:
  max |∂f/∂θ| <= ``tol``, no relative decrease, ``max_iter`` iterations or more than
  ``max_fun`` calls; a rejected step drops the memory and retries once, as scipy. Any stop but
  convergence gives scikit-learn's ``ConvergenceWarning`` with scipy's status and message
  (``STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT``, ``... F,G EVALUATIONS EXCEEDS LIMIT``,
  ``ABNORMAL:``). Regression targets (squared error) are standardized for the solve with the
  objective kept scikit-learn's (the last layer rescaled, the other layers' λ divided by σ²,
  the stopping rules in y's units), and a fresh network starts from the target mean: targets
  near 1e9 fit as from float64 scikit-learn (before: one iteration, R² −4e13). The weights are
  float64 whatever ``X`` is, as scikit-learn's (scipy's); the solve runs in ``X``'s dtype.
- Softmax outputs for more than two classes; a logistic output per label for two classes and
  for multi-label targets, trained with ``binary_cross_entropy`` (as scikit-learn).
- ``learning_rate="invscaling"``: η / (t + 1)^power_t per epoch, t the samples seen (an optax
  chain built per fit, so such fits compile their epoch anew); ``"adaptive"``: η ÷ 5 when the
  no-improvement count runs out, stopping at η <= 1e-6 (``partial_fit`` carries both η and the
  count from call to call, as scikit-learn).
- Stopping is scikit-learn's rule, run on the device inside ``train()``
  (``plateau_rule="sklearn"``): one counter that grows on every epoch not better than the
  running best by ``tol`` and stops training past ``n_iter_no_change``; watched on the training
  loss, or with ``early_stopping`` on the score of the held-out ``validation_fraction``
  (``validation_scores_``: accuracy, element-wise for multi-label, or R², unweighted), whose best
  epoch's weights are restored. The validation loss is kept too (``validation_loss_curve_``).
  A ``warm_start`` fit carries the counter, as scikit-learn does (a model that stopped once
  stops again after one epoch without improvement).
- One difference: a ``warm_start`` fit continues the whole optimizer state (Adam's moments,
  momentum, step and schedule counts, the data-order key), so ``fit`` with ``max_iter=a`` then a
  warm ``fit`` with ``max_iter=b`` gives the weights of one ``fit`` with ``max_iter=a+b``, bit
  for bit. scikit-learn starts a fresh optimizer (and data order) on each ``fit``; a state made
  with other solver settings, or lost to a divergence, starts fresh here too.
- A fit that diverges (a non-finite loss or weights) raises scikit-learn's
  ``ValueError("Solver produced non-finite parameter weights...")`` after its max-iterations
  ``ConvergenceWarning``, as scikit-learn (whose NaN epochs run on to ``max_iter``). With
  ``early_stopping`` it does not raise: the epochs from the divergence on are recorded as NaN
  in ``loss_curve_``, ``validation_scores_`` and ``validation_loss_curve_`` up to ``max_iter``,
  and the best finite epoch's weights are kept (train() runs the finite epochs again to get them).
- ``class_weight`` (classifier): None, ``"balanced"`` or ``{label: weight}``, as
  ``LogisticRegression``'s: row weights are ``sample_weight × class_weight[label]``, so a fit
  equals one with that ``sample_weight``. ``"balanced"`` weighs n / (n_classes · count),
  counts weighted by ``sample_weight`` over all of ``y``. Labels not among the classes are an
  error naming them as given. Not for multi-label targets; ``"balanced"`` not in
  ``partial_fit`` (as ``SGDClassifier``).
- ``dropout``: inverted dropout on the hidden units while training (``train(dropout=...)``),
  one rate or one per hidden layer in [0, 1); off in ``predict``. Stochastic solvers only.
- ``verbose`` prints each epoch's line as scikit-learn does; it runs one epoch per dispatch (a
  host callback), otherwise small sets run many epochs per dispatch.
- ``MLPRegressor(loss="poisson")``: ffnn_jax's ``"poisson"`` loss, Σ exp(s) − y s, with an
  ``exp`` output (``out_activation_ = "exp"``). Its ``loss_curve_`` leaves out the θ-free term
  mean(y log y − y) that scikit-learn's half deviance includes, so the curves differ by that
  constant; gradients and fitted weights are the same objective.
- Weights start as scikit-learn's Glorot uniform; biases at 0 (scikit-learn draws them too).
- A fit trains in ``X``'s dtype, as scikit-learn: float64 ``X`` in float64 (``train(dtype=
  "float64")``, a scoped x64; train() keeps η, λ and the per-epoch losses it reports in float32),
  float32 ``X`` in float32, and a warm or incremental stochastic fit in its weights' dtype.
  ``coefs_`` have that dtype (float64 for L-BFGS). Predictions are NumPy from ``coefs_`` in the
  dtype ``X`` and the weights promote to (float32 for float32 ``X`` on float32 weights), so they
  do not depend on how rows are batched. Values finite in float64 that overflow a float32 fit
  (1e39) raise scikit-learn's ``Input X contains infinity or a value too large for
  dtype('float32')``; row weights stay float64 until they are scaled by a power of two into the
  training dtype (the smallest positive weight in [1, 2), so no batch weighs below 1).
- Sparse ``X`` (scipy CSR or CSC; other formats become CSR, as in scikit-learn): ``predict``,
  ``predict_proba`` and ``score`` keep it sparse (the first layer is a sparse-dense product).
  Stochastic ``fit`` and ``partial_fit`` hand it to :func:`ffnn_jax.train` as it is (padded rows
  on the device, never dense). ``solver="lbfgs"`` needs a dense array for its full-batch solve:
  it writes one copy in the training dtype a block of rows at a time, and a copy over
  ``_estimator.SPARSE_FIT_MAX_DENSE_BYTES`` (1 GiB) is refused with a ``ValueError`` before
  anything is allocated (pass ``X.toarray()`` to go ahead).
"""

from ._estimator import MLPClassifier as MLPClassifier
from ._estimator import MLPRegressor as MLPRegressor
