"""Credentials of the `zoho-merge` command, read only from environment variables.

An access token comes from ZOHO_ACCESS_TOKEN (or the variable named by
--access-token-env). Without one, the command refreshes tokens itself from
ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET and ZOHO_REFRESH_TOKEN, at the accounts
server of ZOHO_DATA_CENTRE (US by default) or at ZOHO_ACCOUNTS_URL.
"""

from __future__ import annotations

from collections.abc import Mapping

from zoho_merge_async import DataCentre, RefreshTokenProvider

CLIENT_ID_ENV = "ZOHO_CLIENT_ID"
CLIENT_SECRET_ENV = "ZOHO_CLIENT_SECRET"
REFRESH_TOKEN_ENV = "ZOHO_REFRESH_TOKEN"
DATA_CENTRE_ENV = "ZOHO_DATA_CENTRE"
ACCOUNTS_URL_ENV = "ZOHO_ACCOUNTS_URL"
REFRESH_VARIABLES = (CLIENT_ID_ENV, CLIENT_SECRET_ENV, REFRESH_TOKEN_ENV)


def credentials_from_environment(environ: Mapping[str, str],
                                 token_variable: str) -> str | RefreshTokenProvider:
    """Return the access token in `token_variable`, else a provider from the refresh variables.

    Raises `ValueError` naming the missing variables when neither set is
    complete, and naming the variable whose value is invalid. No message
    shows a secret.
    """
    token = environ.get(token_variable, "")
    if token:
        return token

    missing = [name for name in REFRESH_VARIABLES if not environ.get(name)]
    refresh_names = ", ".join(REFRESH_VARIABLES)
    if len(missing) == len(REFRESH_VARIABLES):
        raise ValueError(
            f"no Zoho credentials: {token_variable} is not set or empty; set it to an OAuth "
            f"access token, or set {refresh_names} (with {DATA_CENTRE_ENV} or "
            f"{ACCOUNTS_URL_ENV}) to refresh tokens automatically; credentials are never "
            "taken from the command line")
    if missing:
        raise ValueError(
            f"incomplete refresh credentials: {', '.join(missing)} not set or empty; set all "
            f"of {refresh_names}, or set {token_variable} to an access token instead")

    return RefreshTokenProvider(
        _read(environ, CLIENT_ID_ENV),
        _read(environ, CLIENT_SECRET_ENV),
        _read(environ, REFRESH_TOKEN_ENV),
        data_centre=_data_centre(environ),
        accounts_url=environ.get(ACCOUNTS_URL_ENV) or None,
    )


def _read(environ: Mapping[str, str], name: str) -> str:
    value = environ[name]
    if value != value.strip():
        raise ValueError(f"{name} starts or ends with whitespace; set it to the value alone")
    return value


def _data_centre(environ: Mapping[str, str]) -> DataCentre | None:
    name = environ.get(DATA_CENTRE_ENV)
    if not name:
        return None
    try:
        return DataCentre.parse(name)
    except ValueError as exc:
        raise ValueError(f"{DATA_CENTRE_ENV}: {exc}") from exc
