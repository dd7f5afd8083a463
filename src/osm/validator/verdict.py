"""Whether a policy object may be stored (pure): the mesh's own decoder judges it, so what the
validator refuses is exactly what the controller would reject, with the same message (kind,
namespace/name, field, reason). That covers upstream's rules (a TrafficTarget's destination in its own
namespace, ...) and more: RE2 path regexes, ports and weights in range, a TrafficSplit's apex in its
namespace, MeshConfig fields that are misspelt or out of range. Kinds the mesh does not model are
allowed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from osm.models.errors import ValidationError
from osm.state.decode import decode

# What the ValidatingWebhookConfiguration routes here: (group, version, plural)
VALIDATED = (
    ("access.smi-spec.io", "v1alpha3", "traffictargets"),
    ("specs.smi-spec.io", "v1alpha4", "httproutegroups"),
    ("specs.smi-spec.io", "v1alpha4", "tcproutes"),
    ("split.smi-spec.io", "v1alpha2", "trafficsplits"),
    ("policy.openservicemesh.io", "v1alpha1", "retries"),
    ("policy.openservicemesh.io", "v1alpha1", "upstreamtrafficsettings"),
    ("policy.openservicemesh.io", "v1alpha1", "ingressbackends"),
    ("policy.openservicemesh.io", "v1alpha1", "egresses"),
)
MESH_CONFIG = ("config.openservicemesh.io", "v1alpha2", "meshconfigs")


def verdict(request: Mapping[str, Any]) -> tuple[bool, str]:
    """(allowed, reason) for one AdmissionReview request."""
    if request.get("operation") not in ("CREATE", "UPDATE"):
        return True, ""
    obj = request.get("object")
    if not isinstance(obj, Mapping):
        return True, ""
    meta = obj.get("metadata")
    if isinstance(meta, Mapping) and not meta.get("namespace") and request.get("namespace"):
        obj = {**obj, "metadata": {**meta, "namespace": request["namespace"]}}
    try:
        decode(obj)
    except ValidationError as e:
        return False, str(e)
    return True, ""
