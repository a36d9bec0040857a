"""Where the CAVE token comes from: --token, $CAVE_TOKEN, or caveclient's secret files.

The token itself is never printed, logged, cached or written to provenance; ``redact``
scrubs it from any message that might echo a URL or header.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

TOKEN_ENV = "CAVE_TOKEN"
SECRETS_DIR = Path("~/.cloudvolume/secrets")
SECRET_FILE = "cave-secret.json"  # caveclient's default name
TOKEN_HELP = (
    "get a token by running `caveclient.CAVEclient().auth.get_new_token()` (or visit "
    "<server>/auth/api/v1/create_token), then set CAVE_TOKEN or pass --token"
)


@dataclass(frozen=True)
class Token:
    value: str | None
    origin: str  # "--token", "$CAVE_TOKEN", a secret file path, or "none"

    @property
    def fingerprint(self) -> str | None:
        """A short hash that identifies the token without revealing it."""
        if not self.value:
            return None
        return hashlib.sha256(self.value.encode()).hexdigest()[:8]


def _secret_files(server: str | None) -> list[Path]:
    base = Path(os.path.expanduser(str(SECRETS_DIR)))
    files = []
    if server:
        netloc = urlparse(server).netloc or server
        files.append(base / f"{netloc}-{SECRET_FILE}")
    files.append(base / SECRET_FILE)
    return files


def resolve_token(explicit: str | None = None, server: str | None = None) -> Token:
    if explicit:
        return Token(explicit, "--token")
    if os.environ.get(TOKEN_ENV):
        return Token(os.environ[TOKEN_ENV], f"${TOKEN_ENV}")
    for path in _secret_files(server):
        try:
            value = json.loads(path.read_text()).get("token")
        except (OSError, ValueError, AttributeError):
            continue
        if value:
            return Token(value, str(path))
    return Token(None, "none")


def redact(text: str, token: str | None) -> str:
    if token and token in text:
        return text.replace(token, "<token>")
    return text
