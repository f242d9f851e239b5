"""Explanation methods: ``explain`` and ``explain_many`` (``explain.api``), the method table
(``explain.methods``) and the methods themselves, one module each.

The package imports none of them until one of its names is first used (PEP 562): a module that
needs only a record or a plain-array helper, such as ``explain.quantify``, and so the rewrite of a
report from disk (``--reports-only``), does not wait for torch.
"""

from importlib import import_module

_WHERE = {
    "explain": "api",
    "explain_many": "api",
    "CAM_FAMILY": "methods",
    "INPUT_METHODS": "methods",
    "METHODS": "methods",
    "Method": "methods",
}
__all__ = list(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
