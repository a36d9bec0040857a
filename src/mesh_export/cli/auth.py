"""mesh-export auth status: which CAVE token would be used, never the token itself."""

from __future__ import annotations

import typer

from mesh_export.cli.options import BareJsonOpt, ServerOpt, TokenOpt, variant
from mesh_export.cli.output import emit_json

auth_app = typer.Typer(help="CAVE authentication.", no_args_is_help=True)
_TokenToCheck = variant(TokenOpt, help="A token to check instead of the configured one.", panel=None)
_SecretsServer = variant(ServerOpt, help="CAVE server URL (for server-specific secret files).", panel=None)


@auth_app.command("status")
def auth_status(
    token: _TokenToCheck = None,
    server: _SecretsServer = None,
    as_json: BareJsonOpt = False,
) -> None:
    """Say which token would be used and where it comes from, without printing it."""
    from mesh_export.api import TOKEN_HELP, resolve_token

    found = resolve_token(token, server)
    if as_json:
        emit_json({"origin": found.origin, "fingerprint": found.fingerprint, "present": bool(found.value)})
    elif found.value:
        typer.echo(f"token from {found.origin} (sha256 {found.fingerprint}...)")
    else:
        typer.echo(f"no token configured: {TOKEN_HELP}")
