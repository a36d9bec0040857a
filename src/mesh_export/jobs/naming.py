"""An export's file name from the ``--name`` template: the one rule ``export`` writes by and a
batch's resume check looks for."""

from __future__ import annotations

from mesh_export.errors import InvalidArgumentError

DEFAULT_NAME = "{root_id}_lod{lod}.{ext}"
_FIELDS = "{root_id}, {lod}, {ext}, {format}, {datastack}"


def output_extension(writer) -> str:
    """The extension a file of ``writer``'s format gets (its first; the format's name if none)."""
    return writer.extensions[0].lstrip(".") if writer.extensions else writer.name


def output_name(template: str, *, root_id: int, lod: int, writer, datastack: str | None = None) -> str:
    """``template`` filled in for one export, e.g. ``"{root_id}_lod{lod}.{ext}"`` ->
    ``"864691135010718168_lod0.stl"``.

    A template that names an unknown field, indexes or formats one wrongly (``{id}``, ``{0}``,
    ``{lod:s}``, ``{root_id.x}``, an unmatched brace) is an :class:`InvalidArgumentError`
    listing the fields there are.
    """
    try:
        return template.format(root_id=root_id, lod=lod, ext=output_extension(writer), format=writer.name,
                               datastack=datastack or "")
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
        raise InvalidArgumentError(f"bad --name template {template!r}: use {_FIELDS}") from exc
