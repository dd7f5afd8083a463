"""Caches service certificates by CN, renews them before expiry and tells subscribers about rotations."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from osm import errcode
from osm.certificate.types import Certificate, CertificateProvider

log = logging.getLogger(__name__)

DEFAULT_SERVICE_VALIDITY = timedelta(hours=24)
DEFAULT_INTERNAL_VALIDITY = timedelta(days=3650)
# A sidecar's xDS client certificate (in its bootstrap): short-lived, renewed in place with a third left
XDS_CERT_VALIDITY = timedelta(hours=24)
RENEW_BEFORE = timedelta(seconds=30)
MAX_JITTER_SECONDS = 5.0
RETRY_AFTER_FAILURE = timedelta(seconds=5)
MIN_SLEEP_SECONDS = 0.1

Subscriber = Callable[[Certificate], None]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Entry:
    cert: Certificate
    due_at: datetime


def renewal_due_at(not_after: datetime, lifetime: timedelta, jitter: timedelta) -> datetime:
    """When a certificate issued for `lifetime` (issue time to `not_after`) should be renewed.

    Renew `RENEW_BEFORE + jitter` ahead of expiry, but never more than a quarter of the lifetime ahead:
    without the `lifetime / 4` cap, a cert valid for less than ~35 s would be due the moment it is
    issued and be renewed again and again in a tight loop (short validities are common in tests).
    """
    return not_after - min(RENEW_BEFORE + jitter, lifetime / 4)


def next_sleep_seconds(now: datetime, next_due: datetime | None, interval: float) -> float:
    """How long the rotation loop sleeps: until the next due time, at most `interval`, at least 0.1 s."""
    delay = interval if next_due is None else min(interval, (next_due - now).total_seconds())
    return max(MIN_SLEEP_SECONDS, delay)


class CertificateManager:
    """Issues and caches service certificates; rotates them through `rotate_due`."""

    def __init__(
        self,
        provider: CertificateProvider,
        *,
        clock: Callable[[], datetime],
        service_validity: timedelta = DEFAULT_SERVICE_VALIDITY,
        rng: random.Random | None = None,
        on_issued: Callable[[float], None] | None = None,
    ) -> None:
        _require_positive(service_validity)
        self._provider = provider
        self._on_issued = on_issued  # told the seconds each certificate took (osm_cert_issued_*)
        self._clock = clock
        self._service_validity = service_validity
        self._rng = rng if rng is not None else random.Random()
        self._cache: dict[str, _Entry] = {}
        self._subscribers: list[Subscriber] = []
        self._lock = threading.RLock()

    @property
    def service_validity(self) -> timedelta:
        return self._service_validity

    def now(self) -> datetime:
        return self._clock()

    def set_service_validity(self, validity: timedelta) -> None:
        """Change the validity of service certs issued from now on (existing certs are kept)."""
        _require_positive(validity)
        with self._lock:
            self._service_validity = validity

    def service_cert(self, cn: str) -> Certificate:
        """The cached cert for `cn`, issuing it on first use and reissuing it when due.

        A reissue here is a rotation like any other, so subscribers are notified of it.
        """
        with self._lock:
            now = self._clock()
            entry = self._cache.get(cn)
            if entry is not None and now < entry.due_at:
                return entry.cert
            fresh = self._issue_cached(cn, now)
        if entry is not None:
            self._notify(fresh)
        return fresh

    def issue_internal(self, cn: str, validity: timedelta = DEFAULT_INTERNAL_VALIDITY) -> Certificate:
        """Issue an uncached cert (xDS client certs, the ADS server cert)."""
        return self._issue(cn, validity, self._clock())

    def _issue(self, cn: str, validity: timedelta, now: datetime) -> Certificate:
        started = time.perf_counter()
        cert = self._provider.issue(cn, validity, now=now)
        if self._on_issued is not None:
            self._on_issued(time.perf_counter() - started)
        return cert

    def rotate_due(self) -> list[Certificate]:
        """Reissue every cached service cert that is due, notify subscribers and return the new certs.

        A cert whose reissue fails keeps its old value and is retried after a short delay.
        """
        rotated: list[Certificate] = []
        with self._lock:
            now = self._clock()
            for cn, entry in sorted(self._cache.items()):
                if now < entry.due_at:
                    continue
                try:
                    rotated.append(self._issue_cached(cn, now))
                except Exception:
                    log.exception(
                        "failed to rotate certificate %s; retrying in %s",
                        cn,
                        RETRY_AFTER_FAILURE,
                        extra={"err_code": errcode.CERT_ROTATION_FAILED},
                    )
                    self._cache[cn] = _Entry(entry.cert, now + RETRY_AFTER_FAILURE)
        for cert in rotated:
            self._notify(cert)
        return rotated

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback` with every rotated cert; returns a function that unsubscribes it."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def release(self, cn: str) -> None:
        """Forget the cached cert for `cn` (no-op if none)."""
        with self._lock:
            self._cache.pop(cn, None)

    def issued(self) -> list[Certificate]:
        """The cached service certs, sorted by CN."""
        with self._lock:
            return [self._cache[cn].cert for cn in sorted(self._cache)]

    def next_due(self) -> datetime | None:
        """The earliest renewal time among cached certs, or None if nothing is cached."""
        with self._lock:
            return min((entry.due_at for entry in self._cache.values()), default=None)

    def _issue_cached(self, cn: str, now: datetime) -> Certificate:
        cert = self._issue(cn, self._service_validity, now)
        jitter = timedelta(seconds=self._rng.uniform(0.0, MAX_JITTER_SECONDS))
        self._cache[cn] = _Entry(cert, renewal_due_at(cert.not_after, cert.not_after - now, jitter))
        return cert

    def _notify(self, cert: Certificate) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(cert)
            except Exception:
                log.exception("certificate rotation subscriber %r failed for %s", callback, cert.cn)


class RotationLoop:
    """Periodically rotates due certificates until cancelled."""

    def __init__(
        self, manager: CertificateManager, *, interval: float = 5.0, sleep: Sleep = asyncio.sleep
    ) -> None:
        if interval <= 0:
            raise ValueError(f"rotation interval must be positive, got {interval}")
        self._manager = manager
        self._interval = interval
        self._sleep = sleep

    async def run(self) -> None:
        """Rotate, then sleep until the next due time (bounded by the interval); cancellation ends it."""
        try:
            while True:
                try:
                    self._manager.rotate_due()
                except Exception:
                    log.exception("certificate rotation failed")
                delay = next_sleep_seconds(self._manager.now(), self._manager.next_due(), self._interval)
                await self._sleep(delay)
        finally:
            log.debug("certificate rotation loop stopped")


def _require_positive(validity: timedelta) -> None:
    if validity <= timedelta(0):
        raise ValueError(f"certificate validity must be positive, got {validity}")
