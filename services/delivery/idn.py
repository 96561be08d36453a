"""Internationalised domain names, the IDNA 2008 way (the ``idna`` package, as dnspython).

Python's built-in ``"idna"`` codec is IDNA 2003: it maps ``straße`` to
``strasse`` and accepts symbols IDNA 2008 forbids, so an address check and a
DNS lookup could disagree on which domain a recipient is in. Delivery
converts every domain here and nowhere else:

* ``to_ascii(domain)``: the A-label form (``xn--strae-oqa.test``), lower case,
  without a trailing dot; UTS 46 mapping, non-transitional (``ß`` stays
  ``ß``), as dnspython's default codec does. ASCII labels are only lower-cased
  (an ``xn--`` label must be a valid A-label); an address literal
  (``[192.0.2.1]``) is only lower-cased. Raises ``IdnaError`` when the domain
  is not valid IDNA 2008.
* ``to_unicode(domain)``: the U-label form, for people (and for comparison
  with names spelled either way).
* ``ascii_address(address)``: ``local@A-label`` when the local part is ASCII
  (what a server without SMTPUTF8 may be sent, RFC 6531 3.2), else None.

Pure functions, no I/O.
"""

from __future__ import annotations

import idna


class IdnaError(ValueError):
    """The domain is not a valid IDNA 2008 name."""


def to_ascii(domain: str) -> str:
    """``domain`` in A-labels, lower case, no trailing dot (module docstring)."""
    name = domain.strip().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        return name.lower()
    labels = []
    for label in name.split("."):
        if label.isascii() and not label.lower().startswith("xn--"):
            labels.append(label.lower())
            continue
        try:
            labels.append(idna.encode(label, uts46=True, transitional=False).decode("ascii"))
        except (idna.IDNAError, UnicodeError) as error:
            raise IdnaError(f"{label!r} is not a valid IDNA 2008 label: {error}") from None
    return ".".join(labels)


def to_unicode(domain: str) -> str:
    """``domain`` in U-labels (labels that do not decode are kept as they are)."""
    labels = []
    for label in domain.rstrip(".").split("."):
        try:
            labels.append(idna.decode(label) if label.lower().startswith("xn--") else label)
        except (idna.IDNAError, UnicodeError):
            labels.append(label)
    return ".".join(labels)


def ascii_address(address: str) -> str | None:
    """``local@A-label`` if the local part is ASCII, else None (it needs SMTPUTF8)."""
    local, at, domain = address.rpartition("@")
    if not at:
        return address if address.isascii() else None
    if not local.isascii():
        return None
    try:
        return f"{local}@{to_ascii(domain)}"
    except IdnaError:
        return None
