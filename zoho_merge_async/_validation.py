"""Checks on caller input, run before anything is sent.

Every value that ends up in a URL is checked against a strict pattern, so no
argument can add a path segment or a query parameter.
"""

from __future__ import annotations

import ipaddress
import re

from yarl import URL

API_VERSIONS = ("v6", "v7", "v8")
"""Zoho CRM API versions that have the merge calls."""

# Zoho API names are ASCII letters, digits and underscores, starting with a letter.
_MODULE_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")
# Zoho record and job ids are 19 digits today; allow shorter ones and some growth.
_ID_PATTERN = re.compile(r"[0-9]{1,30}")
# Characters allowed in an OAuth access token header value (RFC 6750 b64token).
_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def check_module(module: object) -> str:
    """Return `module` if it is a valid Zoho module API name, else raise ValueError."""
    if not isinstance(module, str) or not _MODULE_PATTERN.fullmatch(module):
        raise ValueError(
            f"invalid module {module!r}: use the module's API name, such as 'Leads' or "
            "'Custom_Module1' (ASCII letters, digits and underscores, starting with a letter)"
        )
    return module


def check_id(name: str, value: object) -> str:
    """Return a record or job id as a digit string, else raise ValueError naming `name`."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**30:
        return str(value)
    if isinstance(value, str) and _ID_PATTERN.fullmatch(value) and value.strip("0"):
        return value
    raise ValueError(
        f"invalid {name} {value!r}: Zoho ids are positive whole numbers, given as digits "
        "in a str (such as '2378988000000509963') or as an int"
    )


def check_access_token(token: object) -> str:
    """Return `token` if it can be sent in a header; the message never shows the token."""
    if not isinstance(token, str) or not token:
        raise ValueError("access_token is missing: pass the Zoho OAuth access token as a str")
    if not _TOKEN_PATTERN.fullmatch(token):
        raise ValueError(
            "access_token contains characters an OAuth token cannot have (such as spaces "
            "or line breaks); pass the token alone, without 'Zoho-oauthtoken'"
        )
    return token


def check_api_version(version: object) -> str:
    """Return `version` if it is an API version with the merge calls, else raise ValueError."""
    if version not in API_VERSIONS:
        raise ValueError(f"invalid api_version {version!r}: use one of {', '.join(API_VERSIONS)}")
    return str(version)


def check_api_domain(domain: object) -> URL:
    """Parse the API domain, such as https://www.zohoapis.com, and return it as a URL."""
    return check_server_url("api_domain", domain, "https://www.zohoapis.com")


def check_server_url(name: str, value: object, example: str) -> URL:
    """Parse a server URL given as scheme and host only, such as https://accounts.zoho.com.

    Plain http is accepted only for a loopback host, so that no token or
    secret crosses a network unencrypted. Raises `ValueError` naming `name`.
    """
    if not isinstance(value, str):
        raise ValueError(f"invalid {name} {value!r}: pass a str such as {example!r}")
    try:
        url = URL(value.rstrip("/"))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid {name} {value!r}: {exc}") from None
    extras = url.user or url.password or url.path not in ("", "/") or url.query_string \
        or url.fragment
    if not url.is_absolute() or not url.host or extras:
        raise ValueError(f"invalid {name} {value!r}: give only scheme and host, such as "
                         f"{example!r}")
    if url.scheme == "http" and is_loopback(url.host):
        return url
    if url.scheme != "https":
        raise ValueError(f"invalid {name} {value!r}: use https (plain http is allowed only "
                         "for a loopback address such as 127.0.0.1)")
    return url


def is_loopback(host: str) -> bool:
    """Return True for localhost and loopback IP addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_positive_seconds(name: str, value: object) -> float:
    """Return `value` as a float if it is a positive, finite number of seconds.

    Raises `ValueError` naming `name` otherwise.
    """
    if isinstance(value, bool) or not (
            isinstance(value, int | float) and 0 < value < float("inf")):
        raise ValueError(f"invalid {name} {value!r}: give a positive, finite number of seconds")
    return float(value)
