"""Contract: every public module, function and class of ``dmtnn`` says what it is.

Public means: a module whose name has no leading underscore, and the names in
its ``__all__`` (a module without ``__all__`` exports every non-underscore
function and class defined in it). Methods are left to review.
"""

import importlib
import inspect
import pkgutil

import pytest

import dmtnn

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(dmtnn.__path__, "dmtnn.")
    if not any(part.startswith("_") for part in m.name.split(".")[1:])
)


def _public(module):
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items()
                 if not n.startswith("_") and (inspect.isfunction(v) or inspect.isclass(v))
                 and v.__module__ == module.__name__]
    for name in names:
        obj = getattr(module, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            yield name, obj


def _documented(obj) -> bool:
    """Its own docstring: not inherited, not the signature a dataclass writes for itself."""
    doc = (obj.__doc__ or "").strip()
    return bool(doc) and not doc.startswith(f"{obj.__name__}(")


def test_modules_found():
    assert {"dmtnn.fem", "dmtnn.train", "dmtnn.models", "dmtnn.data.dataset"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_public_api_has_docstrings(name):
    module = importlib.import_module(name)
    assert (module.__doc__ or "").strip(), f"module {name} has no docstring"
    missing = [n for n, obj in _public(module) if not _documented(obj)]
    assert not missing, f"{name}: public names without a docstring: {missing}"


def test_main_fem_functions_document_themselves():
    from dmtnn import fem

    for f in (fem.elastic_moduli, fem.effective_stiffness):
        assert "Parameters" in f.__doc__ and "images" in f.__doc__
