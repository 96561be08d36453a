"""Names in ``[filter] chain`` -> filter factories.

A chain entry is either a built-in name (``headers``) or a custom filter
spelled ``package.module:factory`` (importable by the service's Python). A
factory is called once at startup with the ``[filter]`` settings and returns a
filter (see ``postline.filter.api``); a class whose ``__init__`` takes the
settings is a factory.

``resolve`` raises ``ValueError`` with a message fit for a config error;
``check_chain`` and ``build_filters`` turn it into a ``ConfigError`` naming
``filter.chain``, so an unknown name stops the filter service at start (and
``postline config check``) with one line. Only the filter service and the
configuration check import filter modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

from postline.filter.api import Filter, FilterFactory
from postline.settings import ConfigError

if TYPE_CHECKING:
    from postline.filter.settings import FilterSettings

BUILTINS: dict[str, str] = {
    "headers": "postline.filter.headers:HeadersFilter",
}


def resolve(name: str) -> FilterFactory:
    """The factory a chain entry names; ``ValueError`` if there is none."""
    target = BUILTINS.get(name, name)
    module_name, colon, attribute = target.partition(":")
    if not colon or not module_name or not attribute:
        known = ", ".join(sorted(BUILTINS))
        raise ValueError(
            f"unknown filter {name!r}; built-in filters: {known}; "
            "a custom filter is spelled 'package.module:factory'"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # ImportError, or the module itself failing to load
        raise ValueError(
            f"filter {name!r}: cannot import {module_name}: {type(error).__name__}: {error}"
        ) from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ValueError(f"filter {name!r}: {module_name} has no callable {attribute!r}")
    return cast(FilterFactory, factory)


def check_chain(settings: FilterSettings) -> list[FilterFactory]:
    """The factories of ``[filter] chain``, in order; ``ConfigError`` naming a bad entry."""
    try:
        return [resolve(entry) for entry in settings.chain]
    except ValueError as error:
        raise ConfigError(f"invalid configuration: filter.chain: {error}") from None


def build_filters(settings: FilterSettings) -> list[Filter]:
    """Instantiate the configured chain, in order; ``ConfigError`` for a bad entry."""
    filters = []
    for entry, factory in zip(settings.chain, check_chain(settings), strict=True):
        try:
            made = factory(settings)
        except ValueError as error:
            raise ConfigError(f"invalid configuration: filter {entry!r}: {error}") from None
        if not isinstance(getattr(made, "name", None), str) or not callable(
            getattr(made, "apply", None)
        ):
            raise ConfigError(f"filter {entry!r} did not return an object with name and apply()")
        filters.append(made)
    return filters
