"""Checkpoints and resume: the whole run saved, an interrupted run resumed bit for bit, bad files handled."""

import os
import signal

import jax
import numpy as np
import pytest
from helpers import assert_all_finite, assert_trees_all_equal

import ffnn_jax
from ffnn_jax import _run_checkpoint
from ffnn_jax._run_checkpoint import checkpoint_files, decode, host_leaves


def _data(n=240, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, :k] @ rng.normal(size=(k,)) > 0).astype(np.int32) + (x[:, 0] > 1).astype(np.int32)
    return x, y


def _same_run(a, b):
    """Params, optimizer state, step, key, counters, best params and epoch, and history (less wall times)."""
    assert jax.tree_util.tree_structure(a.run) == jax.tree_util.tree_structure(b.run)
    for name, leaf_a, leaf_b in zip(*host_leaves(a.run), host_leaves(b.run)[1]):
        np.testing.assert_array_equal(leaf_a, leaf_b, err_msg=name)
    assert_trees_all_equal(a.params, b.params)
    assert a.best_epoch == b.best_epoch and a.stopped_early == b.stopped_early
    assert {k: v for k, v in a.history.items() if k != "time_s"} == {
        k: v for k, v in b.history.items() if k != "time_s"
    }


class _InterruptAt:
    """A callback that raises KeyboardInterrupt (a user's Ctrl-C) after epoch ``at``; records epochs seen."""

    def __init__(self, at=None):
        self.at, self.seen = at, []

    def __call__(self, epoch, row):
        self.seen.append(epoch)
        if epoch == self.at:
            raise KeyboardInterrupt


CASES = {
    "sgd": dict(optimizer="sgd", learning_rate=0.05),
    "momentum-sample-weights": dict(optimizer="momentum", learning_rate=0.02, sample_weight=True),
    "adam-validation-early-stopping": dict(
        optimizer="adam", learning_rate=0.01, validation_fraction=0.25, early_stopping=True, patience=2
    ),
    "rmsprop-lr-plateau": dict(optimizer="rmsprop", learning_rate=0.01, reduce_lr_factor=0.5, reduce_lr_patience=1),
    "adam-cosine-schedule": dict(optimizer="adam", learning_rate=0.01, lr_schedule="cosine", warmup_steps=5),
    "adam-larger-network": dict(optimizer="adam", learning_rate=0.005, hidden_sizes=(200, 100)),  # per-leaf path
    "adam-dropout": dict(optimizer="adam", learning_rate=0.01, dropout=0.3),  # the masks' key is in the run
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
@pytest.mark.parametrize("at", [1, 4])
def test_a_run_interrupted_at_a_checkpoint_resumes_bit_for_bit(tmp_path, case, at):
    x, y = _data()
    settings = {"hidden_sizes": (16,), "epochs": 7, "batch_size": 32, **case}
    if settings.pop("sample_weight", False):
        settings["sample_weight"] = np.linspace(0.1, 2.0, len(x)).astype(np.float32)
    uninterrupted = ffnn_jax.train(x, y, callbacks=[_InterruptAt()], **settings)
    if at >= len(uninterrupted.history["epoch"]):
        pytest.skip("early stopping ended the run before the interruption")
    with pytest.raises(KeyboardInterrupt):
        ffnn_jax.train(x, y, callbacks=[_InterruptAt(at)], checkpoint_dir=str(tmp_path), **settings)
    assert decode(checkpoint_files(str(tmp_path))[0][1]).epoch == at  # on disk before the call ended
    resumed_callback = _InterruptAt()
    resumed = ffnn_jax.train(x, y, callbacks=[resumed_callback], checkpoint_dir=str(tmp_path), resume=True, **settings)
    _same_run(resumed, uninterrupted)
    assert resumed_callback.seen == list(range(at + 1, len(uninterrupted.history["epoch"]) + 1))


def test_chunks_of_several_epochs_resume_bit_for_bit(tmp_path):
    x, y = _data()
    settings = dict(hidden_sizes=(16,), optimizer="adam", learning_rate=0.01, epochs=9, batch_size=64)
    uninterrupted = ffnn_jax.train(x, y, **settings)  # all 9 epochs in one dispatch
    first = ffnn_jax.train(x, y, checkpoint_dir=str(tmp_path), checkpoint_every=3, **{**settings, "epochs": 5})
    assert [epoch for epoch, _ in checkpoint_files(str(tmp_path))] == [5, 3]  # every 3 epochs, and the end
    assert first.history["epoch"] == [1, 2, 3, 4, 5]
    resumed = ffnn_jax.train(x, y, checkpoint_dir=str(tmp_path), checkpoint_every=3, resume=True, **settings)
    _same_run(resumed, uninterrupted)


def test_sigterm_saves_a_checkpoint_and_ends_the_call_with_how_to_resume(tmp_path):
    x, y = _data()
    settings = dict(hidden_sizes=(16,), optimizer="adam", learning_rate=0.01, epochs=6)
    uninterrupted = ffnn_jax.train(x, y, **settings)

    def terminate_at_2(epoch, row):
        if epoch == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # what a scheduler sends

    with pytest.raises(ffnn_jax.TrainingInterrupted, match="SIGTERM after epoch 2 of 6.*resume=True") as caught:
        ffnn_jax.train(x, y, callbacks=[terminate_at_2], checkpoint_dir=str(tmp_path), **settings)
    assert caught.value.epoch == 2 and os.path.isfile(caught.value.checkpoint)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back
    resumed = ffnn_jax.train(x, y, checkpoint_dir=str(tmp_path), resume=True, **settings)
    _same_run(resumed, uninterrupted)


def test_resume_without_a_checkpoint_starts_fresh_and_a_finished_run_returns_at_once(tmp_path):
    x, y = _data()
    settings = dict(hidden_sizes=(8,), epochs=3)
    fresh = ffnn_jax.train(x, y, checkpoint_dir=str(tmp_path), resume=True, **settings)
    assert fresh.history["epoch"] == [1, 2, 3]
    again = ffnn_jax.train(x, y, checkpoint_dir=str(tmp_path), resume=True, callbacks=[_InterruptAt(1)], **settings)
    _same_run(again, fresh)  # nothing left to run: no callback, the saved run


def test_resume_with_fewer_epochs_than_the_checkpoint_has_run_is_refused_naming_the_total(tmp_path):
    x, y = _data()
    ffnn_jax.train(x, y, hidden_sizes=(8,), epochs=3, checkpoint_dir=str(tmp_path))
    saved = sorted(os.listdir(tmp_path))
    with pytest.raises(ValueError, match=r"`epochs`=2: it has already run 3 epochs; `epochs` is the total"):
        ffnn_jax.train(x, y, hidden_sizes=(8,), epochs=2, checkpoint_dir=str(tmp_path), resume=True)
    assert sorted(os.listdir(tmp_path)) == saved


def test_a_new_run_refuses_a_folder_holding_a_runs_checkpoints_and_leaves_them_as_they_were(tmp_path):
    x, y = _data()
    ffnn_jax.train(x, y, hidden_sizes=(8,), epochs=3, checkpoint_dir=str(tmp_path), keep_checkpoints=5)
    saved = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    with pytest.raises(ValueError, match=r"holds the checkpoints of a run \(the newest at epoch 3\): pass resume=True"):
        ffnn_jax.train(x, y, hidden_sizes=(8,), epochs=1, checkpoint_dir=str(tmp_path))
    assert {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)} == saved


@pytest.mark.parametrize(
    "change, named",
    [
        (dict(batch_size=16), "`batch_size` = 32.*has 16"),
        (dict(optimizer="sgd"), "`optimizer` = 'adam'.*has 'sgd'"),
        (dict(hidden_sizes=(9,)), "`hidden_sizes`"),
        (dict(loss="squared_error"), "`loss`"),
    ],
    ids=["batch_size", "optimizer", "shape", "loss"],
)
def test_resuming_with_other_settings_names_the_setting_and_both_values(tmp_path, change, named):
    x, y = _data()
    settings = dict(hidden_sizes=(8,), optimizer="adam", epochs=2, batch_size=32)
    ffnn_jax.train(x, y, checkpoint_dir=str(tmp_path), **settings)
    with pytest.raises(ValueError, match=named):
        ffnn_jax.train(x, y, checkpoint_dir=str(tmp_path), resume=True, **{**settings, **change})
    ffnn_jax.train(x, y, checkpoint_dir=str(tmp_path), resume=True, **{**settings, "epochs": 3})  # epochs may change


def test_resuming_on_other_data_is_refused(tmp_path):
    x, y = _data()
    ffnn_jax.train(x, y, hidden_sizes=(8,), epochs=2, checkpoint_dir=str(tmp_path))
    with pytest.raises(ValueError, match="training data"):
        ffnn_jax.train(x[:200], y[:200], hidden_sizes=(8,), epochs=2, checkpoint_dir=str(tmp_path), resume=True)
    with pytest.raises(ValueError, match="training data"):
        ffnn_jax.train(x + 1, y, hidden_sizes=(8,), epochs=2, checkpoint_dir=str(tmp_path), resume=True)


@pytest.mark.parametrize("damage", ["truncate", "flip_a_byte", "empty"])
def test_a_damaged_newest_checkpoint_warns_and_the_previous_one_is_used(tmp_path, damage):
    x, y = _data()
    settings = dict(hidden_sizes=(16,), optimizer="adam", learning_rate=0.01, epochs=6)
    uninterrupted = ffnn_jax.train(x, y, **settings)
    ffnn_jax.train(x, y, checkpoint_dir=str(tmp_path), **{**settings, "epochs": 3})
    newest = checkpoint_files(str(tmp_path))[0][1]
    data = bytearray(open(newest, "rb").read())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip_a_byte":
        data[len(data) // 3] ^= 0xFF
    else:
        data = b""
    open(newest, "wb").write(bytes(data))
    with pytest.warns(RuntimeWarning, match="skipping checkpoint"):
        resumed = ffnn_jax.train(x, y, checkpoint_dir=str(tmp_path), resume=True, **settings)
    _same_run(resumed, uninterrupted)


def test_no_valid_checkpoint_at_all_is_a_clear_error(tmp_path):
    x, y = _data()
    ffnn_jax.train(x, y, hidden_sizes=(8,), epochs=2, checkpoint_dir=str(tmp_path))
    for _, path in checkpoint_files(str(tmp_path)):
        open(path, "wb").write(b"not a checkpoint")
    with pytest.warns(RuntimeWarning), pytest.raises(ValueError, match="no valid checkpoint"):
        ffnn_jax.train(x, y, hidden_sizes=(8,), epochs=2, checkpoint_dir=str(tmp_path), resume=True)


def test_only_the_newest_checkpoints_are_kept_and_no_temporary_file_remains(tmp_path):
    x, y = _data()
    ffnn_jax.train(x, y, hidden_sizes=(8,), epochs=5, checkpoint_dir=str(tmp_path), keep_checkpoints=3)
    assert sorted(os.listdir(tmp_path)) == ["ckpt-00000003.npz", "ckpt-00000004.npz", "ckpt-00000005.npz"]


def test_the_checkpoint_file_is_plain_arrays_with_versioned_metadata(tmp_path):
    x, y = _data()
    ffnn_jax.train(x, y, hidden_sizes=(8,), epochs=2, checkpoint_dir=str(tmp_path), standardize=True)
    path = checkpoint_files(str(tmp_path))[0][1]
    with np.load(path, allow_pickle=False) as members:
        assert all(members[name].dtype != object for name in members.files)
    meta = decode(path).meta
    assert (meta["format"], meta["version"], meta["epoch"]) == ("ffnn_jax.run", 1, 2)
    assert meta["about"]["versions"] == {"ffnn_jax": ffnn_jax.__version__, "jax": jax.__version__}
    assert len(meta["about"]["model"]["standardizer"]["mean"]) == x.shape[1]
    assert meta["history"]["epoch"] == [1, 2]


def test_an_unwritable_checkpoint_dir_is_an_os_error_naming_it_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ffnn_jax.CheckpointError, match="a_file"):
        ffnn_jax.train(*_data(), hidden_sizes=(8,), epochs=2, checkpoint_dir=str(blocker / "sub"))


def test_a_full_disk_mid_run_is_an_os_error_that_carries_the_run(tmp_path, monkeypatch):
    real_write, calls = _run_checkpoint.atomic_write_bytes, []

    def full_disk_on_the_third(path, data, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device", path)
        real_write(path, data, **kwargs)

    monkeypatch.setattr(_run_checkpoint, "atomic_write_bytes", full_disk_on_the_third)
    with pytest.raises(ffnn_jax.CheckpointError, match="No space left on device") as caught:
        ffnn_jax.train(*_data(), hidden_sizes=(8,), epochs=6, checkpoint_dir=str(tmp_path))
    assert isinstance(caught.value, OSError) and "ckpt-00000003.npz" in caught.value.path
    assert len(caught.value.history["epoch"]) >= 3 and int(caught.value.run.epoch) >= 3
    assert_all_finite(caught.value.params)
    assert [epoch for epoch, _ in checkpoint_files(str(tmp_path))] == [2, 1]  # the good ones stay


def test_checkpoint_arguments_are_checked_before_anything_runs(tmp_path):
    x, y = _data()
    with pytest.raises(ValueError, match="`checkpoint_every` must be a positive integer, got 0"):
        ffnn_jax.train(x, y, checkpoint_dir=str(tmp_path), checkpoint_every=0)
    with pytest.raises(ValueError, match="`resume`=True needs `checkpoint_dir`"):
        ffnn_jax.train(x, y, resume=True)
    assert not os.listdir(tmp_path)


def test_load_model_predicts_like_the_trained_result_with_its_standardizer(tmp_path):
    x, y = _data()
    x = x * 50 + 7  # scaling matters
    result = ffnn_jax.train(x, y, hidden_sizes=(16,), epochs=4, standardize=True, checkpoint_dir=str(tmp_path))
    for path in (str(tmp_path), checkpoint_files(str(tmp_path))[0][1]):
        model = ffnn_jax.load_model(path)
        np.testing.assert_array_equal(model.predict(x), result.predict(x))
        np.testing.assert_allclose(model.predict_proba(x), result.predict_proba(x), rtol=1e-6)
        assert model.evaluate(x, y) == result.evaluate(x, y)


def test_load_model_of_an_early_stopped_run_uses_the_best_epoch(tmp_path):
    x, y = _data()
    settings = dict(hidden_sizes=(16,), optimizer="adam", learning_rate=0.05, epochs=30, validation_fraction=0.3)
    result = ffnn_jax.train(x, y, early_stopping=True, patience=1, checkpoint_dir=str(tmp_path), **settings)
    assert result.best_epoch < len(result.history["epoch"])  # the best is not the last
    assert_trees_all_equal(ffnn_jax.load_model(str(tmp_path)).params, result.params)


def test_load_model_explains_what_it_cannot_open(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ffnn_jax.load_model(str(tmp_path / "missing.npz"))
    with pytest.raises(FileNotFoundError, match="no params.npz and no checkpoint"):
        ffnn_jax.load_model(str(tmp_path))
    ffnn_jax.save_params(str(tmp_path / "bare.npz"), ffnn_jax.init_params(jax.random.key(0), [2, 3]))
    with pytest.raises(ValueError, match="does not say how to predict"):
        ffnn_jax.load_model(str(tmp_path / "bare.npz"))


def test_a_diverged_checkpointed_run_keeps_its_last_finite_params_and_says_so_again_on_resume(tmp_path):
    x, _ = _data()
    y = x.sum(axis=1) * 1e3
    settings = dict(hidden_sizes=(8,), activation="identity", optimizer="sgd", learning_rate=1e3, epochs=20)
    with pytest.raises(ffnn_jax.TrainingDivergedError) as first:
        ffnn_jax.train(x, y, checkpoint_dir=str(tmp_path), **settings)
    assert_all_finite(first.value.params)
    saved = decode(checkpoint_files(str(tmp_path))[0][1])
    assert saved.epoch == first.value.epoch - 1  # the epochs that completed
    with pytest.raises(ffnn_jax.TrainingDivergedError) as again:
        ffnn_jax.train(x, y, checkpoint_dir=str(tmp_path), resume=True, **settings)
    assert (again.value.epoch, again.value.step) == (first.value.epoch, first.value.step)
    assert_trees_all_equal(again.value.params, first.value.params)


def test_load_model_of_a_standardized_params_file_applies_the_scaling_without_a_warning(tmp_path):
    import warnings

    x, y = _data()
    result = ffnn_jax.train(x * 20 + 3, y, hidden_sizes=(8,), epochs=2, standardize=True)
    result.save(str(tmp_path / "params.npz"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = ffnn_jax.load_model(str(tmp_path / "params.npz"))
    np.testing.assert_array_equal(model.predict(x * 20 + 3), result.predict(x * 20 + 3))
    with pytest.warns(UserWarning, match="standardized inputs"):
        ffnn_jax.load_params(str(tmp_path / "params.npz"))


def test_a_checkpoint_from_before_a_setting_existed_resumes_when_the_setting_is_its_default(tmp_path):
    x, y = _data()
    settings = dict(hidden_sizes=(8,), optimizer="adam", epochs=2, batch_size=32)
    ffnn_jax.train(x, y, checkpoint_dir=str(tmp_path), **settings)
    path = checkpoint_files(str(tmp_path))[-1][1]
    saved = decode(path)
    del saved.meta["about"]["settings"]["output_bias"]  # as written by an ffnn_jax without it
    names = [name for name, _, _ in saved.meta["leaves"]]
    with open(path, "wb") as file:
        file.write(_run_checkpoint.encode(names, saved.arrays, epoch=saved.epoch, history=saved.meta["history"],
                                          about=saved.meta["about"]))  # fmt: skip
    result = ffnn_jax.train(x, y, checkpoint_dir=str(tmp_path), resume=True, **{**settings, "epochs": 3})
    assert result.history["epoch"] == [1, 2, 3]
    with pytest.raises(ValueError, match="`output_bias` = 'auto'.*has 'zeros'"):
        ffnn_jax.train(x, y, checkpoint_dir=str(tmp_path), resume=True, output_bias="zeros", **settings)


def test_ctrl_c_without_a_checkpoint_dir_ends_the_call_with_the_epochs_done_as_a_result():
    x, y = _data()
    settings = dict(hidden_sizes=(16,), optimizer="adam", learning_rate=0.01, epochs=6)
    first_two = ffnn_jax.train(x, y, **{**settings, "epochs": 2})

    def interrupt_at_2(epoch, row):
        if epoch == 2:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C

    with pytest.raises(ffnn_jax.TrainingInterrupted, match="SIGINT after epoch 2 of 6.*`.result`") as caught:
        ffnn_jax.train(x, y, callbacks=[interrupt_at_2], **settings)
    interrupted = caught.value
    assert interrupted.epoch == 2 and interrupted.checkpoint is None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    result = interrupted.result
    assert result.history["epoch"] == [1, 2]
    np.testing.assert_array_equal(result.history["train_loss"], first_two.history["train_loss"])
    np.testing.assert_array_equal(result.predict(x), first_two.predict(x))
    np.testing.assert_array_equal(np.asarray(interrupted.params[0].W), np.asarray(first_two.params[0].W))


def test_an_estimator_interrupted_by_ctrl_c_keeps_the_epochs_done_as_scikit_learn_does():
    from ffnn_jax import _estimator
    from ffnn_jax.estimators import MLPClassifier

    x, y = _data()

    def interrupting_train(*args, callbacks=(), **kwargs):
        def interrupt_at_3(epoch, row):
            if epoch == 3:
                os.kill(os.getpid(), signal.SIGINT)

        return ffnn_jax.train(*args, callbacks=[*callbacks, interrupt_at_3], **kwargs)

    token = _estimator.TRAINER.set(interrupting_train)
    try:
        with pytest.warns(UserWarning, match="Training interrupted by user"):
            model = MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0).fit(x, y)
    finally:
        _estimator.TRAINER.reset(token)
    assert model.n_iter_ == 3 and len(model.loss_curve_) == 3 and model.predict(x).shape == (len(x),)
