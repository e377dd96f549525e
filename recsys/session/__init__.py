"""Session-based recommendation for anonymous visitors (issue 19).

Modules: :mod:`.data` (session arrays, splits, prefix/target cases), :mod:`.models`
(popularity, cosine co-occurrence, the served session model), :mod:`.protocol`
(session-last-item evaluation), :mod:`.tuning` (validation split and grid search),
:mod:`.publish` (the files the API reads) and :mod:`.training` (the training DAG's entry).
"""
