"""The kernel every layer may import: atomic file writes, cross-process locks, shared constants.

It imports nothing from the project (``include``, ``recsys``, ``expectations``, ``dags``) and
nothing heavy at import time, so the DS library and DE plumbing share one copy of each rule
without importing each other (import contracts in ``pyproject.toml``).
"""
