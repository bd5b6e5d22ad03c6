"""Benchmarks of ffnn_jax against its peers (PyTorch, JAX/Flax + optax, scikit-learn); see BENCHMARKS.md."""
