"""`dockyard images`: rows, filters and output, without click.

Listing images is the command people run most, so it must start fast: this module imports neither
click nor the template engine unless a `--format` asks for it, and the launcher can serve it
before click is imported at all.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from dockyard.core.engine import Engine
    from dockyard.core.images import Image

__all__ = ["IMAGES_HEADERS", "display_id", "go_time", "render_image_listing", "since"]

IMAGES_COLUMNS = ("Repository", "Tag", "ID", "CreatedSince", "Size")
IMAGES_DIGEST_COLUMNS = ("Repository", "Tag", "Digest", "ID", "CreatedSince", "Size")
IMAGES_HEADERS = {
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "ID": "IMAGE ID",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "Containers": "CONTAINERS",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
    "VirtualSize": "VIRTUAL SIZE",
}
FILTER_KEYS = ("dangling", "reference", "label")


def display_id(image_id: str, no_trunc: bool) -> str:
    """The full `sha256:` id with `--no-trunc`, else Docker's 12 hex."""
    return image_id if no_trunc else image_id.partition(":")[2][:12]


def go_time(created: str) -> str:
    """Docker's CreatedAt spelling: `2024-01-02 03:04:05 +0000 UTC`."""
    date, _, rest = created.partition("T")
    return f"{date} {rest[:8]} +0000 UTC" if rest else created


def since(created: str) -> str:
    """The CREATED column: how long ago, or N/A for an unreadable time."""
    from dockyard.core.timestamps import seconds_since
    from dockyard.core.units import human_duration_ago

    seconds = seconds_since(created)
    return "N/A" if seconds is None else human_duration_ago(seconds)


def _image_rows(images: Iterable[Image], *, no_trunc: bool, digests: bool) -> list[dict[str, str]]:
    from dockyard.core.reference import parse_reference
    from dockyard.core.units import human_size

    rows = []
    for image in images:
        base = {
            "Containers": "N/A",
            "CreatedAt": go_time(image.created),
            "CreatedSince": since(image.created),
            "ID": display_id(image.id, no_trunc),
            "SharedSize": "N/A",
            "Size": human_size(image.size),
            "UniqueSize": "N/A",
            "VirtualSize": human_size(image.size),
        }
        digest_by_name = {}
        for digest_reference in image.repo_digests:
            parsed = parse_reference(digest_reference, default_tag=None)
            digest_by_name[parsed.familiar_name()] = parsed.digest or "<none>"
        tagged = [parse_reference(ref) for ref in image.repo_tags]
        if not tagged:
            for name in list(digest_by_name) or ["<none>"]:
                digest = digest_by_name.get(name, "<none>")
                rows.append({**base, "Repository": name, "Tag": "<none>", "Digest": digest})
        for tag_reference in tagged:
            name = tag_reference.familiar_name()
            digest = digest_by_name.get(name, "<none>") if digests else "<none>"
            tag = tag_reference.tag or "<none>"
            rows.append({**base, "Repository": name, "Tag": tag, "Digest": digest})
    return rows


def _image_matches(image: Image, filters: list[tuple[str, str]]) -> bool:
    """Image-level filters: dangling and label."""
    for key, value in filters:
        if key == "dangling":
            if (not image.repo_tags) != (value.lower() in ("true", "1")):
                return False
        elif key == "label":
            name, has_value, expected = value.partition("=")
            labels = (image.config.get("config") or {}).get("Labels") or {}
            if name not in labels or (has_value and labels[name] != expected):
                return False
    return True


def _row_matches(row: dict[str, str], filters: list[tuple[str, str]], repository: str | None) -> bool:
    """Row-level filters, applied per tag as Docker does: REPOSITORY[:TAG] and `reference=`."""
    name = f"{row['Repository']}:{row['Tag']}"
    if repository is not None:
        wanted_tag = ":" in repository.rpartition("/")[2]
        if (name if wanted_tag else row["Repository"]) != repository:
            return False
    patterns = [value for key, value in filters if key == "reference"]
    if not patterns:
        return True
    import fnmatch

    return any(
        fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(row["Repository"], pattern)
        for pattern in patterns
    )


def render_image_listing(
    engine: Engine,
    *,
    repository: str | None = None,
    show_all: bool = False,
    digests: bool = False,
    filters: Iterable[str] = (),
    template: str | None = None,
    no_trunc: bool = False,
    quiet: bool = False,
) -> str:
    """The whole output of `dockyard images` with these options."""
    from dockyard.core.filters import parse_filters

    parsed_filters = parse_filters(filters, FILTER_KEYS)
    has_state = engine.settings.storage_driver or engine.storage_names_on_disk()
    stored = engine.images.list() if has_state else []
    parents = {image.parent for image in stored if image.parent}
    shown = [
        image
        for image in stored
        if (show_all or image.repo_tags or image.id not in parents) and _image_matches(image, parsed_filters)
    ]
    rows = [
        row
        for row in _image_rows(shown, no_trunc=no_trunc, digests=digests)
        if _row_matches(row, parsed_filters, repository)
    ]
    if quiet:
        return "".join(image_id + "\n" for image_id in dict.fromkeys(row["ID"] for row in rows))
    if template and template != "table":
        from dockyard.core.formatting import format_rows

        return format_rows(template, rows, headers=IMAGES_HEADERS, default="")
    from dockyard.core.tabwriter import render_table

    columns = IMAGES_DIGEST_COLUMNS if digests else IMAGES_COLUMNS
    return render_table(
        [IMAGES_HEADERS[column] for column in columns], ([row[c] for c in columns] for row in rows)
    )
