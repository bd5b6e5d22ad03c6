"""Sweep configurations in the YAML that wandb sweeps use, turned into :func:`ffnn_jax.sweep` grid points.

```yaml
method: grid            # or random (then run_cap: how many points)
metric: {name: val_accuracy, goal: maximize}
parameters:
  learning_rate: {values: [0.001, 0.01]}
  weight_decay: {min: 0.00001, max: 0.01, distribution: log_uniform_values}   # random only
  num_layers: {values: [1, 2]}
  hidden_size: {value: 64}
```

Parameter names are the long names of ``ffnn-jax train``'s flags; ``num_layers`` × ``hidden_size``
become ``hidden_sizes``.
"""

import dataclasses
import itertools
from typing import Any, Dict, List

import numpy as np

from ._config import TrainConfig


_SETTINGS = {field.name for field in dataclasses.fields(TrainConfig)}
_NETWORK = ("num_layers", "hidden_size")
_INTEGERS = ("batch_size", "epochs", "num_layers", "hidden_size", "patience", "warmup_steps", "seed")
_GOALS = {"maximize": ("accuracy", "r2"), "minimize": ("loss",)}


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    points: List[Dict[str, Any]]  # train() settings per grid point
    monitor: str  # the metric's history name
    method: str


def _error(key: str, message: str) -> ValueError:
    return ValueError(f"sweep config `{key}`: {message}")


def parse_sweep_config(text: str, *, seed: int = 0, num_layers: int = 1, hidden_size: int = 256) -> SweepConfig:
    """Parses the YAML ``text`` (see the module docstring); errors name the offending key.
    ``num_layers``/``hidden_size``: the network of points that set only one of the two."""
    import yaml

    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"sweep config is not valid YAML: {error}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"sweep config must be a mapping with `method`, `metric` and `parameters`, got {spec!r}")
    unknown = sorted(set(spec) - {"method", "metric", "parameters", "run_cap", "name", "program", "command"})
    if unknown:
        raise _error(unknown[0], "unknown key; expected method, metric, parameters, run_cap")
    method = spec.get("method", "grid")
    if method not in ("grid", "random"):
        raise _error("method", f"must be grid or random, got {method!r}")
    monitor = _monitor(spec.get("metric", {"name": "val_loss", "goal": "minimize"}))
    parameters = spec.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise _error("parameters", "must map parameter names to {values: [...]}, {value: x} or {min:, max:}")
    for name, rule in parameters.items():
        if name not in _SETTINGS and name not in _NETWORK or name == "hidden_sizes":
            allowed = sorted((_SETTINGS - {"hidden_sizes"}) | set(_NETWORK))
            raise _error(f"parameters.{name}", f"unknown parameter; use the train flags' long names: {allowed}")
        if not isinstance(rule, dict) or not ({"values", "value"} & set(rule) or {"min", "max"} <= set(rule)):
            raise _error(
                f"parameters.{name}", f"must be {{values: [...]}}, {{value: x}} or {{min: a, max: b}}, got {rule!r}"
            )
    if method == "grid":
        points = _grid(parameters)
    else:
        cap = spec.get("run_cap")
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            raise _error("run_cap", f"random search needs a positive integer run_cap, got {cap!r}")
        rng = np.random.default_rng(seed)
        points = [{name: _draw(name, rule, rng) for name, rule in parameters.items()} for _ in range(cap)]
    return SweepConfig([_as_settings(point, num_layers, hidden_size) for point in points], monitor, method)


def _monitor(metric) -> str:
    if not isinstance(metric, dict) or "name" not in metric:
        raise _error("metric", f"must be {{name: val_accuracy, goal: maximize}}, got {metric!r}")
    name, goal = metric["name"], metric.get("goal", "minimize")
    names = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_r2")
    if name not in names:
        raise _error("metric.name", f"must be one of {list(names)}, got {name!r}")
    if goal not in _GOALS:
        raise _error("metric.goal", f"must be maximize or minimize, got {goal!r}")
    if not name.endswith(_GOALS[goal]):
        raise _error(
            "metric.goal",
            f"{name} is ranked the other way: use goal {'minimize' if goal == 'maximize' else 'maximize'}",
        )
    return name


def _grid(parameters) -> List[dict]:
    axes = {}
    for name, rule in parameters.items():
        if "value" in rule:
            axes[name] = [rule["value"]]
        elif "values" in rule and isinstance(rule["values"], list) and rule["values"]:
            axes[name] = rule["values"]
        else:
            raise _error(
                f"parameters.{name}", "grid search needs a non-empty values list (min/max need method: random)"
            )
    return [dict(zip(axes, combination)) for combination in itertools.product(*axes.values())]


def _draw(name: str, rule: dict, rng):
    if "value" in rule:
        return rule["value"]
    if "values" in rule:
        return rule["values"][int(rng.integers(len(rule["values"])))]
    low, high = rule["min"], rule["max"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or not low < high:
        raise _error(f"parameters.{name}", f"min and max must be numbers with min < max, got {low!r}, {high!r}")
    distribution = rule.get("distribution", "int_uniform" if name in _INTEGERS else "uniform")
    if distribution == "int_uniform":
        return int(rng.integers(int(low), int(high) + 1))
    if distribution == "uniform":
        return float(rng.uniform(low, high))
    if distribution == "log_uniform_values":
        if low <= 0:
            raise _error(f"parameters.{name}", "log_uniform_values needs min > 0")
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))
    raise _error(
        f"parameters.{name}.distribution", f"must be uniform, int_uniform or log_uniform_values, got {distribution!r}"
    )


def _as_settings(point: dict, num_layers: int, hidden_size: int) -> dict:
    """A point of flag names -> train() settings (num_layers × hidden_size -> hidden_sizes)."""
    settings = {name: value for name, value in point.items() if name not in _NETWORK}
    if any(name in point for name in _NETWORK):
        settings["hidden_sizes"] = (int(point.get("hidden_size", hidden_size)),) * int(
            point.get("num_layers", num_layers)
        )
    return settings
