"""A prototype of ffnn_jax's fused epoch with the knobs under study, to measure changes to the core.

It is the same program as ``ffnn_jax`` ``run_epoch`` (the core's permutation from a key, one
``lax.scan`` over full batches of one jitted SGD/adam step, optimizer from
:func:`ffnn_jax.make_optimizer`) with these switches (and ``unroll``, the scan's unroll factor):

- ``compute_dtype``: ``"bfloat16"`` casts params and inputs to bf16 for the forward and backward
  matmuls while the params, gradients and optimizer state stay float32 (mixed precision, what
  ``--dtype bfloat16`` measures; ``train()`` has no such option yet).
- ``guard``: the core's per-step "is every new parameter finite, else keep the old ones" select
  (``"params"``: a reduction over the new params, then a select pass), the same decided from the
  loss and gradients before the update (``"grads"``: the select fuses into the update), or none.
- ``grad_layout``: ``"xla"`` lets XLA lower the weight gradient ``hᵀ δ`` as it likes (a dot
  contracting the batch dimension of both operands); ``"transpose"`` materialises ``hᵀ`` first
  through a custom VJP so that every GEMM is a plain row-major ``A @ B``.
- ``one_hot``: the cross-entropy of integer labels through a one-hot product instead of a gather
  (whose gradient is a scatter).

The core has since taken the loss-only guard, the one-hot cross-entropy and (without sample
weights) the gather-free batch. The prototype leaves out the L2 term at λ = 0 (the core keeps it so
that changing ``weight_decay`` never recompiles), and it has neither the core's flat-θ steps for
small networks nor its grouped epochs (one dispatch per epoch here).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

import ffnn_jax
from benchmarks._runner import EpochRunner
from ffnn_jax._shuffle import permutation


@jax.custom_vjp
def dense_t(h, w, b):
    """``h @ w + b`` whose backward pass materialises ``hᵀ``, so the weight gradient is a plain row-major GEMM."""
    return h @ w + b


def _dense_t_fwd(h, w, b):
    return h @ w + b, (h, w)


def _dense_t_bwd(residuals, delta):
    h, w = residuals
    h_t = jax.lax.optimization_barrier(jnp.transpose(h))  # [in, batch]: a row-major copy, so hᵀ δ is a plain GEMM
    return delta @ w.T, h_t @ delta, jnp.sum(delta, axis=0)


dense_t.defvjp(_dense_t_fwd, _dense_t_bwd)


def forward(params, x, *, compute_dtype=jnp.float32, grad_layout="xla"):
    """ReLU network scores in float32; matmuls in ``compute_dtype``."""
    h = x.astype(compute_dtype)
    for i, (w, b) in enumerate(params):
        w, b = w.astype(compute_dtype), b.astype(compute_dtype)
        h = dense_t(h, w, b) if grad_layout == "transpose" else h @ w + b
        h = jax.nn.relu(h) if i < len(params) - 1 else h
    return h.astype(jnp.float32)


def all_finite(loss, tree) -> jax.Array:
    """True when ``loss`` and every leaf of ``tree`` are finite.

    One fused reduction per leaf: Σ 0·x is NaN exactly when some x is not finite.
    """
    zero = sum(jnp.sum(leaf * 0.0) for leaf in jax.tree_util.tree_leaves(tree))
    return jnp.isfinite(loss + zero)


def cross_entropy(scores, y, *, one_hot: bool):
    """Mean softmax cross-entropy; ``one_hot`` avoids the gather (and the scatter in its gradient) of integer labels."""
    if one_hot:
        return -jnp.mean(
            jnp.sum(jax.nn.one_hot(y, scores.shape[-1], dtype=scores.dtype) * jax.nn.log_softmax(scores), -1)
        )
    return optax.softmax_cross_entropy_with_integer_labels(scores, y).mean()


def make_epoch(
    optimizer,
    *,
    batch_size,
    compute_dtype="float32",
    guard="params",
    grad_layout="xla",
    one_hot=False,
    count_correct=True,
    unroll=1,
):
    """Returns ``epoch(params, opt_state, key, x, y) -> (params, opt_state, key, mean loss, correct rows)``, jitted.

    The params and optimizer state are donated.

    ``guard``: ``"params"`` keeps the old state when the loss or a new parameter is not finite (the
    core's rule: two passes, a check of the new params then a select); ``"grads"`` decides from the
    loss and the gradients before the update, so the select fuses into the update; ``"loss"``
    decides from the loss alone (a scalar; the select fuses into the update; parameters that
    overflow in an update show up as a non-finite loss one step later, so a check of the params
    once per epoch must back it); ``"off"`` applies every step. ``count_correct`` also counts the
    correctly classified rows of each step (the core's train_accuracy). ``unroll`` is
    ``lax.scan``'s unroll factor.
    """
    dtype = jnp.dtype(compute_dtype)

    def loss_fn(params, x, y):
        scores = forward(params, x, compute_dtype=dtype, grad_layout=grad_layout)
        return cross_entropy(scores, y, one_hot=one_hot), scores

    def keep_if(finite, new, old):
        return jax.tree_util.tree_map(lambda a, b: jnp.where(finite, a, b), new, old)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def epoch(params, opt_state, key, x, y):
        def step(carry, rows):
            params, opt_state, total, correct = carry
            (loss, scores), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x[rows], y[rows])
            updates, new_opt_state = optimizer.update(grads, opt_state, params)
            new = (optax.apply_updates(params, updates), new_opt_state)
            if guard == "params":
                new = keep_if(all_finite(loss, new[0]), new, (params, opt_state))
            elif guard == "grads":
                new = keep_if(all_finite(loss, grads), new, (params, opt_state))
            elif guard == "loss":
                new = keep_if(jnp.isfinite(loss), new, (params, opt_state))
            if count_correct:
                correct = correct + jnp.sum(jnp.argmax(scores, -1) == y[rows])
            return (*new, total + loss, correct), None

        key, order_key = jax.random.split(key)
        n_batches = x.shape[0] // batch_size
        order = permutation(order_key, x.shape[0])[: n_batches * batch_size].reshape(n_batches, batch_size)
        init = (params, opt_state, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
        (params, opt_state, total, correct), _ = jax.lax.scan(step, init, order, unroll=unroll)
        return params, opt_state, key, total / n_batches, correct

    return epoch


class FusedProtoRunner(EpochRunner):
    """The prototype fused epoch with the settings the study found fastest (loss-only guard, no weights, no L2)."""

    name = "proto"
    label = "proto fused epoch"
    note = (
        "benchmarks/_proto.py: run_epoch's scan with the finite guard on the loss only, one-hot CE, "
        "no sample weights or L2 term, bf16 option"
    )
    guard = "loss"
    grad_layout = "xla"
    one_hot = True
    unroll = 1

    def setup(self):
        config = self.config
        self.optimizer = ffnn_jax.make_optimizer(config.optimizer, learning_rate=config.learning_rate)
        self.epoch_fn = make_epoch(
            self.optimizer,
            batch_size=config.batch_size,
            compute_dtype=self.dtype,
            guard=self.guard,
            grad_layout=self.grad_layout,
            one_hot=self.one_hot,
            unroll=self.unroll,
        )
        self.predict = jax.jit(lambda params, x: jnp.argmax(forward(params, x), axis=-1))
        self.x, self.y = jax.device_put(self.data.x), jax.device_put(self.data.y)
        self.params = self.opt_state = self.key = None

    def reset(self, seed):
        self.key = jax.random.key(seed)
        self.params = tuple((jnp.array(w), jnp.array(b)) for w, b in self.init)
        self.opt_state = self.optimizer.init(self.params)

    def epoch(self):
        self.params, self.opt_state, self.key, loss, _ = self.epoch_fn(
            self.params, self.opt_state, self.key, self.x, self.y
        )
        return float(loss)

    def accuracy(self, x, y):
        return float((np.asarray(self.predict(self.params, x)) == y).mean())

    def layers(self):
        return [(np.asarray(w), np.asarray(b)) for w, b in self.params]

    def compiled_text(self) -> str:
        """The optimised HLO of the epoch (after :meth:`reset`)."""
        return self.epoch_fn.lower(self.params, self.opt_state, self.key, self.x, self.y).compile().as_text()
