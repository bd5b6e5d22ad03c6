"""Tests for ffnn_jax._gradcheck: the report passes on real networks and fails on a deliberately wrong gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import x64
from hypothesis import given, settings
from test_backprop import SMOOTH_ACTIVATIONS, make_problem, problem_settings

import ffnn_jax._gradcheck as gradcheck
from ffnn_jax import cli
from ffnn_jax._backprop import backprop
from ffnn_jax._data import load_digits
from ffnn_jax._gradcheck import check_gradients, x64_scope
from ffnn_jax._params import init_params


def small_problem():
    params = init_params(jax.random.key(0), [4, 5, 3])
    x = jax.random.normal(jax.random.key(1), (6, 4))
    return params, (x, jnp.array([0, 1, 2, 0, 1, 2]))


def scale_one_leaf(layer, name, factor):
    """backprop with ∂L/∂(name)_layer multiplied by ``factor`` (layer counts from 1)."""

    def wrong_backprop(params, batch, **kwargs):
        grads = list(backprop(params, batch, **kwargs))
        grads[layer - 1] = grads[layer - 1]._replace(**{name: getattr(grads[layer - 1], name) * factor})
        return tuple(grads)

    return wrong_backprop


@pytest.mark.parametrize("activation", ["tanh", "relu"], ids=["tanh", "relu"])
def test_check_gradients_passes_on_a_digits_sized_network(activation):
    data = load_digits()
    batch = (jnp.asarray(data.x[:64] / 16), jnp.asarray(data.y[:64]))
    params = init_params(jax.random.key(0), [64, 32, 10])
    report = check_gradients(params, batch, activation=activation, weight_decay=1e-3)
    assert report.passed, str(report)
    assert report.dtype == "float64" and report.rtol == 1e-6
    assert [(leaf.layer, leaf.name, leaf.checked) for leaf in report.leaves] == [
        (1, "W", 2048),
        (1, "b", 32),
        (2, "W", 320),
        (2, "b", 10),
    ]
    assert max(leaf.backprop_rel for leaf in report.leaves) <= 1e-12
    assert str(report).startswith("Gradient check PASSED")


@pytest.mark.parametrize(
    "how, layer, name, factor",
    [
        ("monkeypatched_backprop", 1, "W", 1.001),
        ("gradient_fn", 2, "b", -1.0),
        ("gradient_fn", 2, "W", 0.0),
    ],
    ids=["backprop_with_W1_off_by_0.1_percent", "gradient_fn_with_b2_sign_flipped", "gradient_fn_with_W2_zeroed"],
)
def test_check_gradients_fails_when_one_leaf_of_the_gradient_is_wrong(monkeypatch, how, layer, name, factor):
    params, batch = small_problem()
    wrong = scale_one_leaf(layer, name, factor)
    if how == "monkeypatched_backprop":
        monkeypatch.setattr(gradcheck, "backprop", wrong)
        report = check_gradients(params, batch, activation="tanh")
    else:
        report = check_gradients(params, batch, activation="tanh", gradient_fn=wrong)
    assert not report.passed
    assert [leaf.passed for leaf in report.leaves] == [(i, n) != (layer, name) for i in (1, 2) for n in ("W", "b")]
    assert (
        str(report).startswith("Gradient check FAILED")
        and "FAIL" in str(report).splitlines()[2 * layer + (name == "b")]
    )


# Each example compiles one program (gradients and finite differences together, about 1.5 s here): few examples.
@settings(max_examples=8, deadline=None)
@given(setting=problem_settings(activations=SMOOTH_ACTIVATIONS))
def test_finite_differences_agree_with_jax_grad_on_random_smooth_networks(setting):
    with x64():
        params, batch, kwargs = make_problem(
            setting["seed"], setting["sizes"], setting["batch_size"], setting["kind"], dtype=jnp.float64
        )
        del kwargs["mask"]  # check_gradients has no mask
        report = check_gradients(
            params, batch, activation=setting["activation"], weight_decay=setting["weight_decay"], rtol=1e-6, **kwargs
        )
    assert report.passed, str(report)
    assert all(leaf.fd_rel <= 1e-6 or leaf.fd_abs <= report.atol for leaf in report.leaves)


def test_large_networks_are_checked_on_a_seeded_subset_of_each_leaf():
    params, batch = small_problem()  # 43 parameters
    report = check_gradients(params, batch, activation="tanh", full_check_limit=40, samples_per_leaf=4, seed=3)
    assert report.passed, str(report)
    assert [leaf.checked for leaf in report.leaves] == [4, 4, 4, 3]
    assert "43 parameters > full_check_limit = 40" in str(report) and "seed 3" in str(report)
    again = check_gradients(params, batch, activation="tanh", full_check_limit=40, samples_per_leaf=4, seed=3)
    assert again.leaves == report.leaves


def test_the_report_says_when_float64_is_unavailable(monkeypatch):
    monkeypatch.setattr(gradcheck, "_float64_unavailable", lambda: "no float64 on this backend")
    params, batch = small_problem()
    report = check_gradients(params, batch, activation="sigmoid")
    assert report.passed, str(report)
    assert report.dtype == "float32" and report.rtol == 1e-2
    assert "float64 is not available here (no float64 on this backend)" in report.notes[0]
    assert "note: float64 is not available" in str(report)


def test_check_gradients_computes_in_float64_and_leaves_float32_the_default():
    params, batch = small_problem()
    report = check_gradients(params, batch, activation="tanh")
    assert report.dtype == "float64" and report.notes == ()
    assert jnp.ones(2).dtype == jnp.float32 and not jax.config.jax_enable_x64


def test_x64_scope_enables_float64_inside_and_restores_the_setting_after():
    with x64_scope():
        assert jnp.ones(2).dtype == jnp.float64
    assert jnp.ones(2).dtype == jnp.float32


def test_the_report_prints_an_aligned_table():
    params, batch = small_problem()
    lines = str(check_gradients(params, batch, activation="tanh")).splitlines()
    table = lines[1:6]
    assert len({len(line) for line in table}) == 1
    assert table[0].split() == [
        "layer",
        "param",
        "shape",
        "checked",
        "max|grad|",
        "backprop",
        "abs",
        "backprop",
        "rel",
        "FD",
        "abs",
        "FD",
        "rel",
        "verdict",
    ]
    assert [line.split()[:4] for line in table[1:]] == [["1", "W", "4x5", "20/20"], ["1", "b", "5", "5/5"]] + [
        ["2", "W", "5x3", "15/15"],
        ["2", "b", "3", "3/3"],
    ]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rtol": 0.0}, "`rtol`"),
        ({"eps": -1e-6}, "`eps`"),
        ({"samples_per_leaf": 0}, "`samples_per_leaf`"),
        ({"loss": "hinge"}, "`loss`"),
        ({"activation": np.sin}, "`activation`"),
    ],
    ids=["rtol", "eps", "samples_per_leaf", "loss", "activation"],
)
def test_check_gradients_rejects_bad_arguments_naming_them(kwargs, match):
    params, batch = small_problem()
    with pytest.raises(ValueError, match=match):
        check_gradients(params, batch, **kwargs)


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_a_non_finite_weight_fails_the_check_and_the_report_names_the_leaf(bad):
    params, batch = small_problem()
    params = (params[0]._replace(W=params[0].W.at[0, 0].set(bad)), params[1])
    report = check_gradients(params, batch, activation="tanh")
    assert not report.passed
    assert "params" in report.leaves[0].non_finite
    kind = "NaN" if np.isnan(bad) else "inf"
    assert [where for where in report.non_finite if where.startswith("layer 1 W:")][0].startswith(
        f"layer 1 W: params 1 {kind} of 20"
    )
    assert str(report).startswith("Gradient check FAILED")
    assert f"non-finite: layer 1 W: params 1 {kind} of 20" in str(report)


def test_a_non_finite_input_fails_the_check_and_the_report_says_so():
    params, (x, y) = small_problem()
    report = check_gradients(params, (x.at[2, 1].set(jnp.nan), y), activation="tanh")
    assert not report.passed
    assert "non-finite: the loss is NaN" in str(report)
    assert "non-finite: the batch's x: 1 NaN of 24" in str(report)


def inject(where, bad):
    """A stand-in for ``gradcheck._gradients`` that puts ``bad`` into one output at b_2[0] (or into the loss)."""
    real = gradcheck._gradients

    def gradients(*args, **kwargs):
        value, reference, by_hand, fd = real(*args, **kwargs)
        if where == "loss":
            value = jnp.full_like(value, bad)
        elif where == "jax.grad":
            reference = (reference[0], reference[1]._replace(b=reference[1].b.at[0].set(bad)))
        elif where == "backprop":
            by_hand = (by_hand[0], by_hand[1]._replace(b=by_hand[1].b.at[0].set(bad)))
        else:  # b_2[0] is element 20 + 5 + 15 of θ, checked in full
            fd = fd.reshape(-1).at[40].set(bad).reshape(fd.shape)
        return value, reference, by_hand, fd

    return gradients


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize(
    "where", ["jax.grad", "backprop", "finite differences"], ids=["jax_grad", "backprop", "finite_differences"]
)
def test_a_non_finite_gradient_fails_the_check_and_the_report_says_which(monkeypatch, where, bad):
    monkeypatch.setattr(gradcheck, "_gradients", inject(where, bad))
    params, batch = small_problem()
    report = check_gradients(params, batch, activation="tanh")
    assert not report.passed
    assert [leaf.non_finite for leaf in report.leaves] == [(), (), (), (where,)]
    assert [leaf.passed for leaf in report.leaves] == [True, True, True, False]
    kind = "NaN" if np.isnan(bad) else "inf"
    checked = " checked" if where == "finite differences" else ""
    assert report.non_finite == (f"layer 2 b: {where} 1 {kind} of 3{checked}",)
    assert str(report).splitlines()[-1] == f"non-finite: layer 2 b: {where} 1 {kind} of 3{checked}"


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_a_non_finite_loss_fails_the_check_even_when_every_gradient_agrees(monkeypatch, bad):
    monkeypatch.setattr(gradcheck, "_gradients", inject("loss", bad))
    params, batch = small_problem()
    report = check_gradients(params, batch, activation="tanh")
    assert not report.passed and all(leaf.passed for leaf in report.leaves)
    assert report.non_finite == ("the loss is " + ("NaN" if np.isnan(bad) else "inf"),)
    assert np.isfinite(report.atol)  # an inf loss must not widen the absolute tolerance to inf


def test_a_nan_from_jax_grad_alone_fails_the_check():
    # The untaken sqrt branch of jnp.where has a NaN derivative, and jax.grad multiplies it by 0: NaN. The loss,
    # finite differences and the hand-written tanh gradient stay finite.
    def tanh_or_sqrt(z):
        return jnp.where(z < 50, jnp.tanh(z), jnp.sqrt(z - 50))

    def tanh_backprop(params, batch, **kwargs):
        return backprop(params, batch, **{**kwargs, "activation": "tanh"})

    params, batch = small_problem()
    report = check_gradients(params, batch, activation=tanh_or_sqrt, gradient_fn=tanh_backprop)
    assert np.isfinite(report.loss_value) and not report.passed
    assert {where for leaf in report.leaves for where in leaf.non_finite} == {"jax.grad"}
    assert "layer 1 W: jax.grad 20 NaN of 20" in str(report)


@pytest.mark.parametrize(
    "rows_x, rows_y, match",
    [(0, 0, "`batch` must have at least one row"), (6, 5, "`batch` x and y must have the same number of rows")],
    ids=["zero_rows", "rows_disagree"],
)
def test_check_gradients_rejects_a_batch_without_rows_or_with_mismatched_rows(rows_x, rows_y, match):
    params, (x, y) = small_problem()
    with pytest.raises(ValueError, match=match):
        check_gradients(params, (x[:rows_x], y[:rows_y]))


def test_the_cli_rejects_check_samples_0_instead_of_passing_a_nan_loss(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["gradcheck", "--check_samples", "0"])
    assert exit_info.value.code == 2
    assert "`--check_samples` must be a positive integer, got 0" in capsys.readouterr().err  # before any work
