"""Attachments both ways: customers' images previewed by the browser, agents'
files stored through Django's storage API and sent as media URLs."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from core.testing import create_user, message_event, post_webhook, session_key
from inbox.models import Conversation, Message
from inbox.tests.test_replies import _drain

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06"
    b"\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01"
    b"\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)
HX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def media(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _as(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _conversation(**data: Any) -> Conversation:
    session = session_key()
    post_webhook(message_event(session_id=session, **data))
    return Conversation.objects.get(session_id=session)


@pytest.mark.django_db
def test_a_customers_image_is_previewed_by_the_browser_without_a_referrer() -> None:
    conversation = _conversation(
        text="",
        attachments=[
            {"url": "https://cdn.example.com/p/receipt.jpg", "type": "image/jpeg"},
            {"url": "https://cdn.example.com/doc.pdf", "name": "invoice.pdf"},
            "https://cdn.example.com/raw/photo.webp?sig=1",
        ],
    )
    alice = create_user(role="agent", username="alice")
    answer = _as(alice).get(f"/inbox/c/{conversation.pk}/")
    html = answer.content.decode()
    assert (
        '<img src="https://cdn.example.com/p/receipt.jpg" alt="receipt.jpg"'
        ' loading="lazy" referrerpolicy="no-referrer"' in html
    )
    assert '<img src="https://cdn.example.com/raw/photo.webp?sig=1"' in html
    assert (
        "📎 invoice.pdf" in html and '<img src="https://cdn.example.com/doc' not in html
    )
    # Images from anywhere, and nothing else from anywhere.
    csp = answer["Content-Security-Policy"]
    assert "img-src * data:" in csp
    assert "default-src 'self'" in csp and "script-src 'self'" in csp


@pytest.mark.django_db
def test_a_stored_attachment_that_is_not_a_web_url_is_never_linked() -> None:
    conversation = _conversation(text="hi")
    message = conversation.messages.get()
    Message.objects.filter(pk=message.pk).update(
        attachments=[{"url": "javascript:alert(1)", "type": "image/png", "name": "x"}]
    )
    alice = create_user(role="agent", username="alice")
    html = _as(alice).get(f"/inbox/c/{conversation.pk}/").content.decode()
    assert "javascript:alert" not in html
    assert "(not a web link)" in html


@pytest.mark.django_db(transaction=True)
def test_an_agents_files_are_stored_sent_as_media_urls_and_served_safely(
    worker: Any, gateway: Any, media: Any
) -> None:
    conversation = _conversation(text="사진 보내주세요")
    alice = create_user(role="agent", username="alice")
    client = _as(alice)
    answer = client.post(
        f"/inbox/c/{conversation.pk}/reply/",
        {
            "text": "여기 있습니다",
            "attach": [
                SimpleUploadedFile("guide.png", PNG, content_type="image/png"),
                SimpleUploadedFile(
                    "evil page.html", b"<script>alert(1)</script>", "text/html"
                ),
            ],
        },
        headers=HX,
    )
    assert answer.status_code == 200, answer.content
    assert "2 files sent" in answer.content.decode()
    message = Message.objects.get(author="agent")
    urls = [a["url"] for a in message.attachments]
    assert urls[0].startswith("http://testserver/media/attachments/")
    assert urls[0].endswith("/guide.png") and urls[1].endswith("/evil_page.html")
    assert message.attachments[0]["type"] == "image/png"
    assert len(list(media.glob("attachments/*/*"))) == 2

    _drain(worker)
    [sent] = gateway.received
    assert sent.attachments == urls and sent.text == "여기 있습니다"

    image = Client().get(urls[0].removeprefix("http://testserver"))
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert b"".join(image.streaming_content) == PNG
    assert image["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in image["Content-Security-Policy"]
    page = Client().get(urls[1].removeprefix("http://testserver"))
    assert page["Content-Type"] == "application/octet-stream"
    assert page["Content-Disposition"].startswith("attachment")
    assert Client().get("/media/attachments/nothere/x.png").status_code == 404


@pytest.mark.django_db
def test_too_many_or_too_large_files_are_refused_and_nothing_is_stored(
    settings: Any, media: Any
) -> None:
    settings.INBOX_MAX_ATTACHMENTS = 2
    settings.INBOX_MAX_ATTACHMENT_BYTES = 100
    conversation = _conversation(text="hi")
    alice = create_user(role="agent", username="alice")
    client = _as(alice)
    big = client.post(
        f"/inbox/c/{conversation.pk}/reply/",
        {"text": "x", "attach": [SimpleUploadedFile("a.png", PNG * 5)]},
        headers=HX,
    )
    assert big.status_code == 400
    assert "a.png is 335\xa0bytes; files are at most 100\xa0bytes" in (
        big.content.decode()
    )
    many = client.post(
        f"/inbox/c/{conversation.pk}/reply/",
        {"attach": [SimpleUploadedFile(f"{i}.txt", b"x") for i in range(3)]},
        headers=HX,
    )
    assert many.status_code == 400
    assert "At most 2 files" in many.content.decode()
    note = client.post(
        f"/inbox/c/{conversation.pk}/reply/",
        {"note": "on", "attach": [SimpleUploadedFile("a.txt", b"x")]},
        headers=HX,
    )
    assert (
        note.status_code == 400 and "Notes cannot carry files" in note.content.decode()
    )
    assert not list(media.glob("attachments/*/*"))
    assert not Message.objects.filter(author="agent").exists()
