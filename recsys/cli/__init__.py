"""The protocols of ``python -m recsys evaluate``: one module each (see ``recsys/__main__.py``)."""
