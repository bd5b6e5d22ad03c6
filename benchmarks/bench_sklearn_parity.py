"""scikit-learn parity: ffnn_jax's MLPClassifier/MLPRegressor against scikit-learn's own.

Each case fits both implementations with the same hyperparameters on standardized inputs (and
standardized targets for regression) and a fixed, stratified 75/25 split, then reports the test
accuracy or R² of each, their difference in points (target <= 1.5), and the fit-time ratio
(scikit-learn's time / ours). Runs are interleaved (scikit-learn, then ours, per seed) and the
table shows medians over ``--runs`` seeds. Our fits are timed after a warm-up fit that compiles;
that first fit's time is reported on its own.

    python benchmarks/bench_sklearn_parity.py [--runs 3] [--cases digits,iris] [--json out.json]
"""

import argparse
import json
import time
import warnings
from typing import Callable, NamedTuple

import numpy as np
from sklearn import datasets, neural_network
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from ffnn_jax import estimators


class Case(NamedTuple):
    name: str
    load: Callable[[], tuple]
    classification: bool
    params: dict


def _make_regression():
    return datasets.make_regression(n_samples=2000, n_features=20, n_informative=10, noise=10.0, random_state=0)


CASES = [
    Case("digits", datasets.load_digits, True, dict(solver="adam", hidden_layer_sizes=(100,), max_iter=200)),
    Case(
        "breast_cancer",
        datasets.load_breast_cancer,
        True,
        dict(solver="sgd", hidden_layer_sizes=(50,), learning_rate_init=0.01, max_iter=300),
    ),
    Case("wine", datasets.load_wine, True, dict(solver="lbfgs", hidden_layer_sizes=(50,), alpha=1e-2, max_iter=200)),
    Case(
        "iris",
        datasets.load_iris,
        True,
        dict(solver="adam", hidden_layer_sizes=(20,), learning_rate_init=0.01, max_iter=300),
    ),
    Case(
        "diabetes",
        datasets.load_diabetes,
        False,
        dict(solver="lbfgs", hidden_layer_sizes=(10,), alpha=10.0, max_iter=200),
    ),
    Case(
        "make_regression",
        _make_regression,
        False,
        dict(solver="adam", hidden_layer_sizes=(100,), learning_rate_init=0.01, max_iter=200),
    ),
]


def _split(case: Case):
    X, y = case.load(return_X_y=True) if case.load is not _make_regression else case.load()
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y if case.classification else None
    )
    scaler = StandardScaler().fit(X_tr)
    X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
    if not case.classification:
        mean, std = y_tr.mean(), y_tr.std()
        y_tr, y_te = (y_tr - mean) / std, (y_te - mean) / std
    return X_tr, X_te, y_tr, y_te


def _timed_fit(estimator, X, y):
    start = time.perf_counter()
    estimator.fit(X, y)
    return time.perf_counter() - start


def run_case(case: Case, runs: int) -> dict:
    """Medians over ``runs`` interleaved seeds of scores, fit times and iteration counts."""
    X_tr, X_te, y_tr, y_te = _split(case)
    kind = "MLPClassifier" if case.classification else "MLPRegressor"
    theirs_cls, ours_cls = getattr(neural_network, kind), getattr(estimators, kind)
    first_fit_s = _timed_fit(ours_cls(**case.params, random_state=0), X_tr, y_tr)
    rows = []
    for seed in range(runs):
        theirs, ours = theirs_cls(**case.params, random_state=seed), ours_cls(**case.params, random_state=seed)
        rows.append([_timed_fit(theirs, X_tr, y_tr), theirs.score(X_te, y_te), theirs.n_iter_])
        rows[-1] += [_timed_fit(ours, X_tr, y_tr), ours.score(X_te, y_te), ours.n_iter_]
    t_sk, score_sk, it_sk, t_ours, score_ours, it_ours = np.median(np.asarray(rows, float), axis=0)
    return dict(
        dataset=case.name, estimator=kind, solver=case.params["solver"], metric="accuracy" if case.classification else "R2",
        sklearn_score=score_sk, ours_score=score_ours, diff_points=100 * abs(score_sk - score_ours),
        sklearn_fit_s=t_sk, ours_fit_s=t_ours, ours_first_fit_s=first_fit_s, speedup=t_sk / t_ours,
        sklearn_n_iter=it_sk, ours_n_iter=it_ours, runs=runs, params={k: str(v) for k, v in case.params.items()},
    )  # fmt: skip


def markdown(results: list) -> str:
    head = "| dataset | estimator (solver) | metric | sklearn | ours | abs diff (pts) | sklearn fit s | ours fit s | ours 1st fit s | speed-up | iters sk/ours |"
    lines = [head, "|" + "---|" * 11]
    for r in results:
        lines.append(
            f"| {r['dataset']} | {r['estimator']} ({r['solver']}) | {r['metric']} | {r['sklearn_score']:.4f} | {r['ours_score']:.4f} "
            f"| {r['diff_points']:.2f} | {r['sklearn_fit_s']:.3f} | {r['ours_fit_s']:.3f} | {r['ours_first_fit_s']:.2f} "
            f"| {r['speedup']:.1f}x | {r['sklearn_n_iter']:.0f}/{r['ours_n_iter']:.0f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="interleaved seeds per case (medians are reported)")
    parser.add_argument("--cases", default=",".join(c.name for c in CASES), help="comma-separated case names")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    chosen = [c for c in CASES if c.name in args.cases.split(",")]
    warnings.simplefilter("ignore", ConvergenceWarning)
    results = []
    for case in chosen:
        results.append(run_case(case, args.runs))
        r = results[-1]
        print(
            f"{case.name}: sklearn {r['sklearn_score']:.4f} ours {r['ours_score']:.4f}, speed-up {r['speedup']:.1f}x",
            flush=True,
        )
    print(markdown(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
