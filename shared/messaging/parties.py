"""The broker users of Kring's parties (deploy/rabbitmq/definitions.py makes them):
`kring-<service>` per service, `kring-ops`, `bureau-<organisation>` (and its replies reader
`bureau-<organisation>-replies`), `funder-<funder>`."""

from urllib.parse import quote, urlsplit, urlunsplit

SERVICE_USER_PREFIX = "kring-"
BUREAU_USER_PREFIX = "bureau-"
FUNDER_USER_PREFIX = "funder-"
OPS_USER = "kring-ops"


def service_user(service: str) -> str:
    return f"{SERVICE_USER_PREFIX}{service}"


def bureau_user(organisation: str) -> str:
    return f"{BUREAU_USER_PREFIX}{organisation}"


def funder_user(funder: str) -> str:
    return f"{FUNDER_USER_PREFIX}{funder}"


def development_password(user: str) -> str:
    """The password of every party in deploy/rabbitmq/definitions.development.json."""
    return f"{user}-dev-password"


def development_url(rabbitmq_url: str, user: str) -> str:
    """`rabbitmq_url` (its host, port and vhost) as development user `user`."""
    parts = urlsplit(rabbitmq_url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(development_password(user), safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
