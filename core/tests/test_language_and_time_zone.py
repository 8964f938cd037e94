"""Pages speak the browser's language until an agent picks one, in their zone."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from core.models import Profile
from core.testing import create_user

pytestmark = pytest.mark.django_db

KO = {"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.5"}


def _as(user, **headers: str) -> Client:  # noqa: ANN001
    client = Client(headers=headers)
    client.force_login(user)
    return client


def test_the_login_page_follows_the_browsers_language() -> None:
    korean = Client(headers=KO).get("/login/").content.decode()
    assert '<html lang="ko">' in korean and "사용자 이름" in korean
    english = Client().get("/login/").content.decode()
    assert '<html lang="en">' in english and "Username" in english


def test_a_wrong_password_is_refused_in_korean() -> None:
    create_user(username="minji", password="right-password")
    answer = Client(headers=KO).post(
        "/login/", {"username": "minji", "password": "wrong"}
    )
    assert "사용자 이름과 비밀번호가 일치하지 않습니다." in answer.content.decode()


def test_the_automations_list_follows_the_browsers_language() -> None:
    html = _as(create_user(role="agent"), **KO).get("/automations/").content.decode()
    assert "<h1>자동화</h1>" in html and "아직 트리거가 없습니다." in html


def test_an_agents_chosen_language_beats_the_browsers() -> None:
    agent = create_user(role="agent")
    Profile.objects.create(user=agent, language="en")
    html = _as(agent, **KO).get("/automations/").content.decode()
    assert '<html lang="en">' in html and "<h1>Automations</h1>" in html


def test_picking_korean_on_the_profile_answers_in_korean_at_once() -> None:
    agent = create_user(role="agent")
    client = _as(agent)
    answer = client.post(
        "/profile/",
        {"action": "preferences", "language": "ko", "time_zone": "Asia/Seoul"},
    )
    assert answer.status_code == 200
    assert "저장했습니다." in answer.content.decode()
    assert Profile.objects.get(user=agent).time_zone == "Asia/Seoul"
    html = client.get("/automations/").content.decode()
    assert '<html lang="ko">' in html and 'data-tz="Asia/Seoul"' in html
    # The scripts' words too (the catalogue is JSON, non-ASCII escaped).
    catalogue = client.get("/jsi18n/").content.decode()
    assert json.dumps("서버에 연결할 수 없어")[1:-1] in catalogue


def test_an_unknown_time_zone_is_a_form_error() -> None:
    agent = create_user(role="agent")
    answer = _as(agent).post(
        "/profile/",
        {"action": "preferences", "language": "", "time_zone": "Mars/Olympus"},
    )
    assert answer.status_code == 400
    assert 'id="id_time_zone_error"' in answer.content.decode()
    assert not Profile.objects.filter(user=agent).exists()


def test_without_a_zone_of_their_own_agents_see_the_teams(settings) -> None:  # noqa: ANN001
    settings.TIME_ZONE = "Europe/London"
    html = _as(create_user(role="agent")).get("/profile/").content.decode()
    assert 'data-tz="Europe/London"' in html


@pytest.mark.parametrize(
    ("language", "shown"), [("ko", "12월 5일 09:00"), ("en", "Dec 5, 09:00")]
)
def test_a_stored_time_is_shown_in_the_agents_zone_and_language(
    language: str, shown: str
) -> None:
    agent = create_user(role="agent")
    Profile.objects.create(user=agent, language=language, time_zone="Asia/Seoul")
    token = Token.objects.create(user=agent)
    year = timezone.now().year  # another year would add it
    made = dt.datetime(year, 12, 5, 0, 0, tzinfo=dt.UTC)
    Token.objects.filter(pk=token.pk).update(created=made)
    html = _as(agent, **KO).get("/profile/").content.decode()
    assert (
        f'<time datetime="{year}-12-05T09:00:00+09:00" data-stamp>{shown}</time>'
        in html
    )


def test_the_zone_does_not_leak_into_the_next_request() -> None:
    agent = create_user(role="agent")
    Profile.objects.create(user=agent, time_zone="Asia/Seoul")
    _as(agent).get("/profile/")
    assert timezone.get_current_timezone_name() == "UTC"
