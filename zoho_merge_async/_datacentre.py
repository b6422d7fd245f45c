"""Zoho data centres: the accounts server and the API domains of each.

Every Zoho account lives in one data centre. Its OAuth tokens come from that
data centre's accounts server, and its API calls must go to that data
centre's API domain, because another data centre's hosts reject the token.
The accounts servers are those listed on Zoho Accounts' "Multi DC support"
page, which also lists a UK data centre (see the NOTE on `DataCentre`).
"""

from __future__ import annotations

import enum

from yarl import URL


class DataCentre(enum.Enum):
    """A Zoho data centre, with its accounts server and API domains.

    NOTE: Zoho also lists a UK data centre, but its API domain is not
    confirmed, so it has no preset. Pass `accounts_url` and `api_domain` for it.
    """

    US = ("https://accounts.zoho.com", "com")
    EU = ("https://accounts.zoho.eu", "eu")
    IN = ("https://accounts.zoho.in", "in")
    AU = ("https://accounts.zoho.com.au", "com.au")
    JP = ("https://accounts.zoho.jp", "jp")
    CN = ("https://accounts.zoho.com.cn", "com.cn")
    CA = ("https://accounts.zohocloud.ca", "ca")
    SA = ("https://accounts.zoho.sa", "sa")

    def __init__(self, accounts_url: str, api_suffix: str) -> None:
        self.accounts_url = accounts_url
        """Accounts server that issues and refreshes this data centre's tokens."""
        self._api_suffix = api_suffix

    @property
    def api_domain(self) -> str:
        """API domain of production accounts, such as https://www.zohoapis.eu."""
        return f"https://www.zohoapis.{self._api_suffix}"

    @property
    def sandbox_api_domain(self) -> str:
        """API domain of sandbox accounts, such as https://sandbox.zohoapis.eu."""
        return f"https://sandbox.zohoapis.{self._api_suffix}"

    @property
    def developer_api_domain(self) -> str:
        """API domain of developer accounts, such as https://developer.zohoapis.eu."""
        return f"https://developer.zohoapis.{self._api_suffix}"

    @classmethod
    def parse(cls, value: DataCentre | str) -> DataCentre:
        """Return the data centre named by `value` ("EU", "eu" or `DataCentre.EU`).

        Raises `ValueError` for any other value.
        """
        if isinstance(value, DataCentre):
            return value
        if isinstance(value, str) and value.strip().upper() in cls.__members__:
            return cls[value.strip().upper()]
        names = ", ".join(cls.__members__)
        raise ValueError(f"invalid data centre {value!r}: use one of {names}")

    @classmethod
    def from_api_domain(cls, api_domain: str) -> DataCentre | None:
        """Return the data centre whose API hosts include `api_domain`'s host, or None.

        The production, sandbox and developer hosts all count, so
        https://sandbox.zohoapis.eu gives EU. Any other host gives None.
        """
        host = URL(api_domain).host or ""
        for centre in cls:
            if host.endswith(f".zohoapis.{centre._api_suffix}"):
                return centre
        return None

    @classmethod
    def from_accounts_url(cls, accounts_url: str) -> DataCentre | None:
        """Return the data centre whose accounts server is at `accounts_url`'s host, or None."""
        host = URL(accounts_url).host
        for centre in cls:
            if URL(centre.accounts_url).host == host:
                return centre
        return None


_ZOHO_API_HOSTS = frozenset(
    URL(domain).host
    for centre in DataCentre
    for domain in (centre.api_domain, centre.sandbox_api_domain, centre.developer_api_domain)
)


def is_zoho_api_domain(url: URL) -> bool:
    """Return True for the https production, sandbox or developer API domain of a data centre."""
    return url.scheme == "https" and url.port == 443 and url.host in _ZOHO_API_HOSTS
