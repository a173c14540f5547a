"""Install instructions for a channel, in each client's own credential form.

Facts from the clients (docs in ../shared/reference/client-protocols.md): pixi and other
rattler tools look a token up by host name without the port, micromamba by host with the
port, and conda takes the token inside the channel URL as ``/t/<token>/``.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

TOKEN_PLACEHOLDER = "<YOUR-TOKEN>"  # noqa: S105 - shown to users, not a secret


@dataclass(frozen=True)
class Snippet:
    client: str
    title: str
    text: str


def channel_urls(request, channel, related=(), path=""):
    """Absolute URLs of the channel (with ``path`` added: a label's), then of its related
    channels (RelatedChannel rows)."""
    urls = [request.build_absolute_uri(f"/{channel.name}{path}")]
    for entry in related:
        urls.append(
            request.build_absolute_uri(f"/{entry.target.name}") if entry.target_id else entry.url
        )
    return urls


def snippets(request, channel, related=(), package="<package>", path=""):
    """Copyable commands that install ``package`` from the channel (its URL with ``path``
    added) with pixi, micromamba and conda, including the login step when the channel is
    private."""
    urls = channel_urls(request, channel, related, path)
    base = request.build_absolute_uri("/").rstrip("/")
    flags = " ".join(f"-c {url}" for url in urls)
    pixi, micromamba, conda = [], [], []
    if channel.private:
        pixi_login, micromamba_login = login_commands(request)
        pixi.append(pixi_login)
        micromamba.append(micromamba_login)
    pixi.append(f"pixi init my-project {flags}")
    pixi.append(f"cd my-project && pixi add {package}")
    micromamba.append(f"micromamba create -n my-env {flags} {package}")
    conda_urls = [_with_token(url, base) for url in urls] if channel.private else urls
    conda.append(
        "conda create -n my-env " + " ".join(f"-c {u}" for u in conda_urls) + f" {package}"
    )
    return [
        Snippet("pixi", "pixi", "\n".join(pixi)),
        Snippet("micromamba", "micromamba", "\n".join(micromamba)),
        Snippet("conda", "conda", "\n".join(conda)),
    ]


def login_commands(request, secret=TOKEN_PLACEHOLDER):
    """The pixi and micromamba commands that store a token for this Wharf once: pixi keys
    it by host name, micromamba by host and port."""
    base = request.build_absolute_uri("/").rstrip("/")
    return (
        f"pixi auth login {urlsplit(base).hostname} --token {secret}",
        f"micromamba auth login {base} --bearer {secret}",
    )


def _with_token(url, base):
    """A Wharf channel URL of this instance in conda's ``/t/<token>/`` form."""
    if not url.startswith(base + "/"):
        return url
    return f"{base}/t/{TOKEN_PLACEHOLDER}/{url[len(base) + 1 :]}"


def upload_snippet(request, channel):
    base = request.build_absolute_uri("/").rstrip("/")
    return (
        f"rattler-build upload prefix --url {base} --channel {channel.name} "
        f"--api-key {TOKEN_PLACEHOLDER} output/*/*.conda"
    )
