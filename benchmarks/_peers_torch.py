"""PyTorch peers: the eager loop (nn.Sequential + torch.optim) and the same loop through torch.compile.

The data sit in memory as tensors on the target device; each epoch draws a ``torch.randperm`` and
gathers batches by index (no DataLoader, the fast idiom). The loss is summed on the device and
read once per epoch. With ``dtype="bfloat16"`` the forward pass and loss run under
``torch.autocast`` (bf16 matmuls, float32 master weights and optimizer state).
"""

import contextlib
import os

import numpy as np

from benchmarks._runner import EpochRunner, Skipped


def _torch():
    try:
        import torch
    except ImportError as error:
        raise Skipped(f"PyTorch is not installed ({error}); `pip install torch`") from error
    return torch


class TorchRunner(EpochRunner):
    """PyTorch eager mode."""

    name = "torch"
    label = "PyTorch eager"
    note = "nn.Sequential + torch.optim, tensors in memory, randperm batches, torch.set_num_threads(cores)"
    compiled = False

    def setup(self):
        torch = self.torch = _torch()
        torch.set_num_threads(len(os.sched_getaffinity(0)))
        if self.device == "gpu" and not torch.cuda.is_available():
            raise Skipped(f"this PyTorch ({torch.__version__}) sees no CUDA device")
        self.dev = torch.device("cuda" if self.device == "gpu" else "cpu")
        layers = []
        for w, b in self.init:
            linear = torch.nn.Linear(*w.shape)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(w.T.copy()))  # torch stores [n_out, n_in]
                linear.bias.copy_(torch.from_numpy(b))
            layers += [linear, torch.nn.ReLU()]
        self.model = torch.nn.Sequential(*layers[:-1]).to(self.dev)
        self.initial_state = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.forward = torch.compile(self.model) if self.compiled else self.model
        self.x = torch.from_numpy(self.data.x).to(self.dev)
        self.y = torch.from_numpy(self.data.y.astype(np.int64)).to(self.dev)
        self.generator = torch.Generator(device=self.dev)
        self.optimizer = None

    def _autocast(self):
        if self.dtype != "bfloat16":
            return contextlib.nullcontext()
        return self.torch.autocast(device_type=self.dev.type, dtype=self.torch.bfloat16)

    def reset(self, seed):
        torch = self.torch
        self.generator.manual_seed(seed)
        self.model.load_state_dict(self.initial_state)
        lr = self.config.learning_rate
        if self.config.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)
        else:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)

    def epoch(self):
        torch, n, batch = self.torch, len(self.x), self.config.batch_size
        order = torch.randperm(n, device=self.dev, generator=self.generator)
        total = torch.zeros((), device=self.dev)
        for start in range(0, n, batch):
            rows = order[start : start + batch]
            with self._autocast():
                loss = torch.nn.functional.cross_entropy(self.forward(self.x[rows]), self.y[rows])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.detach().float()
        return total.item() / -(-n // batch)

    def accuracy(self, x, y):
        torch = self.torch
        with torch.no_grad(), self._autocast():
            predicted = self.model(torch.from_numpy(x).to(self.dev)).argmax(dim=1).cpu().numpy()
        return float((predicted == y).mean())

    def layers(self):
        linears = [m for m in self.model if isinstance(m, self.torch.nn.Linear)]
        return [(m.weight.detach().cpu().numpy().T.copy(), m.bias.detach().cpu().numpy().copy()) for m in linears]


class TorchCompileRunner(TorchRunner):
    """The eager loop with the model wrapped in ``torch.compile`` (default mode, inductor)."""

    name = "torch_compile"
    label = "PyTorch torch.compile"
    note = "torch.compile(model), default mode; optimizer step eager"
    compiled = True
