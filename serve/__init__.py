"""Serving compiled models: the Open Inference Protocol (KServe v2) on Ray Serve.

The core (`protocol`, `batching`) is plain Python and numpy with no Ray import, so it is
tested on its own and runs on a machine without Ray. `deployment` is the Ray Serve layer
(installed with the ``serve`` extra: ``pip install -e .[serve]``).
"""
