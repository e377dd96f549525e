"""Task bodies the DAGs call: the glue between DE plumbing, the gates and the DS library.

The only layer that may import ``include`` plumbing, ``expectations`` and ``recsys`` together;
``dags/`` import these inside their task functions.
"""
