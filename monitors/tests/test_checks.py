"""Checking a monitor end to end: a real Dramatiq worker runs ``check_monitor``,
which asks the simulated gateway's browser tool (it really fetches the test
page on 127.0.0.1), stores snapshots and raises alerts once."""

from __future__ import annotations

import socket
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import urllib3
from django.utils import timezone

from core.testing import create_monitor, create_user, drain
from inbox.models import Notification
from monitors.models import Alert, Monitor, Snapshot
from monitors.tasks import check_monitor, schedule_monitor_checks

pytestmark = pytest.mark.django_db(transaction=True)

PRICE_PAGE = """<html><head><title>Shop</title><script>var x = 1;</script></head>
<body><nav>Home · Cart</nav><main><h1>Galaxy Book</h1>
<p class="price" id="price">{price}</p><p>In stock</p></main></body></html>"""


@pytest.fixture
def lead() -> Any:
    return create_user(role="lead", username="lena")


@pytest.fixture
def admin() -> Any:
    return create_user(role="admin", username="ada")


def run_check(worker: Any, monitor: Monitor) -> Monitor:
    check_monitor.send(monitor.pk)
    drain(worker, "monitors")
    monitor.refresh_from_db()
    return monitor


def test_first_check_is_a_baseline_then_a_change_alerts_once(
    allow_loopback: Any, page: Any, gateway: Any, worker: Any, lead: Any, admin: Any
) -> None:
    create_user(role="agent", username="arno")  # agents are not told
    page.html = PRICE_PAGE.format(price="₩1,250,000")
    monitor = create_monitor(url=page.url)

    run_check(worker, monitor)
    baseline = Snapshot.objects.get()
    assert "Galaxy Book" in baseline.text and "In stock" in baseline.text
    assert "var x" not in baseline.text  # scripts are not visible text
    assert not baseline.is_change
    assert Alert.objects.count() == 0 and Notification.objects.count() == 0
    # The simulator was asked through the real tool's actions, tab closed.
    assert [c["action"] for c in gateway.browser_calls] == ["open", "text", "close"]
    assert gateway.browser.open_tabs == 0

    page.html = PRICE_PAGE.format(price="₩1,190,000")
    monitor = run_check(worker, monitor)
    alert = Alert.objects.get()
    assert alert.kind == Alert.Kind.CHANGE
    change = Snapshot.objects.get(is_change=True)
    assert "-₩1,250,000" in change.diff and "+₩1,190,000" in change.diff
    notes = Notification.objects.order_by("user__username")
    assert [n.user.username for n in notes] == ["ada", "lena"]
    assert {n.kind for n in notes} == {Notification.Kind.MONITOR}
    assert {n.link for n in notes} == {f"/monitors/{monitor.pk}/"}
    assert monitor.status == "changed" and monitor.last_changed_at is not None

    # No change: no alert. The same job delivered again: still one alert.
    run_check(worker, monitor)
    check_monitor.send(monitor.pk)
    check_monitor.send(monitor.pk)
    drain(worker, "monitors")
    assert Alert.objects.count() == 1
    assert Notification.objects.count() == 2
    assert Snapshot.objects.filter(monitor=monitor).count() == 5


def test_a_selector_scopes_what_is_watched(
    allow_loopback: Any, page: Any, gateway: Any, worker: Any, lead: Any
) -> None:
    page.html = PRICE_PAGE.format(price="$1,299.00")
    monitor = create_monitor(url=page.url, selector="main p.price")
    run_check(worker, monitor)
    page.html = PRICE_PAGE.format(price="$1,299.00").replace("In stock", "Sold out")
    run_check(worker, monitor)
    assert [s.text for s in Snapshot.objects.order_by("pk")] == ["$1,299.00"] * 2
    assert Alert.objects.count() == 0
    assert gateway.browser_calls[1]["selector"] == "main p.price"


def test_price_crossing_below_the_threshold_alerts_once(
    allow_loopback: Any, page: Any, gateway: Any, worker: Any, lead: Any
) -> None:
    monitor = create_monitor(
        url=page.url,
        selector="#price",
        is_price=True,
        threshold=Decimal("1200000"),
        direction=Monitor.Direction.BELOW,
    )
    prices = ["₩1,250,000", "₩1,190,000", "₩1,150,000", "₩1,150,000"]
    for price in prices:
        page.html = PRICE_PAGE.format(price=price)
        run_check(worker, monitor)
    numbers = list(Snapshot.objects.order_by("pk").values_list("number", flat=True))
    assert numbers == [Decimal(1250000), Decimal(1190000)] + [Decimal(1150000)] * 2
    # One check, one alert: the crossing says the page changed too. The next
    # change (still below) is a change alert of its own.
    assert [(a.kind, a.text) for a in Alert.objects.order_by("pk")] == [
        (
            Alert.Kind.PRICE,
            "Product page: price 1,190,000 is below 1,200,000 (page changed)",
        ),
        (Alert.Kind.CHANGE, "Product page: the page changed"),
    ]
    assert Notification.objects.count() == 2  # one lead, one per alert
    assert [n.text for n in Notification.objects.order_by("pk")] == [
        a.text for a in Alert.objects.order_by("pk")
    ]

    # Back above, then below again: a new crossing, a new alert.
    for price in ["₩1,300,000", "₩1,100,000"]:
        page.html = PRICE_PAGE.format(price=price)
        run_check(worker, monitor)
    assert Alert.objects.filter(kind=Alert.Kind.PRICE).count() == 2
    assert Alert.objects.count() == 4  # each check one alert at most
    # A redelivered check finds nothing new: no alert twice.
    check_monitor.send(monitor.pk)
    check_monitor.send(monitor.pk)
    drain(worker, "monitors")
    assert Alert.objects.count() == 4 and Notification.objects.count() == 4


def test_a_first_read_past_the_threshold_is_news_without_a_change(
    allow_loopback: Any, page: Any, gateway: Any, worker: Any, lead: Any
) -> None:
    page.html = PRICE_PAGE.format(price="$900")
    monitor = create_monitor(
        url=page.url, selector="#price", is_price=True, threshold=Decimal(1000)
    )
    run_check(worker, monitor)
    assert [a.text for a in Alert.objects.all()] == [
        "Product page: price 900 is below 1,000"
    ]


def test_failures_back_off_and_alert_once_after_a_day(
    allow_loopback: Any, page: Any, gateway: Any, worker: Any, lead: Any, settings: Any
) -> None:
    settings.MONITORS_MAX_BACKOFF_MINUTES = 360
    monitor = create_monitor(url=page.url, selector="#gone", interval_minutes=60)
    before = timezone.now()
    monitor = run_check(worker, monitor)
    assert monitor.status == "failing" and monitor.failures == 1
    assert "#gone" in monitor.last_error
    assert monitor.next_check_at - before >= timedelta(minutes=120)
    monitor = run_check(worker, monitor)
    assert monitor.next_check_at - timezone.now() > timedelta(minutes=235)
    for _ in range(3):
        monitor = run_check(worker, monitor)
    # Capped at six hours.
    assert monitor.next_check_at - timezone.now() <= timedelta(minutes=360)
    assert monitor.failures == 5
    assert Alert.objects.count() == 0  # failing, but not for a day yet

    # Failing for a day: one alert, however many checks fail after it.
    Monitor.objects.filter(pk=monitor.pk).update(
        failing_since=timezone.now() - timedelta(hours=25)
    )
    for _ in range(3):
        run_check(worker, monitor)
    assert Alert.objects.filter(kind=Alert.Kind.FAILING).count() == 1
    assert Notification.objects.filter(key__contains="failing").count() == 1

    # Recovery ends the episode; a later day of failing alerts again.
    monitor.selector = ""
    monitor.save()
    monitor = run_check(worker, monitor)
    assert monitor.failing_since is None and monitor.failures == 0
    assert monitor.last_error == ""
    monitor.selector = "#gone"
    monitor.save()
    run_check(worker, monitor)
    Monitor.objects.filter(pk=monitor.pk).update(
        failing_since=timezone.now() - timedelta(hours=30)
    )
    run_check(worker, monitor)
    assert Alert.objects.filter(kind=Alert.Kind.FAILING).count() == 2


def test_gateway_down_is_a_failure_not_a_crash(
    allow_loopback: Any, page: Any, gateway: Any, worker: Any
) -> None:
    monitor = create_monitor(url=page.url)
    gateway.go_down()
    monitor = run_check(worker, monitor)
    assert monitor.status == "failing"
    assert "gateway unreachable" in monitor.last_error
    assert Snapshot.objects.get().error == monitor.last_error


@pytest.mark.parametrize("selector", ["", "main"])
def test_a_site_that_refuses_says_so_and_backs_off(
    selector: str, allow_loopback: Any, page: Any, gateway: Any, worker: Any
) -> None:
    # As on the real gateway, Chromium's error page is what the tool reads
    # (with a selector the read fails, and the whole page tells why): the
    # reason reaches the page, and the error page is no snapshot of the site.
    page.stop()
    monitor = create_monitor(url=page.url, selector=selector, interval_minutes=10)
    monitor = run_check(worker, monitor)
    assert monitor.failures == 1 and monitor.status == "failing"
    assert monitor.last_error == (
        "the page did not load: 127.0.0.1 refused to connect. (ERR_CONNECTION_REFUSED)"
    )
    assert not Snapshot.objects.filter(error="").exists()
    assert gateway.browser.open_tabs == 0
    run_check(worker, monitor)
    monitor.refresh_from_db()
    assert monitor.failures == 2 and monitor.is_backing_off
    assert monitor.next_check_at - timezone.now() > timedelta(minutes=39)


def test_a_gateway_500_says_the_reason_is_in_its_log(
    allow_loopback: Any, gateway: Any, worker: Any, monkeypatch: Any
) -> None:
    # An unknown name: our check resolves it first; past that (as the
    # gateway's own resolver fails) the gateway answers 500 with no reason.
    monkeypatch.setattr("monitors.checks.check_url", lambda url: [])
    monitor = run_check(worker, create_monitor(url="http://no-such-host.invalid/"))
    assert monitor.last_error == (
        "gateway answered 500: tool execution failed "
        "(the gateway gives no reason; its log has it)"
    )


@pytest.mark.parametrize(
    "url", ["http://10.0.0.5/", "http://169.254.169.254/latest/meta-data"]
)
def test_private_and_metadata_addresses_are_refused_before_the_gateway(
    url: str, gateway: Any, monkeypatch: Any
) -> None:
    monitor = create_monitor(url=url)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"connect reached {args[1:]}")

    # The job's body, here in the test thread, whose database connection is
    # open already: no socket may connect anywhere.
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib3.util.connection, "create_connection", refuse)
    check_monitor(monitor.pk)
    monkeypatch.undo()
    monitor.refresh_from_db()
    assert monitor.last_error.startswith("refused: ")
    assert monitor.failures == 1
    assert gateway.browser_calls == []


def test_scheduler_claims_each_due_monitor_once(
    allow_loopback: Any, page: Any, gateway: Any, worker: Any
) -> None:
    due = create_monitor(url=page.url, name="due")
    create_monitor(
        url=page.url, name="later", next_check_at=timezone.now() + timedelta(hours=1)
    )
    create_monitor(url=page.url, name="paused", is_active=False)
    now = timezone.now()
    # Due a moment after this minute's run (the last check ended at :00.08):
    # this run takes it, or a 5-minute monitor waits 6.
    almost = create_monitor(
        url=page.url, name="almost", next_check_at=now + timedelta(seconds=1)
    )
    assert sorted(Monitor.claim_due(now)) == sorted([due.pk, almost.pk])
    assert Monitor.claim_due(now) == []  # a second scheduler finds it claimed

    Monitor.objects.filter(pk=due.pk).update(next_check_at=now)
    schedule_monitor_checks.send()
    drain(worker, "default", "monitors", rounds=2)
    due.refresh_from_db()
    assert Snapshot.objects.filter(monitor=due).count() == 1
    assert due.next_check_at > timezone.now() + timedelta(minutes=55)
    assert page.requests == 1


def test_history_is_bounded(
    allow_loopback: Any, page: Any, gateway: Any, worker: Any, settings: Any
) -> None:
    settings.MONITORS_KEEP_SNAPSHOTS = 3
    monitor = create_monitor(url=page.url)
    for n in range(5):
        page.html = f"<p>version {n}</p>"
        run_check(worker, monitor)
    kept = Snapshot.objects.filter(monitor=monitor)
    # The newest three, plus older ones an alert still points at.
    assert {s.text for s in kept[:3]} == {"version 4", "version 3", "version 2"}
    assert not kept.filter(text="version 0").exists()  # the baseline, no alert
    assert Alert.objects.count() == 4


@pytest.mark.postgres
def test_two_schedulers_at_once_claim_each_monitor_once() -> None:
    import threading

    from django.db import connections

    monitors = [
        create_monitor(url="http://93.184.215.14/", name=f"m{n}") for n in range(30)
    ]
    now = timezone.now()
    start = threading.Barrier(2)
    claimed: list[list[int]] = []

    def scheduler() -> None:
        try:
            start.wait(timeout=10)
            claimed.append(Monitor.claim_due(now))
        finally:
            connections["default"].close()

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    everything = claimed[0] + claimed[1]
    assert sorted(everything) == sorted(m.pk for m in monitors)


def test_an_alert_goes_to_the_admin_channel_once(
    allow_loopback: Any, page: Any, gateway: Any, worker: Any, settings: Any
) -> None:
    settings.INBOX_DIGEST_CHANNEL = "telegram"
    settings.INBOX_DIGEST_TO = "telegram:-100200300"
    monitor = create_monitor(url=page.url, name="Shop", alerts_admin_channel=True)
    quiet = create_monitor(url=page.url, name="Quiet")
    for html in ["<p>one</p>", "<p>two</p>"]:
        page.html = html
        for each in (monitor, quiet):
            check_monitor.send(each.pk)
        drain(worker, "monitors", rounds=2)
    alert = Alert.objects.get(monitor=monitor)
    sends = [s for s in gateway.received if s.idempotency_key.startswith("monitor")]
    assert [(s.channel, s.text) for s in sends] == [
        ("telegram", f"Shop: the page changed (/monitors/{monitor.pk}/)")
    ]
    assert gateway.delivered[-1][0] == "telegram:-100200300"
    # A redelivered job sends under the same key: the gateway sends it once.
    from monitors.tasks import send_alert_to_channel

    send_alert_to_channel.send(alert.pk)
    drain(worker, "monitors")
    assert (
        len([s for s in gateway.received if s.idempotency_key.startswith("monitor")])
        == 1
    )
    assert Alert.objects.filter(monitor=quiet).count() == 1  # alerted, not sent


def test_a_name_that_now_resolves_inside_is_refused_at_check_time(
    gateway: Any, monkeypatch: Any
) -> None:
    """Saved while public; its DNS answer changed since (rebinding)."""
    monitor = create_monitor(url="https://shop.example.com/item")
    real = socket.getaddrinfo

    def resolve(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "shop.example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 443))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    check_monitor(monitor.pk)
    monitor.refresh_from_db()
    assert "10.0.0.5" in monitor.last_error and monitor.failures == 1
    assert gateway.browser_calls == []
