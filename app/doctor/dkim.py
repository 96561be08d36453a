"""DKIM: each key of ``[filter.dkim] keys`` is published where receivers look for it.

For every configured key, ``<selector>._domainkey.<domain>`` TXT is looked up
through the resolvers delivery uses (``dns.resolvers_of``) and compared with
the key's public half (``postline.filter.dkim.published_key_matches``):

* ``PASS``: the record publishes this key;
* ``FAIL``: no such name (NXDOMAIN), no TXT record, a record for another key
  (after a rotation, the old one is still published), or a key file that does
  not load; receivers then fail every signature made with it, and DMARC too;
* ``WARN``: the resolver did not answer in time (nothing is known).

Nothing is checked when ``dkim`` is not in ``[filter] chain`` or no key is set.
"""

from __future__ import annotations

import dns.asyncresolver
import dns.exception
import dns.resolver

from postline.app.doctor.dns import resolvers_of
from postline.app.doctor.report import Check, escape, failed, passed, warned
from postline.app.settings import Settings
from postline.filter.dkim import published_key_matches
from postline.filter.dkim_keys import load_key
from postline.filter.sections import DkimKeySettings

TIMEOUT = 3.0


async def dkim_checks(settings: Settings) -> list[Check]:
    """One line per configured key (module docstring)."""
    if "dkim" not in settings.filter.chain:
        return []
    keys = list(settings.filter.dkim.keys)
    if not keys:
        return []
    resolver = _resolver(settings)
    return [await _check(resolver, key, keys) for key in keys]


def _resolver(settings: Settings) -> dns.asyncresolver.Resolver:
    servers, _ = resolvers_of(settings.delivery)
    resolver = dns.asyncresolver.Resolver(configure=not settings.delivery.dns_nameservers)
    if settings.delivery.dns_nameservers:
        resolver.nameservers = [server.host for server in servers]
        resolver.port = servers[0].port
    resolver.lifetime = TIMEOUT
    return resolver


async def _check(
    resolver: dns.asyncresolver.Resolver, key: DkimKeySettings, keys: list[DkimKeySettings]
) -> Check:
    name = f"{key.selector}._domainkey.{key.domain}"
    check = f"dkim {name}"
    try:
        record = load_key(key).record
    except (ValueError, OSError) as error:
        return failed(check, f"key file does not load: {escape(error)}", "fix key_file")
    publish = f"publish the TXT record: {record[:60]}... (postline dkim keygen prints it)"
    try:
        answer = await resolver.resolve(name, "TXT")
    except dns.resolver.NXDOMAIN:
        return failed(check, f"{name} does not exist (NXDOMAIN)", publish)
    except dns.resolver.NoAnswer:
        return failed(check, f"{name} has no TXT record", publish)
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as error:
        return warned(check, f"no answer: {escape(error)}", "check the resolver (dns lines)")
    texts = [b"".join(rdata.strings) for rdata in answer]
    if any(published_key_matches(key.domain, key.selector, text, keys) for text in texts):
        return passed(check, "publishes this key")
    found = escape(texts[0].decode("ascii", "replace"), 80) if texts else "nothing"
    return failed(check, f"publishes another key ({found})", publish)
