"""Names in ``[filter] chain`` -> filter factories, and the checks made at start.

A chain entry is, in this order of lookup:

1. a built-in name (``headers``, ``rules``, ``attachments``, ``size``,
   ``disclaimer``, ``sender``, ``clamav``, ``rspamd``, ``dkim``);
2. a name another installed package registers in the ``postline.filters``
   entry-point group (``[project.entry-points."postline.filters"]
   myfilter = "mypackage.filters:MyFilter"``);
3. ``package.module:factory`` (importable by the service's Python).

A factory is called once at startup with the ``[filter]`` settings and returns a
filter (see ``postline.filter.api``); a class whose ``__init__`` takes the
settings is a factory. A factory that raises ``ValueError`` (a bad
``[filter.<name>]`` setting: a key file that does not parse, a regular
expression RE2 refuses) stops the service naming the filter.

Order: ``dkim`` signs what the filters before it made; a filter after it that
declares ``rewrites_message`` (the body, or existing fields) would break the
signature, so it is a configuration error naming that filter
(``check_order``; made on factories by ``check_chain`` and on the built
filters, whose declaration may depend on their settings, by ``build_filters``).

``resolve`` raises ``ValueError`` with a message fit for a config error;
``check_chain`` and ``build_filters`` turn it into a ``ConfigError`` naming
``filter.chain``, so an unknown name stops the filter service at start (and
``postline config check``) with one line. Only the filter service and the
configuration check import filter modules.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, cast

from postline.filter.api import Filter, FilterFactory, rewrites_message
from postline.settings import ConfigError

if TYPE_CHECKING:
    from postline.filter.settings import FilterSettings

ENTRY_POINT_GROUP = "postline.filters"
SIGNER = "dkim"
BUILTINS: dict[str, str] = {
    "headers": "postline.filter.headers:HeadersFilter",
    "rules": "postline.filter.rules:RulesFilter",
    "attachments": "postline.filter.attachments:AttachmentsFilter",
    "size": "postline.filter.size:SizeFilter",
    "disclaimer": "postline.filter.disclaimer:DisclaimerFilter",
    "sender": "postline.filter.sender:SenderFilter",
    "clamav": "postline.filter.clamav:ClamavFilter",
    "rspamd": "postline.filter.rspamd:RspamdFilter",
    "dkim": "postline.filter.dkim:DkimFilter",
}


def resolve(name: str) -> FilterFactory:
    """The factory a chain entry names; ``ValueError`` if there is none."""
    target = BUILTINS.get(name) or _entry_point(name) or name
    module_name, colon, attribute = target.partition(":")
    if not colon or not module_name or not attribute:
        known = ", ".join(sorted(BUILTINS))
        raise ValueError(
            f"unknown filter {name!r}; built-in filters: {known}; a filter of another package "
            f"is a name of the {ENTRY_POINT_GROUP!r} entry points or 'package.module:factory'"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # ImportError, or the module itself failing to load
        raise ValueError(
            f"filter {name!r}: cannot import {module_name}: {type(error).__name__}: {error}"
        ) from None
    factory: object = module
    for part in attribute.split("."):
        factory = getattr(factory, part, None)
    if not callable(factory):
        raise ValueError(f"filter {name!r}: {module_name} has no callable {attribute!r}")
    return cast(FilterFactory, factory)


def _entry_point(name: str) -> str | None:
    """``module:attr`` of the ``postline.filters`` entry point called ``name``, if any."""
    if ":" in name:
        return None
    for point in entry_points(group=ENTRY_POINT_GROUP, name=name):
        return str(point.value).replace(" ", "")
    return None


def check_order(chain: Sequence[str], steps: Sequence[object]) -> None:
    """``ValueError`` if a step that rewrites the message comes after ``dkim``."""
    if SIGNER not in chain:
        return
    signer = list(chain).index(SIGNER)
    for entry, step in zip(chain[signer + 1 :], steps[signer + 1 :], strict=True):
        if rewrites_message(step):
            raise ValueError(
                f"filter {entry!r} changes the message after {SIGNER!r} signed it, which "
                f"breaks the signature; list it before {SIGNER!r}"
            )


def check_chain(settings: FilterSettings) -> list[FilterFactory]:
    """The factories of ``[filter] chain``, in order; ``ConfigError`` naming a bad entry."""
    try:
        factories = [resolve(entry) for entry in settings.chain]
        check_order(settings.chain, factories)
    except ValueError as error:
        raise ConfigError(f"invalid configuration: filter.chain: {error}") from None
    return factories


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
    try:
        check_order(settings.chain, filters)
    except ValueError as error:
        raise ConfigError(f"invalid configuration: filter.chain: {error}") from None
    return filters
