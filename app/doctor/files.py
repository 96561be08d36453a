"""Every file the configuration names, and whether each one can be read.

``named_files(settings)`` lists them with the key that names them:
``ingress.tls_cert``, ``ingress.tls_key``, ``ingress.users_file``,
``filter.sender.users_file``, ``filter.dkim.keys[N].key_file``,
``audit.api_tokens_file``, ``delivery.tls_ca_file`` and
``delivery.mta_sts_ca_file`` (those that are set). ``problem(path)`` says why a
file cannot be used (missing, not a regular file, not readable), or None.

``postline config check`` turns the problems into a ``ConfigError`` (exit 2,
one line per file naming the key and the file: ``unusable_files``);
``postline doctor`` prints one check line per file (``file_checks``). Nothing
here parses a file: certificates and users files have checks of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from postline.app.doctor.report import Check, failed, passed
from postline.app.settings import Settings
from postline.settings import ConfigError


@dataclass(frozen=True)
class NamedFile:
    key: str
    path: Path


def named_files(settings: Settings) -> list[NamedFile]:
    """The files ``settings`` names, in the order of the module docstring."""
    ingress, delivery = settings.ingress, settings.delivery
    candidates: list[tuple[str, Path | str | None]] = [
        ("ingress.tls_cert", ingress.tls_cert),
        ("ingress.tls_key", ingress.tls_key),
        ("ingress.users_file", ingress.users_file),
        ("filter.sender.users_file", settings.filter.sender.users_file),
    ]
    for number, key in enumerate(settings.filter.dkim.keys):
        candidates.append((f"filter.dkim.keys[{number}].key_file", key.key_file))
    candidates += [
        ("audit.api_tokens_file", settings.audit.api_tokens_file),
        ("delivery.tls_ca_file", delivery.tls_ca_file),
        ("delivery.mta_sts_ca_file", delivery.mta_sts_ca_file),
    ]
    return [NamedFile(key, Path(path)) for key, path in candidates if path]


def problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file, or None when it can."""
    try:
        if not path.exists():
            return "does not exist"
        if not path.is_file():
            return "is not a regular file"
        with path.open("rb") as handle:
            handle.read(1)
    except PermissionError:
        return "is not readable (permission denied)"
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    return None


def file_checks(settings: Settings) -> list[Check]:
    """One ``file <key>`` line per named file."""
    checks = []
    for named in named_files(settings):
        why = problem(named.path)
        name = f"file {named.key}"
        if why is None:
            checks.append(passed(name, f"{named.path} is readable"))
        else:
            advice = f"fix the path in {named.key} or create the file (readable by this user)"
            checks.append(failed(name, f"{named.path} {why}", advice))
    return checks


def unusable_files(settings: Settings) -> None:
    """``ConfigError`` naming every unusable file and its key (``config check``)."""
    lines = []
    for named in named_files(settings):
        why = problem(named.path)
        if why is not None:
            lines.append(f"{named.key}: file {named.path} {why}")
    if len(lines) == 1:
        raise ConfigError(lines[0])
    if lines:
        raise ConfigError("files named by the configuration:\n  " + "\n  ".join(lines))
