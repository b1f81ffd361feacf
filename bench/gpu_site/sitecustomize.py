"""On the lent GPU machine (bench/on_gpu.sh puts this folder on PYTHONPATH): once a process
imports triton, log each of its kernel-cache lookups as a hit or a miss into
$TRITONNX_TRITON_CACHE_LOG (bench/triton_cache.py `listener`). Nothing happens without that
variable, and nothing is imported until triton is."""
import importlib.machinery
import os
import sys

_LOG = os.environ.get("TRITONNX_TRITON_CACHE_LOG")


class _AfterTritonKnobs:
    """A meta-path finder that lets `triton.knobs` load as usual, then sets its listener."""

    def find_spec(self, name, path=None, target=None):
        if name != "triton.knobs":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            try:
                sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
                import triton_cache
            except ImportError:
                return
            finally:
                sys.path.pop(0)
            module.compilation.listener = triton_cache.listener(_LOG)

        spec.loader.exec_module = exec_module
        return spec


if _LOG:
    sys.meta_path.insert(0, _AfterTritonKnobs())
