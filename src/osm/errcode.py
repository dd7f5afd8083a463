"""Numbered error codes, as upstream OSM's `pkg/errcode`: a structured `err_code` field on log lines.

Each code names one kind of problem so that logs can be searched and counted by it. Codes taken from
upstream keep upstream's number; codes for problems upstream did not name are in ranges upstream does
not use (E7xxx: manifests and local state, E8xxx: xDS protocol limits and decisions).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrCode:
    code: str
    name: str
    meaning: str


_TABLE: list[ErrCode] = []


def _code(code: str, name: str, meaning: str) -> str:
    _TABLE.append(ErrCode(code, name, meaning))
    return code


# MeshConfig
MESH_CONFIG_MISSING = _code(
    "E7000",
    "ErrMeshConfigMissing",
    "The MeshConfig the mesh reads does not exist or cannot be used: the mesh runs closed (SMI mode, "
    "no egress) until it can.",
)
MESH_CONFIG_IGNORED = _code(
    "E7001",
    "ErrMeshConfigIgnored",
    "A MeshConfig with another name or namespace than the one the mesh reads; it has no effect.",
)
# Manifests of the local source
MANIFEST_REJECTED = _code(
    "E7100",
    "ErrManifestRejected",
    "A manifest document or file was rejected; the last accepted version of its objects is kept.",
)
MANIFEST_CONFLICT = _code(
    "E7101",
    "ErrManifestConflict",
    "An object is defined twice; the definition that came first is used.",
)
MANIFEST_TOO_LARGE = _code(
    "E7102",
    "ErrManifestTooLarge",
    "A manifest file exceeds the size or object count limit and is not read.",
)
MANIFEST_TYPE = _code(
    "E7103",
    "ErrManifestFileType",
    "A manifest path is not a regular file (a FIFO, socket or device) and is not read.",
)
MANIFEST_OUTSIDE = _code(
    "E7104",
    "ErrManifestOutsideDirectory",
    "A manifest path is a symlink to a file outside the manifest directory and is not followed.",
)
STATE_FILE_CORRUPT = _code(
    "E7110",
    "ErrStateFileCorrupt",
    "A file of the control plane's state directory cannot be used; it is started afresh.",
)
POLICY_WARNING = _code(
    "E7200",
    "ErrPolicyHasNoEffect",
    "A policy refers to something that does not exist or grants nothing; it has no (or less) effect.",
)
# xDS
ADS_UNKNOWN_PROXY = _code(
    "E8000",
    "ErrUnknownProxy",
    "An xDS stream was refused: its certificate does not name a pod of the mesh.",
)
ADS_EVICTED = _code(
    "E8001",
    "ErrProxyEvicted",
    "A connected proxy's stream was ended: its pod was deleted, changed identity or left the mesh.",
)
ADS_GENERATION_FAILED = _code(
    "E8002",
    "ErrGeneratingConfig",
    "A proxy's configuration could not be built; it keeps its last configuration until it can.",
)
ADS_NACK = _code(
    "E8003",
    "ErrProxyRejectedConfig",
    "A proxy rejected (NACKed) configuration it was sent.",
)
ADS_UNKNOWN_TYPE = _code(
    "E8004",
    "ErrUnknownTypeURL",
    "A proxy asked for an xDS type the server does not serve.",
)
ADS_BAD_REQUEST = _code(
    "E8005",
    "ErrMalformedRequest",
    "An xDS request could not be decoded; the stream was ended.",
)
ADS_LIMIT = _code(
    "E8006",
    "ErrLimitReached",
    "A client reached a limit of the control plane (streams, request size, names, queued requests).",
)


def table() -> list[ErrCode]:
    """Every code, in order."""
    return sorted(_TABLE, key=lambda e: e.code)
