"""The one place an integration imports its framework: a missing optional package becomes
``MissingDependency`` naming the extra to install. Imports only ``errors``."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import MissingDependency


def need(module: str, extra: str) -> ModuleType:
    """Import ``module``, or raise ``MissingDependency`` saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(
            f"{module} is not installed: pip install 'vecstore-db[{extra}]' ({exc})"
        ) from exc
