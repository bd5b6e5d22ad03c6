"""ffnn_jax: feedforward networks trained by gradient descent on θ, with jax.grad and optax.

θ is every weight matrix W_i and bias b_i (a pytree of ``LayerParams``); ``jax.grad`` of the
pure :func:`loss` gives ∇θ with the same structure; a jitted step applies θ ← θ − η∇θ (or any
optax optimizer), and :func:`train` fuses each epoch into one compiled program.
"""

from ._backprop import backprop as backprop
from ._cache import enable_compilation_cache as enable_compilation_cache
from ._checkpoint import load_params as load_params
from ._checkpoint import save_params as save_params
from ._config import TrainConfig as TrainConfig
from ._data import Dataset as Dataset
from ._data import load_dataset as load_dataset
from ._data import load_diabetes as load_diabetes
from ._data import load_digits as load_digits
from ._data import load_mnist as load_mnist
from ._data import one_hot as one_hot
from ._data import train_test_split as train_test_split
from ._distributed import initialize_distributed as initialize_distributed
from ._download import CLASS_NAMES as CLASS_NAMES
from ._ensemble import EnsembleResult as EnsembleResult
from ._gradcheck import GradientReport as GradientReport
from ._gradcheck import check_gradients as check_gradients
from ._inference import TrainedModel as TrainedModel
from ._inference import evaluate as evaluate
from ._inference import predict as predict
from ._inference import predict_proba as predict_proba
from ._losses import loss as loss
from ._model import forward as forward
from ._optim import make_optimizer as make_optimizer
from ._parallel import use_cpu_cores as use_cpu_cores
from ._params import count_params as count_params
from ._params import init_params as init_params
from ._params import ravel as ravel
from ._run_checkpoint import CheckpointError as CheckpointError
from ._saved_model import load_model as load_model
from ._step import TrainState as TrainState
from ._step import init_train_state as init_train_state
from ._step import make_train_step as make_train_step
from ._sweep import SweepResult as SweepResult
from ._sweep import sweep as sweep
from ._sweep_checkpoint import SweepInterrupted as SweepInterrupted
from ._train import TrainingDivergedError as TrainingDivergedError
from ._train import TrainingInterrupted as TrainingInterrupted
from ._train import TrainResult as TrainResult
from ._train import train as train
from ._types import LayerParams as LayerParams
from ._version import __version__ as __version__


def __getattr__(name: str):
    # The scikit-learn estimators (and SweepSearchCV) load on first use, so scikit-learn stays an
    # optional dependency.
    if name in ("MLPClassifier", "MLPRegressor"):
        from . import estimators

        return getattr(estimators, name)
    if name == "SweepSearchCV":
        from ._sweep_search import SweepSearchCV

        return SweepSearchCV
    raise AttributeError(f"module 'ffnn_jax' has no attribute {name!r}")
