"""Where an agent's attached file is stored and served back.

Files go through Django's storage API (``default_storage``: the file system
under ``MEDIA_ROOT`` unless STORAGES says otherwise) under an unguessable
folder, and the gateway is given their absolute URL (``mediaUrls``): the
chat platform fetches them from us. They are served publicly by that URL,
never as a page of ours: anything but a plain image type is a download, and
every answer carries a sandboxing CSP and ``nosniff``.
"""

from __future__ import annotations

import mimetypes
import uuid
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.http import FileResponse, Http404, HttpRequest
from django.utils.text import get_valid_filename

FOLDER = "attachments"
# Shown inline (and previewed in the thread); SVG is not: it can carry script.
INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


def save(upload: UploadedFile, request: HttpRequest) -> dict[str, Any]:
    """Store ``upload``; the attachment as a message keeps it."""
    name = get_valid_filename(upload.name or "file")[-100:] or "file"
    path = default_storage.save(f"{FOLDER}/{uuid.uuid4().hex}/{name}", upload)
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return {
        "url": public_url(default_storage.url(path), request),
        "type": kind,
        "name": name,
        "size": upload.size,
    }


def public_url(path: str, request: HttpRequest) -> str:
    """The URL the gateway (and the chat platform behind it) fetches from."""
    base = settings.INBOX_PUBLIC_URL
    if base:
        return base.rstrip("/") + "/" + path.lstrip("/")
    return request.build_absolute_uri(path)


def discard(files: list[dict[str, Any]]) -> None:
    """Delete files stored for a reply that was then refused."""
    for item in files:
        path = item["url"].split(f"/{FOLDER}/", 1)[-1]
        default_storage.delete(f"{FOLDER}/{path}")


def serve(key: str, name: str) -> FileResponse:
    path = f"{FOLDER}/{key}/{name}"
    if not default_storage.exists(path):
        raise Http404("no such attachment")
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    inline = kind in INLINE_TYPES
    response = FileResponse(
        default_storage.open(path),
        as_attachment=not inline,
        filename=name,
        content_type=kind if inline else "application/octet-stream",
    )
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=86400"
    return response
