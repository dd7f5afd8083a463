"""The one error type for rejected input: it names the object, the field and the reason."""

from __future__ import annotations


class ValidationError(ValueError):
    """An object (or one of its fields) that the mesh cannot accept."""

    def __init__(self, kind: str, namespace: str, name: str, field: str, reason: str) -> None:
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.field = field
        self.reason = reason
        super().__init__(str(self))

    @property
    def object_ref(self) -> str:
        name = self.name or "<unnamed>"
        return f"{self.kind} {self.namespace}/{name}" if self.namespace else f"{self.kind} {name}"

    def __str__(self) -> str:
        where = f" field {self.field}" if self.field else ""
        return f"{self.object_ref}:{where}: {self.reason}"
