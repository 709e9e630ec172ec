"""Run code on a module now, or when it is imported (wrapt's post-import hook), never importing it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from types import ModuleType

import wrapt


def on_import(module_names: Iterable[str], install: Callable[[ModuleType], None], hooked: set[str]) -> None:
    """``install(module)`` for each named module: at once when it is imported already, else by
    a post-import hook registered once per name (``hooked`` remembers which)."""
    for module_name in module_names:
        module = sys.modules.get(module_name)
        if module is not None:
            install(module)
        elif module_name not in hooked:
            hooked.add(module_name)
            wrapt.register_post_import_hook(install, module_name)
