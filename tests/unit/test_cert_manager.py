from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from osm.certificate.manager import CertificateManager, RotationLoop, next_sleep_seconds, renewal_due_at
from osm.certificate.tresor import TresorCA
from osm.certificate.types import Certificate

START = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
TIMEOUT = 5.0


class FakeClock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class CountingProvider:
    """Wraps a TresorCA and records every issue call; can be told to fail."""

    def __init__(self, ca: TresorCA) -> None:
        self.ca = ca
        self.calls: list[tuple[str, timedelta]] = []
        self.fail = False

    @property
    def trust_bundle_pem(self) -> bytes:
        return self.ca.trust_bundle_pem

    def issue(self, cn: str, validity: timedelta, *, now: datetime) -> Certificate:
        if self.fail:
            raise RuntimeError("CA unavailable")
        self.calls.append((cn, validity))
        return self.ca.issue(cn, validity, now=now)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def provider() -> CountingProvider:
    return CountingProvider(TresorCA.create(now=START))


def _manager(
    provider: CountingProvider, clock: FakeClock, validity: timedelta = timedelta(hours=24)
) -> CertificateManager:
    return CertificateManager(provider, clock=clock, service_validity=validity, rng=random.Random(7))


# --- pure helpers --------------------------------------------------------------------------------------


def test_renewal_window_is_30s_plus_jitter_for_long_certs() -> None:
    expiry = START + timedelta(hours=24)
    assert renewal_due_at(expiry, timedelta(hours=24), timedelta(seconds=3)) == expiry - timedelta(seconds=33)


def test_renewal_window_capped_at_quarter_of_lifetime() -> None:
    expiry = START + timedelta(seconds=10)
    assert renewal_due_at(expiry, timedelta(seconds=10), timedelta(seconds=5)) == START + timedelta(
        seconds=7.5
    )


@pytest.mark.parametrize(
    ("next_due", "expected"),
    [
        (None, 5.0),
        (START + timedelta(seconds=2), 2.0),
        (START + timedelta(hours=1), 5.0),
        (START - timedelta(seconds=10), 0.1),
        (START + timedelta(seconds=0.01), 0.1),
    ],
)
def test_next_sleep_seconds(next_due: datetime | None, expected: float) -> None:
    assert next_sleep_seconds(START, next_due, 5.0) == pytest.approx(expected)


# --- caching and renewal -------------------------------------------------------------------------------


def test_service_cert_cached_by_cn(provider: CountingProvider, clock: FakeClock) -> None:
    manager = _manager(provider, clock)

    a1 = manager.service_cert("a.ns.cluster.local")
    clock.advance(timedelta(hours=1))
    a2 = manager.service_cert("a.ns.cluster.local")
    b = manager.service_cert("b.ns.cluster.local")

    assert a1 is a2
    assert b.cn == "b.ns.cluster.local" and b.serial != a1.serial
    assert provider.calls == [
        ("a.ns.cluster.local", timedelta(hours=24)),
        ("b.ns.cluster.local", timedelta(hours=24)),
    ]
    assert a1.not_after == START + timedelta(hours=24)


def test_service_cert_reissued_when_due(provider: CountingProvider, clock: FakeClock) -> None:
    manager = _manager(provider, clock)
    first = manager.service_cert("a.b")

    clock.advance(timedelta(hours=24) - timedelta(seconds=36))  # before the 30-35 s window
    assert manager.service_cert("a.b") is first
    clock.advance(timedelta(seconds=6))  # 30 s before expiry: always due
    second = manager.service_cert("a.b")

    assert second.serial != first.serial
    assert second.not_after == clock.now + timedelta(hours=24)
    assert manager.service_cert("a.b") is second


def test_next_due_within_jitter_window(provider: CountingProvider, clock: FakeClock) -> None:
    manager = _manager(provider, clock)
    assert manager.next_due() is None

    cert = manager.service_cert("a.b")
    due = manager.next_due()

    assert due is not None
    assert cert.not_after - timedelta(seconds=35) <= due <= cert.not_after - timedelta(seconds=30)


def test_jitter_differs_between_certs(provider: CountingProvider, clock: FakeClock) -> None:
    manager = _manager(provider, clock)
    dues = set()
    for i in range(5):
        manager.service_cert(f"svc{i}.ns")
        due = manager.next_due()
        assert due is not None
        dues.add(due)
        manager.release(f"svc{i}.ns")

    assert len(dues) > 1


def test_short_validity_cert_not_reissued_immediately(provider: CountingProvider, clock: FakeClock) -> None:
    manager = _manager(provider, clock, validity=timedelta(seconds=10))
    first = manager.service_cert("a.b")

    assert manager.rotate_due() == []
    clock.advance(timedelta(seconds=7))
    assert manager.rotate_due() == []
    assert manager.service_cert("a.b") is first
    clock.advance(timedelta(seconds=0.5))  # 7.5 s = validity - validity/4
    rotated = manager.rotate_due()

    assert [c.cn for c in rotated] == ["a.b"]
    assert len(provider.calls) == 2


def test_rotate_due_only_touches_due_certs(provider: CountingProvider, clock: FakeClock) -> None:
    manager = _manager(provider, clock)
    old = manager.service_cert("old.ns")
    clock.advance(timedelta(hours=12))
    young = manager.service_cert("young.ns")
    clock.advance(timedelta(hours=12))

    rotated = manager.rotate_due()

    assert [c.cn for c in rotated] == ["old.ns"]
    assert rotated[0].serial != old.serial
    assert manager.issued() == [rotated[0], young]
    assert manager.rotate_due() == []


def test_set_service_validity_applies_to_new_issues_only(
    provider: CountingProvider, clock: FakeClock
) -> None:
    manager = _manager(provider, clock)
    old = manager.service_cert("old.ns")

    manager.set_service_validity(timedelta(hours=1))
    new = manager.service_cert("new.ns")

    assert manager.service_cert("old.ns") is old
    assert old.not_after == START + timedelta(hours=24)
    assert new.not_after == START + timedelta(hours=1)
    with pytest.raises(ValueError):
        manager.set_service_validity(timedelta(0))


def test_issue_internal_not_cached(provider: CountingProvider, clock: FakeClock) -> None:
    manager = _manager(provider, clock)

    a = manager.issue_internal("ads.osm-system")
    b = manager.issue_internal("ads.osm-system", timedelta(hours=2))

    assert a.serial != b.serial
    assert a.not_after == START + timedelta(days=3650)
    assert b.not_after == START + timedelta(hours=2)
    assert manager.issued() == []
    assert manager.next_due() is None


def test_release_forgets(provider: CountingProvider, clock: FakeClock) -> None:
    manager = _manager(provider, clock)
    first = manager.service_cert("a.b")

    manager.release("a.b")
    manager.release("never.issued")

    assert manager.issued() == []
    assert manager.next_due() is None
    assert manager.service_cert("a.b").serial != first.serial


def test_issued_sorted_by_cn(provider: CountingProvider, clock: FakeClock) -> None:
    manager = _manager(provider, clock)
    for cn in ("c.ns", "a.ns", "b.ns"):
        manager.service_cert(cn)

    assert [c.cn for c in manager.issued()] == ["a.ns", "b.ns", "c.ns"]


def test_issued_certs_chain_to_provider_root(provider: CountingProvider, clock: FakeClock) -> None:
    cert = _manager(provider, clock).service_cert("a.b")

    x509.load_pem_x509_certificate(cert.cert_pem).verify_directly_issued_by(provider.ca.root_cert)
    assert cert.trust_bundle_pem == provider.trust_bundle_pem


# --- subscribers ---------------------------------------------------------------------------------------


def test_subscribers_notified_once_per_rotated_cert(provider: CountingProvider, clock: FakeClock) -> None:
    manager = _manager(provider, clock)
    manager.service_cert("a.ns")
    manager.service_cert("b.ns")
    seen: list[Certificate] = []
    manager.subscribe(seen.append)

    clock.advance(timedelta(hours=24))
    rotated = manager.rotate_due()

    assert sorted(c.cn for c in rotated) == ["a.ns", "b.ns"]
    assert seen == rotated


def test_no_notification_on_first_issue_but_on_lazy_reissue(
    provider: CountingProvider, clock: FakeClock
) -> None:
    manager = _manager(provider, clock)
    seen: list[Certificate] = []
    manager.subscribe(seen.append)

    manager.service_cert("a.b")
    assert seen == []
    clock.advance(timedelta(hours=24))
    reissued = manager.service_cert("a.b")

    assert seen == [reissued]


def test_raising_subscriber_does_not_block_others(
    provider: CountingProvider, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    manager = _manager(provider, clock)
    manager.service_cert("a.b")
    seen: list[str] = []

    def broken(cert: Certificate) -> None:
        raise RuntimeError("boom")

    manager.subscribe(broken)
    manager.subscribe(lambda cert: seen.append(cert.cn))
    clock.advance(timedelta(hours=24))

    with caplog.at_level(logging.ERROR, logger="osm.certificate.manager"):
        rotated = manager.rotate_due()

    assert [c.cn for c in rotated] == ["a.b"]
    assert seen == ["a.b"]
    errors = [r.exc_info[1] for r in caplog.records if r.exc_info is not None]
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError) and str(errors[0]) == "boom"


def test_unsubscribe_stops_notifications(provider: CountingProvider, clock: FakeClock) -> None:
    manager = _manager(provider, clock)
    manager.service_cert("a.b")
    seen: list[Certificate] = []
    unsubscribe = manager.subscribe(seen.append)

    unsubscribe()
    unsubscribe()  # idempotent
    clock.advance(timedelta(hours=24))
    manager.rotate_due()

    assert seen == []


def test_failed_rotation_keeps_old_cert_and_retries(provider: CountingProvider, clock: FakeClock) -> None:
    manager = _manager(provider, clock)
    old = manager.service_cert("a.b")
    clock.advance(timedelta(hours=24) - timedelta(seconds=30))
    provider.fail = True

    assert manager.rotate_due() == []
    assert manager.issued() == [old]
    assert manager.next_due() == clock.now + timedelta(seconds=5)

    provider.fail = False
    clock.advance(timedelta(seconds=5))
    assert [c.cn for c in manager.rotate_due()] == ["a.b"]


# --- rotation loop -------------------------------------------------------------------------------------


async def test_rotation_loop_rotates_and_stops_on_cancel(
    provider: CountingProvider, clock: FakeClock
) -> None:
    manager = _manager(provider, clock, validity=timedelta(seconds=60))
    first = manager.service_cert("a.b")
    rotated: list[Certificate] = []
    manager.subscribe(rotated.append)
    sleeps: list[float] = []
    done = asyncio.Event()

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(timedelta(seconds=seconds))
        if rotated:
            done.set()
        await asyncio.sleep(0)

    task = asyncio.create_task(RotationLoop(manager, interval=5.0, sleep=fake_sleep).run())
    try:
        await asyncio.wait_for(done.wait(), TIMEOUT)
    finally:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, TIMEOUT)

    assert task.cancelled()
    assert rotated[0].serial != first.serial
    assert all(0.1 <= s <= 5.0 for s in sleeps)
    # 60 s cert: due at 45 s, so the loop slept nine 5 s intervals before rotating it.
    assert sleeps[:9] == [5.0] * 9


async def test_rotation_loop_survives_rotate_errors(
    provider: CountingProvider, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = _manager(provider, clock)
    calls = 0

    def flaky_rotate() -> list[Certificate]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("transient")
        return []

    monkeypatch.setattr(manager, "rotate_due", flaky_rotate)
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) >= 3:
            raise asyncio.CancelledError
        await asyncio.sleep(0)

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(RotationLoop(manager, sleep=fake_sleep).run(), TIMEOUT)

    assert calls == 3
    assert sleeps == [5.0, 5.0, 5.0]


def test_rotation_loop_rejects_bad_interval(provider: CountingProvider, clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        RotationLoop(_manager(provider, clock), interval=0)
