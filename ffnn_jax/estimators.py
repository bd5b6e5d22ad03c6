"""scikit-learn estimators trained by ffnn_jax (needs scikit-learn >= 1.6).

``MLPClassifier`` and ``MLPRegressor`` take scikit-learn's parameters (plus ``optimizer`` and
``weight_init``) and give its fitted attributes as NumPy arrays (``coefs_`` [n_in, n_out],
``intercepts_`` [n_out] per layer), so they drop into ``Pipeline``, ``GridSearchCV`` and
``cross_val_score``, pickle and clone.

How scikit-learn's settings map (n_b rows in a batch, w̄ their mean weight):

- scikit-learn minimises ``data + α/(2 Σw) Σ‖W‖²``, ``data`` the weighted mean log-loss, or half
  the squared error summed over outputs (its gradients follow that; with several outputs its
  reported loss averages them instead). :func:`ffnn_jax.loss` is ``c · data + (λ/2) Σ‖W‖²``,
  c = 1 (classification) or 2 (regression). So λ = c·α/(n_b·w̄), SGD gets η/c, Adam-type
  optimizers ε·c, and ``loss_curve_`` is divided by c. The last, smaller batch of an epoch
  keeps a full batch's λ (scikit-learn's grows).
- ``solver="lbfgs"`` minimises that objective over the whole set (λ = c·α/Σw) with optax's
  L-BFGS (memory 10, zoom line search) compiled into one loop, stopping by scipy's rules:
  max |∂f/∂θ| <= ``tol``, no relative decrease, ``max_iter`` iterations or ``max_fun`` calls.
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
  One difference: a ``warm_start`` fit starts the counter afresh (scikit-learn carries it from the
  previous fit, so a model that stopped once stops again after one epoch without improvement).
- ``verbose`` prints each epoch's line as scikit-learn does; it runs one epoch per dispatch (a
  host callback), otherwise small sets run many epochs per dispatch.
- ``MLPRegressor(loss="poisson")``: ffnn_jax's ``"poisson"`` loss, Σ exp(s) − y s, with an
  ``exp`` output (``out_activation_ = "exp"``). Its ``loss_curve_`` leaves out the θ-free term
  mean(y log y − y) that scikit-learn's half deviance includes, so the curves differ by that
  constant; gradients and fitted weights are the same objective.
- Weights start as scikit-learn's Glorot uniform; biases at 0 (scikit-learn draws them too).
- Training runs in float32; predictions are float64 NumPy from ``coefs_``, so they do not
  depend on how rows are batched.
- Sparse ``X`` (scipy CSR or CSC; other formats become CSR, as in scikit-learn): ``predict``,
  ``predict_proba`` and ``score`` keep it sparse (the first layer is a sparse-dense product).
  ``fit`` and ``partial_fit`` train on a dense float32 copy, since :func:`ffnn_jax.train` holds
  ``x`` on the device as one array; it is written a block of rows at a time (after the
  ``early_stopping`` split), so it is the one full-size copy, and its weights are those of a fit
  on the same dense array. A copy over ``_estimator.SPARSE_FIT_MAX_DENSE_BYTES`` (1 GiB) is
  refused with a ``ValueError`` before anything is allocated (pass ``X.toarray()`` to go ahead).
"""

from ._estimator import MLPClassifier as MLPClassifier
from ._estimator import MLPRegressor as MLPRegressor
