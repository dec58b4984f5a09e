"""scratchlm: pretrain language models from scratch, fine-tune them per task, and trust the numbers.

`import scratchlm` is enough for `AutoModel*.from_pretrained` (and `pipeline`) to load our
checkpoints: the model family registers itself with transformers' Auto classes right after their
module is imported (at once, if it already is). Importing scratchlm alone imports neither torch nor
transformers, so the CLI starts fast.
"""

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

# the Auto model classes' module: it imports AutoConfig's first, so once it has run both are whole
_AUTO = "transformers.models.auto.modeling_auto"


def _register() -> None:
    # importing scratchlm.models registers the family; by name, as the CLI imports a stage: it runs
    # when transformers' Auto classes load, so no stage's code depends on it through this file
    importlib.import_module(f"{__name__}.models")


class _RegisterWithAuto(importlib.abc.MetaPathFinder):
    """Runs _register right after transformers' Auto module is imported, whoever imports it."""

    def find_spec(self, name, path, target=None):
        if name != _AUTO:
            return None
        sys.meta_path.remove(self)  # the real finders locate the module; this one fires once
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            _register()

        spec.loader.exec_module = exec_module
        return spec


if _AUTO in sys.modules:
    _register()
elif not any(isinstance(f, _RegisterWithAuto) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWithAuto())
