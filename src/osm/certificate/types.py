"""The issued-certificate model and the provider protocol every CA backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol


class CertificateError(Exception):
    """A CA or certificate could not be loaded, created or issued; `path` names the file at fault, if any."""

    def __init__(self, reason: str, *, path: Path | None = None) -> None:
        super().__init__(f"{path}: {reason}" if path is not None else reason)
        self.reason = reason
        self.path = path


@dataclass(frozen=True, slots=True)
class Certificate:
    """A leaf certificate with its key, the CA that signed it and the bundle peers should trust."""

    cn: str
    cert_pem: bytes
    key_pem: bytes
    issuing_ca_pem: bytes
    trust_bundle_pem: bytes
    serial: int
    not_before: datetime
    not_after: datetime

    def remaining(self, now: datetime) -> timedelta:
        """Time left until expiry (negative once expired)."""
        return self.not_after - now

    @property
    def validity(self) -> timedelta:
        """The full validity window, including any clock-skew backdating of `not_before`."""
        return self.not_after - self.not_before


class CertificateProvider(Protocol):
    """A CA that issues leaf certificates."""

    def issue(self, cn: str, validity: timedelta, *, now: datetime) -> Certificate: ...

    @property
    def trust_bundle_pem(self) -> bytes: ...
