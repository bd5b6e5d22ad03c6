"""sweep(): many networks in one compiled program; each member is the train() run it stands for."""

import jax
import numpy as np
import pytest
from helpers import assert_trees_all_close, assert_trees_all_equal
from test_train import _CompileCounter

import ffnn_jax
from ffnn_jax._loop import run_members
from ffnn_jax._sweep import expand_grid


@pytest.fixture(scope="module")
def digits():
    x, y = ffnn_jax.load_digits()
    return np.asarray(x)[:600], np.asarray(y)[:600]


BASE = dict(hidden_sizes=(16,), epochs=3, batch_size=32)


def _same_as_standalone(member, standalone):
    assert_trees_all_equal(member.params, standalone.params)
    assert_trees_all_equal(member.state.opt_state, standalone.state.opt_state)
    assert member.history["train_loss"] == standalone.history["train_loss"]


def _agrees_with_standalone(member, standalone):
    """Members that share one data order: their first layer is one wide product for all of them,
    which XLA blocks (and so rounds) otherwise than one member's product: equal to 1e-5."""
    assert_trees_all_close(member.params, standalone.params, rtol=1e-5, atol=1e-6)
    assert_trees_all_close(member.state.opt_state, standalone.state.opt_state, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(member.history["train_loss"], standalone.history["train_loss"], rtol=1e-5)
    assert member.history["epoch"] == standalone.history["epoch"]


NUMERIC = {
    "learning_rate": ("adam", [1e-3, 3e-2]),
    "weight_decay": ("adam", [1e-4, 1e-2]),
    "momentum": ("momentum", [0.5, 0.95]),
    "beta": ("rmsprop", [0.8, 0.99]),
    "beta1": ("adam", [0.8, 0.95]),
    "beta2": ("adam", [0.99, 0.9999]),
    "epsilon": ("adam", [1e-8, 1e-3]),
    "max_grad_norm": ("adam", [0.1, 1.0]),
    "seed": ("adam", [0, 5]),
}


@pytest.mark.parametrize("name", list(NUMERIC))
def test_a_member_equals_the_standalone_train_call(digits, name):
    x, y = digits
    optimizer, values = NUMERIC[name]
    settings = dict(BASE, optimizer=optimizer, learning_rate=1e-2, validation_fraction=0.2)
    result = ffnn_jax.sweep(x, y, grid={name: values}, **settings)
    assert result.programs == 1
    for value, member in zip(values, result.results):
        standalone = ffnn_jax.train(x, y, **{**settings, name: value})
        if name == "seed":  # each member's own data order: the same products as alone, bit for bit
            _same_as_standalone(member, standalone)
        else:
            _agrees_with_standalone(member, standalone)


def test_members_mixing_zero_and_positive_weight_decay_agree_to_rounding(digits):
    x, y = digits
    settings = dict(BASE, optimizer="adam", learning_rate=1e-2)
    result = ffnn_jax.sweep(x, y, grid={"weight_decay": [0.0, 1e-3]}, **settings)
    for value, member in zip([0.0, 1e-3], result.results):
        standalone = ffnn_jax.train(x, y, **{**settings, "weight_decay": value})
        # the λ = 0 gate is a branch alone and a select under vmap: the same sums, other fusion
        assert_trees_all_close(member.params, standalone.params, rtol=1e-5, atol=1e-6)


def test_grids_expand_as_a_product_or_a_list_and_unknown_names_are_refused():
    assert expand_grid({"learning_rate": [1, 2], "seed": [0, 1, 2]})[:2] == [
        {"learning_rate": 1, "seed": 0},
        {"learning_rate": 1, "seed": 1},
    ]
    assert len(expand_grid({"learning_rate": [1, 2], "seed": [0, 1, 2]})) == 6
    assert expand_grid([{"seed": 1}, {"seed": 2, "epochs": 4}]) == [{"seed": 1}, {"seed": 2, "epochs": 4}]
    with pytest.raises(ValueError, match=r"unknown settings \['learnin_rate'\]; did you mean 'learning_rate'"):
        expand_grid({"learnin_rate": [1e-3]})
    with pytest.raises(ValueError, match=r"`grid\['seed'\]` must be a non-empty list"):
        expand_grid({"seed": []})
    with pytest.raises(ValueError, match="`learning_rate` must be"):
        ffnn_jax.sweep(np.ones((4, 2)), np.array([0, 1, 0, 1]), grid={"learning_rate": [-1.0]})


def test_settings_that_change_structure_make_one_program_each(digits):
    x, y = digits
    grid = {"hidden_sizes": [(8,), (16,)], "optimizer": ["sgd", "adam"], "learning_rate": [1e-2, 1e-1]}
    result = ffnn_jax.sweep(x, y, grid=grid, epochs=2)
    assert result.programs == 4 and len(result.table) == 8
    assert [r.layer_sizes[1] for r in result.results] == [8, 8, 8, 8, 16, 16, 16, 16]
    standalone = ffnn_jax.train(x, y, hidden_sizes=(16,), optimizer="sgd", learning_rate=1e-1, epochs=2)
    _agrees_with_standalone(result.results[5], standalone)


def test_early_stopping_is_per_member_and_a_stopped_member_keeps_its_best(digits):
    x, y = digits
    settings = dict(BASE, optimizer="adam", learning_rate=5e-2, epochs=30, validation_fraction=0.3, early_stopping=True)
    result = ffnn_jax.sweep(x, y, grid={"patience": [0, 25]}, **settings)
    quick, patient = result.results
    assert len(quick.history["epoch"]) < len(patient.history["epoch"])
    assert result.table[0]["status"].startswith("stopped early at epoch")
    _agrees_with_standalone(quick, ffnn_jax.train(x, y, **{**settings, "patience": 0}))
    _agrees_with_standalone(patient, ffnn_jax.train(x, y, **{**settings, "patience": 25}))


def test_members_sharing_a_seed_share_one_data_order_and_a_seed_grid_keeps_each_its_own(digits, monkeypatch):
    x, y = digits
    orders = []
    one_order_key = ffnn_jax._sweep._one_order_key
    monkeypatch.setattr(ffnn_jax._sweep, "_one_order_key", lambda *a: orders.append(one_order_key(*a)) or orders[-1])
    settings = dict(BASE, optimizer="adam", learning_rate=1e-2)
    ffnn_jax.sweep(x, y, grid={"learning_rate": [1e-3, 1e-2], "weight_decay": [0.0, 1e-3]}, **settings)
    assert orders and all(key is not None for key in orders)
    orders.clear()
    ffnn_jax.sweep(x, y, grid={"seed": [0, 1]}, **settings)
    assert orders and all(key is None for key in orders)


def test_members_of_one_data_order_with_other_epoch_counts_each_take_their_own(digits, monkeypatch):
    x, y = digits
    monkeypatch.setattr(ffnn_jax._setup, "epochs_per_dispatch", lambda *a: 2)  # the order key carried across calls
    settings = dict(BASE, optimizer="adam", learning_rate=1e-2)
    result = ffnn_jax.sweep(x, y, grid={"epochs": [1, 5, 3]}, **settings)
    assert result.programs == 1 and [len(r.history["epoch"]) for r in result.results] == [1, 5, 3]
    for epochs, member in zip([1, 5, 3], result.results):
        _agrees_with_standalone(member, ffnn_jax.train(x, y, **{**settings, "epochs": epochs}))


def test_a_diverging_member_is_masked_and_reported_and_never_raises(digits):
    x, _ = digits
    y = x.sum(axis=1) * 100.0
    settings = dict(BASE, activation="identity", optimizer="sgd", epochs=6)
    result = ffnn_jax.sweep(x, y, grid={"learning_rate": [1e-6, 10.0]}, **settings)
    assert result.table[1]["status"].startswith("diverged at epoch")
    assert result.table[0]["status"] == "ok" and result.best_index == 0
    standalone = ffnn_jax.train(x, y, **{**settings, "learning_rate": 1e-6})
    assert_trees_all_close(result.results[0].params, standalone.params, rtol=1e-5, atol=1e-7)  # regression: see README
    with pytest.raises(ffnn_jax.TrainingDivergedError):
        ffnn_jax.train(x, y, **{**settings, "learning_rate": 10.0})


def test_k_fold_members_report_mean_and_std_and_the_best_point_is_refit(digits):
    x, y = digits
    settings = dict(BASE, optimizer="adam")
    result = ffnn_jax.sweep(x, y, grid={"learning_rate": [1e-4, 3e-2]}, folds=3, **settings)
    assert len(result.results) == 6 and len(result.table) == 2
    row = result.table[1]
    folds = [r.history["val_accuracy"][-1] for r in result.results[3:]]
    assert row["final_val_accuracy"] == pytest.approx(np.mean(folds)) and row["final_val_accuracy_std"] >= 0
    assert result.best_index == 1 and result.table[1]["final_val_accuracy"] > result.table[0]["final_val_accuracy"]
    assert result.best.config.learning_rate == 3e-2 and "val_loss" not in result.best.history  # refit on all rows
    assert sum(len(r.history["epoch"]) for r in result.results) == 6 * settings["epochs"]


def test_the_same_sweep_with_other_values_compiles_nothing(digits):
    x, y = digits
    settings = dict(BASE, optimizer="adam", validation_fraction=0.2)
    with _CompileCounter() as first:
        ffnn_jax.sweep(x, y, grid={"learning_rate": [1e-3, 1e-2], "weight_decay": [1e-4, 1e-3]}, **settings)
    with _CompileCounter() as second:
        ffnn_jax.sweep(x, y, grid={"learning_rate": [5e-3, 2e-2], "weight_decay": [1e-5, 1e-2]}, **settings)
    assert first.count >= 1 and second.count == 0


def test_the_table_goes_to_csv(tmp_path, digits):
    x, y = digits
    result = ffnn_jax.sweep(x, y, grid={"learning_rate": [1e-3, 1e-2]}, **BASE)
    path = result.to_csv(str(tmp_path / "sweep.csv"))
    lines = open(path).read().splitlines()
    assert lines[0].startswith("learning_rate,status,epochs_run,best_epoch,final_train_loss") and len(lines) == 3
    assert jax.tree_util.tree_structure(result.best.params) == jax.tree_util.tree_structure(result.results[0].params)


def test_plot_draws_curves_and_a_heatmap_for_a_two_axis_grid(tmp_path, digits):
    x, y = digits
    grid = {"learning_rate": [1e-3, 1e-2], "weight_decay": [0.0, 1e-3]}
    result = ffnn_jax.sweep(x, y, grid=grid, validation_fraction=0.2, **BASE)
    path = result.plot(str(tmp_path / "sweep.png"))
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert result.grid_names == ("learning_rate", "weight_decay") and result.monitor == "val_loss"


def _ensemble_cases():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    return x, {
        "cross_entropy": dict(y=(x[:, 0] > 0).astype(int) + (x[:, 1] > 0)),
        "squared_error-2-outputs": dict(y=np.column_stack([x[:, 0] + x[:, 1], 3 * x[:, 2]])),
        "squared_error-1-output": dict(y=2 * x[:, 0]),
        "binary_cross_entropy": dict(y=(x[:, :3] > 0).astype(np.float32), loss="binary_cross_entropy"),
        "poisson": dict(y=rng.poisson(np.exp(0.3 * x[:, 0])).astype(np.float32), loss="poisson"),
        "weight_decay": dict(y=(x[:, 0] > 0).astype(int), weight_decay=1e-2),
    }


@pytest.mark.parametrize("case", list(_ensemble_cases()[1]))
def test_an_ensemble_of_one_scores_exactly_as_its_member_does(case):
    x, cases = _ensemble_cases()
    kw = dict(cases[case])
    y = kw.pop("y")
    ensemble = ffnn_jax.train(x, y, ensemble=1, epochs=3, hidden_sizes=(8,), validation_fraction=0.25, **kw)
    member, together = ensemble.scores["members"][0], ensemble.scores["ensemble"]
    assert member.keys() == together.keys()
    for name in member:  # the same loss (½, per-label sums, poisson, the L2 term), the same R² and accuracy
        assert together[name] == pytest.approx(member[name], rel=1e-5, abs=1e-6), name


def test_multi_output_r2_is_the_uniform_average_of_scikit_learns_r2_score():
    from sklearn.metrics import r2_score

    x, cases = _ensemble_cases()
    y = cases["squared_error-2-outputs"]["y"]
    result = ffnn_jax.train(x, y, epochs=5, hidden_sizes=(8,), optimizer="adam", learning_rate=0.01)
    predicted = result.predict(x)
    assert r2_score(y, predicted) != pytest.approx(r2_score(y, predicted, multioutput="variance_weighted"), abs=1e-3)
    assert result.evaluate(x, y)["r2"] == pytest.approx(r2_score(y, predicted), abs=1e-5)


def test_an_ensemble_trains_k_seeds_in_one_program_and_averages_their_probabilities(digits):
    x, y = digits
    names = np.array(list("abcdefghij"))[y]
    settings = dict(BASE, optimizer="adam", learning_rate=1e-2, seed=3)
    ensemble = ffnn_jax.train(x, names, ensemble=3, validation_data=(x[:100], names[:100]), **settings)
    assert len(ensemble.members) == 3 and ensemble.scored_on == "validation"
    alone = ffnn_jax.train(x, names, validation_data=(x[:100], names[:100]), **{**settings, "seed": 4})
    _same_as_standalone(ensemble.members[1], alone)  # member i has seed + i
    mean = np.mean([m.predict_proba(x) for m in ensemble.members], axis=0)
    np.testing.assert_allclose(ensemble.predict_proba(x), mean)
    np.testing.assert_array_equal(ensemble.predict(x), ensemble.classes[np.argmax(mean, axis=1)])
    scores = ensemble.scores
    assert [s["accuracy"] for s in scores["members"]] == [
        m.evaluate(x[:100], names[:100])["accuracy"] for m in ensemble.members
    ]
    assert scores["ensemble"]["accuracy"] == pytest.approx(np.mean(ensemble.predict(x[:100]) == names[:100]))
    with pytest.raises(ValueError, match="`ensemble` trains its members in one program"):
        ffnn_jax.train(x, y, ensemble=2, callbacks=[print], **BASE)


def test_a_saved_ensemble_reopens_with_load_model_and_predicts_exactly_as_it_did(digits, tmp_path):
    x, y = digits
    names = np.array(list("abcdefghij"))[y]
    ensemble = ffnn_jax.train(x, names, ensemble=3, standardize=True, validation_fraction=0.2, **BASE)
    path = str(tmp_path / "ensemble.npz")
    ensemble.save(path)
    reopened = ffnn_jax.load_model(path)
    assert isinstance(reopened, ffnn_jax.EnsembleResult) and len(reopened.members) == 3
    np.testing.assert_array_equal(reopened.predict_proba(x), ensemble.predict_proba(x))  # each member's scaling too
    np.testing.assert_array_equal(reopened.predict(x), ensemble.predict(x))
    assert reopened.evaluate(x, names) == ensemble.evaluate(x, names)
    assert reopened.scores == ensemble.scores and reopened.scored_on == "validation"
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        ensemble.save(path)
    from ffnn_jax import cli

    np.savez(tmp_path / "x.npz", x=x)  # features only: the CLI predicts without scoring
    assert cli.main(["predict", "--model", path, "-d", str(tmp_path / "x.npz"), "--out", str(tmp_path / "p.csv")]) == 0
    predicted = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1, usecols=1, dtype=str)
    np.testing.assert_array_equal(predicted, ensemble.predict(x))
    with pytest.warns(UserWarning, match="standardized inputs"):
        stacked, meta = ffnn_jax.load_params(path)
    assert stacked[0].W.shape == (3, 64, 16) and meta["members"] == 3 and meta["ensemble"]["seeds"] == [0, 1, 2]
    ffnn_jax.save_params(str(tmp_path / "one.npz"), ensemble.members[0].params, metadata={"members": 3})
    with pytest.raises(ValueError, match=r"'layer0/W' should have shape \(3, 64, 16\)"):  # metadata and arrays disagree
        ffnn_jax.load_model(str(tmp_path / "one.npz"))


def test_an_ensemble_with_a_validation_fraction_shares_one_held_out_split(digits):
    x, y = digits
    ensemble = ffnn_jax.train(x, y, ensemble=2, validation_fraction=0.25, **BASE)
    alone = ffnn_jax.train(x, y, validation_fraction=0.25, **BASE)  # seed 0 draws the same split
    assert_trees_all_equal(ensemble.members[0].params, alone.params)
    # the masked mean over the (padded) held-out rows may round a last bit apart when vmapped
    np.testing.assert_allclose(ensemble.members[0].history["val_loss"], alone.history["val_loss"], rtol=1e-6)


def test_float64_members_train_in_float64(digits):
    x, y = digits
    result = ffnn_jax.sweep(x, y, grid={"learning_rate": [1e-3, 1e-2]}, dtype="float64", **BASE)
    assert {r.params[0].W.dtype for r in result.results} == {np.dtype("float64")}
    assert not jax.config.jax_enable_x64


# --- chunks of max_members, progress, explicit folds ----------------------------------------------------------


CHUNKED = dict(hidden_sizes=(7,), epochs=3, batch_size=32, optimizer="adam")  # a structure of these tests' own
EIGHT = {"learning_rate": [1e-3, 1e-2], "seed": [0, 1, 2, 3]}


def _same_params(a, b):
    for first, second in zip(a.results, b.results):
        assert_trees_all_equal(first.params, second.params)


def test_chunks_of_max_members_change_no_result_and_compile_one_program_per_structure(digits):
    x, y = digits
    calls = []
    before = run_members._cache_size()
    chunked = ffnn_jax.sweep(x, y, grid=EIGHT, max_members=3, progress=lambda *a: calls.append(a), **CHUNKED)
    assert run_members._cache_size() - before == 1  # chunks of 3, 3 and 2 padded to 3: one program
    whole = ffnn_jax.sweep(x, y, grid=EIGHT, **CHUNKED)
    _same_params(chunked, whole)
    assert chunked.table == whole.table and chunked.best_index == whole.best_index and chunked.programs == 1
    assert [(done, total) for done, total, _ in calls] == [(3, 8), (6, 8), (8, 8)]
    assert calls[-1][2] == whole.table[whole.best_index]  # the best row so far, at the end the table's best


def test_a_member_depends_only_on_its_settings_and_the_program_width_never_on_its_chunk(digits):
    # XLA may vectorize a reduction (here the validation loss) by the member count, so programs of other
    # widths can round differently in the last bit; within one width, chunks and neighbours change nothing.
    x, y = digits
    points = expand_grid(EIGHT)
    settings = dict(CHUNKED, validation_fraction=0.2)
    chunked = ffnn_jax.sweep(x, y, grid=points, max_members=3, **settings)  # chunks [0 1 2] [3 4 5] [6 7 7]
    middle = ffnn_jax.sweep(x, y, grid=points[3:6], **settings)
    last = ffnn_jax.sweep(x, y, grid=points[5:8], **settings)  # 6 and 7 at other places of a width-3 program
    for member, alone in zip(chunked.results[3:], middle.results + last.results[1:]):
        assert_trees_all_equal(member.params, alone.params)
        assert member.history["val_loss"] == alone.history["val_loss"]
    whole = ffnn_jax.sweep(x, y, grid=points, **settings)
    for member, alone in zip(chunked.results, whole.results):
        assert_trees_all_close(member.params, alone.params, rtol=1e-5, atol=1e-7)


def test_without_max_members_the_chunk_follows_the_memory_budget(digits, monkeypatch):
    x, y = digits
    grid = {"seed": [0, 1, 2, 3]}
    calls = []
    assert ffnn_jax._sweep.memory_budget() > 0
    ffnn_jax.sweep(x, y, grid=grid, progress=lambda *a: calls.append(a[0]), **CHUNKED)
    assert calls == [4]  # 4 small members fit at once
    monkeypatch.setattr(ffnn_jax._sweep, "memory_budget", lambda: 1)
    calls.clear()
    ffnn_jax.sweep(x, y, grid=grid, progress=lambda *a: calls.append(a[0]), **CHUNKED)
    assert calls == [1, 2, 3, 4]  # one member per program run when the budget holds none


@pytest.mark.parametrize("value", [0, -2, 2.5, True, "3"])
def test_max_members_must_be_a_positive_integer(value):
    with pytest.raises(ValueError, match="`max_members` must be a positive integer or None"):
        ffnn_jax.sweep(np.ones((4, 2)), np.array([0, 1, 0, 1]), grid={"seed": [0]}, max_members=value)


def test_folds_take_index_pairs_or_a_splitter_and_each_member_is_its_train_call(digits):
    from sklearn.model_selection import KFold

    x, y = digits
    splitter = KFold(3, shuffle=True, random_state=0)
    by_splitter = ffnn_jax.sweep(x, y, grid={"learning_rate": [1e-2]}, folds=splitter, refit=False, **BASE)
    pairs = list(splitter.split(x, y))
    by_pairs = ffnn_jax.sweep(x, y, grid={"learning_rate": [1e-2]}, folds=pairs, refit=False, **BASE)
    _same_params(by_splitter, by_pairs)
    for member, (train_rows, test_rows) in zip(by_splitter.results, pairs):
        validation = (x[test_rows], y[test_rows])
        alone = ffnn_jax.train(x[train_rows], y[train_rows], validation_data=validation, learning_rate=1e-2, **BASE)
        assert_trees_all_close(member.params, alone.params, rtol=1e-5, atol=1e-7)
    by_count = ffnn_jax.sweep(x, y, grid={"learning_rate": [1e-2]}, folds=3, refit=False, **BASE)
    explicit = ffnn_jax._sweep.fold_pairs(3, x, y, seed=0)
    _same_params(by_count, ffnn_jax.sweep(x, y, grid={"learning_rate": [1e-2]}, folds=explicit, refit=False, **BASE))


@pytest.mark.parametrize(
    "folds, error, message",
    [
        (1, ValueError, r"`folds` must be at least 2, got 1"),
        ("abc", TypeError, r"`folds` must be an int >= 2, a sequence of \(train_indices, test_indices\) pairs"),
        ([(np.arange(3),)], TypeError, r"`folds\[0\]` is"),
        ([(np.arange(3), np.array([9]))], ValueError, r"`folds\[0\]\[1\]` holds row indices outside \[0, 8\)"),
        ([(np.arange(3), np.array([], int))], ValueError, r"`folds\[0\]\[1\]` must be a non-empty 1-D array"),
        ([], ValueError, "got no pairs"),
    ],
    ids=["one", "string", "not-a-pair", "out-of-range", "empty-fold", "no-pairs"],
)
def test_bad_folds_are_refused_naming_them(folds, error, message):
    x, y = np.ones((8, 2), np.float32), np.array([0, 1] * 4)
    with pytest.raises(error, match=message):
        ffnn_jax.sweep(x, y, grid={"seed": [0]}, folds=folds)


TRAIN_ON_FIRST_SIX = [(np.arange(3, 9), np.arange(3)), (np.arange(6), np.arange(6, 9))]  # fold 1 trains on rows 0-5


@pytest.mark.parametrize(
    "y, message",
    [
        (np.array(["a"] * 6 + ["b"] * 3), r"training rows of fold 1 hold only label 'a': a classifier needs two"),
        (np.array(["a", "b"] * 3 + ["c"] * 3), r"training rows of fold 1 hold no row of labels \['c'\] that its held"),
    ],
    ids=["one-class", "missing-label"],
)
def test_folds_whose_training_rows_lack_a_label_are_refused_naming_the_fold_not_validation_data(y, message):
    with pytest.raises(ValueError, match=message):
        ffnn_jax.sweep(np.ones((9, 2), np.float32), y, grid={"seed": [0]}, folds=TRAIN_ON_FIRST_SIX)


def test_float_targets_are_not_labels_so_regression_folds_may_hold_any_values():
    x = np.arange(18, dtype=np.float32).reshape(9, 2)
    y = np.arange(9, dtype=np.float32)  # every held-out value is unseen in training, as regression allows
    result = ffnn_jax.sweep(
        x, y, grid={"seed": [0]}, folds=3, hidden_sizes=(2,), activation="tanh", epochs=1, batch_size=9
    )
    assert len(result.results) == 3


def test_a_sweep_with_fewer_members_than_devices_leaves_the_other_devices_out(digits, monkeypatch):
    x, y = digits
    runs = []
    run_chunk = ffnn_jax._sweep._run_chunk

    def recorded(chunk, members, keys, datasets, stacked, mesh=None, *checkpointing):
        runs.append((len(chunk), None if mesh is None else mesh.size))
        return run_chunk(chunk, members, keys, datasets, stacked, mesh, *checkpointing)

    monkeypatch.setattr(ffnn_jax._sweep, "_run_chunk", recorded)
    assert len(jax.devices()) == 2  # the suite's forced CPU devices
    result = ffnn_jax.sweep(x, y, grid={"learning_rate": [1e-2]}, devices="all", **BASE)
    assert runs == [(1, 1)] and len(result.results) == 1  # one member on one device, not padded to two
    runs.clear()
    ffnn_jax.sweep(x, y, grid={"learning_rate": [1e-3, 1e-2, 1e-1]}, devices="all", **BASE)
    assert runs == [(4, 2)]  # three members on two devices: padded to four


def test_members_of_one_data_order_draw_the_dropout_masks_their_standalone_runs_draw(digits):
    x, y = digits
    settings = dict(BASE, optimizer="adam", dropout=0.3, validation_fraction=0.2)
    result = ffnn_jax.sweep(x, y, grid={"learning_rate": [1e-3, 1e-2]}, **settings)
    for value, member in zip([1e-3, 1e-2], result.results):
        _agrees_with_standalone(member, ffnn_jax.train(x, y, **{**settings, "learning_rate": value}))
    without = ffnn_jax.train(x, y, **{**settings, "learning_rate": 1e-2, "dropout": 0.0})
    assert abs(result.results[1].history["train_loss"][-1] - without.history["train_loss"][-1]) > 1e-3  # masks drawn


def test_a_sweep_keeps_a_dataframes_columns_and_refuses_them_reordered_as_train_does():
    pd = pytest.importorskip("pandas")
    x, y = ffnn_jax.load_digits()
    frame = pd.DataFrame(np.asarray(x)[:300, :6], columns=[f"f{i}" for i in range(6)])
    labels = np.asarray(y)[:300]
    kw = dict(grid={"learning_rate": [1e-2, 3e-2]}, hidden_sizes=(4,), epochs=2)
    result = ffnn_jax.sweep(frame, labels, validation_fraction=0.2, **kw)
    assert all(member.feature_names == tuple(frame.columns) for member in result.results)
    reordered = frame[frame.columns[::-1]]
    with pytest.raises(ValueError, match="`x` has the training columns in another order"):
        result.best.predict(reordered)
    with pytest.raises(ValueError, match=r"`validation_data\[0\]` has the training columns in another order"):
        ffnn_jax.sweep(frame, labels, validation_data=(reordered, labels), **kw)
    ensemble = ffnn_jax.train(frame, labels, ensemble=2, epochs=2, hidden_sizes=(4,))
    with pytest.raises(ValueError, match="another order"):
        ensemble.predict(reordered)


@pytest.mark.parametrize("folds", [None, 2])
def test_a_sweep_on_scipy_sparse_rows_equals_the_dense_sweep(digits, folds):
    scipy_sparse = pytest.importorskip("scipy.sparse")
    x, y = digits[0][:300], digits[1][:300]
    kw = dict(grid={"learning_rate": [1e-2, 3e-2]}, hidden_sizes=(8,), epochs=2, optimizer="adam")
    kw.update(validation_fraction=0.2) if folds is None else kw.update(folds=folds)
    sparse = ffnn_jax.sweep(scipy_sparse.csr_matrix(x), y, **kw)
    dense = ffnn_jax.sweep(x, y, **kw)
    for a, b in zip(sparse.table, dense.table):
        np.testing.assert_allclose(a["best_val_loss"], b["best_val_loss"], rtol=1e-5)


def test_points_are_ranked_by_the_value_of_the_params_each_member_returns():
    from types import SimpleNamespace

    from ffnn_jax._sweep import _best_point, _summary

    def member(val_accuracy, returned_epoch):
        run = SimpleNamespace(epoch=len(val_accuracy), diverged=False, stopped=False)
        history = {"epoch": list(range(1, len(val_accuracy) + 1)), "val_accuracy": val_accuracy}
        return SimpleNamespace(run=run, history=history, best_epoch=returned_epoch)

    peaked = [0.90, 0.99, 0.50]  # the best epoch of all, but it ends worse
    steady = [0.80, 0.85, 0.86]
    table = [_summary(member(peaked, 3), "val_accuracy"), _summary(member(steady, 3), "val_accuracy")]
    assert table[0]["best_val_accuracy"] == 0.99 and table[0]["returned_val_accuracy"] == 0.50
    assert _best_point(table, "val_accuracy") == 1  # last-epoch params: the steady member's are better
    restored = [_summary(member(peaked, 2), "val_accuracy"), _summary(member(steady, 3), "val_accuracy")]
    assert _best_point(restored, "val_accuracy") == 0  # early_stopping + restore_best hands out epoch 2's
