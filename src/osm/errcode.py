"""Numbered error codes, as upstream OSM's `pkg/errcode`: a structured `err_code` field on log lines.

Each code names one kind of problem so that logs can be searched and counted by it. Upstream's codes
keep upstream's numbers and names (the table `osm support error-info` prints); problems upstream had
no code for have codes in E9xxx, a range upstream does not use (E90xx: MeshConfig and manifests,
E91xx: the xDS server's protocol decisions and limits; E92xx: the Kubernetes source).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrCode:
    code: str
    name: str
    meaning: str


_UPSTREAM: tuple[tuple[str, str, str], ...] = (
    (
        "E1000",
        "ErrInvalidCLIArgument",
        "A command-line flag or argument given to the program was not valid.",
    ),
    (
        "E1001",
        "ErrSettingLogLevel",
        "The requested logging level could not be applied.",
    ),
    (
        "E1002",
        "ErrFetchingControllerPod",
        "The system could not look up the osm-controller pod object in Kubernetes.",
    ),
    (
        "E1003",
        "ErrFetchingInjectorPod",
        "The system could not look up the osm-injector pod object in Kubernetes.",
    ),
    (
        "E1004",
        "ErrStartingIngressClient",
        "The client the controller uses to watch Ingress resources did not start.",
    ),
    (
        "E1005",
        "ErrStartingReconciler",
        "The reconciler client that watches for changes/deletions of OSM CRDs and the mutating "
        "webhook did not start.",
    ),
    (
        "E2000",
        "ErrDedupEgressTrafficMatches",
        "Removing duplicate egress traffic-match attributes (port, protocol, IP...) failed, likely "
        "due to conflicting egress policies, so those policies were not processed.",
    ),
    (
        "E2001",
        "ErrDedupEgressClusterConfigs",
        "Removing duplicate upstream clusters for an egress destination failed, likely due to "
        "conflicting egress policies, so those policies were not processed.",
    ),
    (
        "E2002",
        "ErrInvalidEgressIPRange",
        "An egress policy gave an IP range that is not valid CIDR notation (RFC 4632); that range "
        "was skipped.",
    ),
    (
        "E2003",
        "ErrInvalidEgressMatches",
        "An egress policy contained an invalid match, which was skipped when applying the policy.",
    ),
    (
        "E2004",
        "ErrEgressSMIHTTPRouteGroupNotFound",
        "An egress policy references an SMI HTTPRouteGroup as a match that does not exist (it must "
        "live in the policy's namespace).",
    ),
    (
        "E2005",
        "ErrFetchingSMIHTTPRouteGroupForTrafficTarget",
        "An HTTPRouteGroup used as a match by an SMI TrafficTarget could not be retrieved, so that "
        "TrafficTarget was ignored (matches must be in the same namespace).",
    ),
    (
        "E2006",
        "ErrSMIHTTPRouteGroupNoMatch",
        "An SMI HTTPRouteGroup has no matches defined, so it is invalid and was ignored.",
    ),
    (
        "E2007",
        "ErrMultipleSMISplitPerServiceUnsupported",
        "More than one SMI TrafficSplit targets the same apex (root) service; only the first is "
        "used and the rest are ignored.",
    ),
    (
        "E2008",
        "ErrAddingRouteToOutboundTrafficPolicy",
        "A route match could not be added to the internal outbound traffic policy; that route was skipped.",
    ),
    (
        "E2009",
        "ErrGettingInboundTrafficTargets",
        "The inbound TrafficTargets (with their routes) for a destination service identity could "
        "not be built.",
    ),
    (
        "E2010",
        "ErrInvalidDestinationKind",
        "An SMI TrafficTarget has a destination of an unsupported/invalid kind.",
    ),
    (
        "E2011",
        "ErrInvalidSourceKind",
        "An SMI TrafficTarget has a source of an unsupported/invalid kind.",
    ),
    (
        "E3000",
        "ErrEndpointsNotFound",
        "Resolving a service's FQDN yielded zero reachable endpoints.",
    ),
    (
        "E3001",
        "ErrMarshallingKubernetesResource",
        "Serializing (marshalling) a Kubernetes object failed.",
    ),
    (
        "E3002",
        "ErrUnmarshallingKubernetesResource",
        "Deserializing (unmarshalling) a Kubernetes object failed.",
    ),
    (
        "E4000",
        "ErrFetchingCertSecret",
        "The Kubernetes Secret holding a certificate could not be fetched.",
    ),
    (
        "E4001",
        "ErrObtainingCertFromSecret",
        "The named certificate key was missing or unreadable in the Secret's data.",
    ),
    (
        "E4002",
        "ErrObtainingPrivateKeyFromSecret",
        "The named private-key entry was missing or unreadable in the Secret's data.",
    ),
    (
        "E4003",
        "ErrObtainingCertExpirationFromSecret",
        "The named certificate-expiration entry was missing or unreadable in the Secret's data.",
    ),
    (
        "E4004",
        "ErrParsingCertExpiration",
        "The certificate expiration value read from the Secret could not be parsed.",
    ),
    (
        "E4005",
        "ErrCreatingCertSecret",
        "Creating the Secret to store a certificate failed.",
    ),
    (
        "E4006",
        "ErrGeneratingPrivateKey",
        "Generating a private key failed.",
    ),
    (
        "E4007",
        "ErrEncodingKeyDERtoPEM",
        "A private key could not be converted from DER to PEM encoding.",
    ),
    (
        "E4008",
        "ErrCreatingCertReq",
        "Creating the certificate request needed to issue a certificate failed.",
    ),
    (
        "E4009",
        "ErrCreatingRootCert",
        "While setting up a new certificate authority, its root certificate could not be obtained.",
    ),
    (
        "E4010",
        "ErrEncodingCertDERtoPEM",
        "A certificate could not be converted from DER to PEM encoding.",
    ),
    (
        "E4011",
        "ErrDecodingPEMCert",
        "A PEM-encoded certificate could not be decoded.",
    ),
    (
        "E4012",
        "ErrDecodingPEMPrivateKey",
        "The PEM private key of the CA's root certificate could not be decoded.",
    ),
    (
        "E4013",
        "ErrIssuingCert",
        "The certificate manager failed to issue a certificate for an unspecified reason.",
    ),
    (
        "E4014",
        "ErrCreatingCert",
        "Creating the certificate to be issued by the certificate manager failed.",
    ),
    (
        "E4015",
        "ErrInvalidCA",
        "The certificate authority supplied when issuing a certificate was not valid.",
    ),
    (
        "E4016",
        "ErrRotatingCert",
        "A certificate could not be rotated (renewed).",
    ),
    (
        "E4100",
        "ErrPubSubMessageFormat",
        "An object could not be converted into a PubSub message.",
    ),
    (
        "E4150",
        "ErrMeshConfigInformerInitCache",
        "The MeshConfig informer's initial cache sync did not complete.",
    ),
    (
        "E4151",
        "ErrMeshConfigStructCasting",
        "An object could not be type-cast to a MeshConfig.",
    ),
    (
        "E4152",
        "ErrMeshConfigFetchFromCache",
        "The MeshConfig for a given key could not be retrieved from the informer cache.",
    ),
    (
        "E4153",
        "ErrMeshConfigMarshaling",
        "The MeshConfig could not be serialized into another format (e.g. JSON).",
    ),
    (
        "E5000",
        "ErrMarshallingXDSResource",
        "An xDS resource could not be serialized.",
    ),
    (
        "E5001",
        "ErrParsingXDSCertCN",
        "The common name of a proxy's xDS certificate could not be parsed (expected <proxy-"
        "UUID>.<kind>.<proxy-identity>).",
    ),
    (
        "E5002",
        "ErrFetchingPodFromCert",
        "No pod has an osm-proxy-uuid label matching the UUID from the xDS certificate CN, so the "
        "proxy's pod was not found.",
    ),
    (
        "E5003",
        "ErrPodBelongsToMultipleServices",
        "A meshed pod is selected by more than one service; by OSM convention only one is allowed, "
        "so its Envoy is not programmed and it stays out of the mesh.",
    ),
    (
        "E5004",
        "ErrGettingProxyFromPod",
        "ADS could not build its proxy object from a pod's osm-proxy-uuid label.",
    ),
    (
        "E5005",
        "ErrGRPCConnectionFailed",
        "A gRPC connection failure means ADS can no longer receive DiscoveryRequests.",
    ),
    (
        "E5006",
        "ErrSendingDiscoveryResponse",
        "ADS failed to send a DiscoveryResponse to the Envoy proxy.",
    ),
    (
        "E5007",
        "ErrGeneratingReqResource",
        "The resources for a DiscoveryResponse could not be generated.",
    ),
    (
        "E5008",
        "ErrRecordingSnapshot",
        "The aggregated resources for a response could not be stored as a new snapshot in the xDS ADS cache.",
    ),
    (
        "E5009",
        "ErrGettingServiceIdentity",
        "The service identity encoded in the xDS certificate CN could not be obtained while "
        "building SDS requests for the proxy's secrets.",
    ),
    (
        "E5010",
        "ErrStartingADSServer",
        "The Aggregated Discovery Service (ADS) gRPC server in the controller did not start.",
    ),
    (
        "E5011",
        "ErrInitializingProxy",
        "The internal object for a newly connected Envoy proxy could not be initialized.",
    ),
    (
        "E5012",
        "ErrMismatchedServiceAccount",
        "The ServiceAccount in the Envoy NodeID differs from the one in the proxy certificate, so "
        "the proxy was refused from the mesh.",
    ),
    (
        "E5013",
        "ErrGRPCStreamClosedByProxy",
        "The proxy closed its gRPC stream, so no more DiscoveryRequests arrive and the aggregated-"
        "resources stream for it was ended.",
    ),
    (
        "E5014",
        "ErrUnexpectedXDSRequest",
        "A proxy that has not finished initialization (first request not yet received) was due a "
        "broadcast update; the update was skipped for it.",
    ),
    (
        "E5015",
        "ErrInvalidXDSTypeURI",
        "A DiscoveryRequest asked for a resource with an invalid TypeURL.",
    ),
    (
        "E5016",
        "ErrParsingDiscoveryReqVersion",
        "ADS could not parse the version in a DiscoveryRequest.",
    ),
    (
        "E5017",
        "ErrGettingOrgDstEgressCluster",
        "An egress Envoy cluster sending traffic to its original destination (used when no Host is "
        "given) could not be built.",
    ),
    (
        "E5018",
        "ErrGettingDNSEgressCluster",
        "An egress Envoy cluster routing by a DNS-resolved Host could not be built.",
    ),
    (
        "E5019",
        "ErrObtainingUpstreamServiceCluster",
        "The Envoy cluster for an upstream service could not be built.",
    ),
    (
        "E5020",
        "ErrFetchingServiceList",
        "The meshed services belonging to an Envoy proxy could not be listed.",
    ),
    (
        "E5021",
        "ErrDuplicateClusters",
        "Several Envoy clusters share the same name; the duplicates are left out of the CDS response.",
    ),
    (
        "E5022",
        "ErrUnsupportedProtocolForService",
        "A port's application protocol is unsupported for ingress, so no ingress filter chain was "
        "made for that port.",
    ),
    (
        "E5023",
        "ErrBuildingRBACPolicy",
        "An xDS RBAC policy could not be produced from a traffic target policy.",
    ),
    (
        "E5024",
        "ErrIngressFilterChain",
        "An xDS filter chain for ingress could not be built.",
    ),
    (
        "E5025",
        "ErrBuildingRBACPolicyForRoute",
        "A traffic policy rule could not be turned into an RBAC rule on the proxy; that rule was skipped.",
    ),
    (
        "E5026",
        "ErrUnmarshallingSDSCert",
        "An SDS certificate resource could not be deserialized and was skipped.",
    ),
    (
        "E5027",
        "ErrGettingServiceCertSecret",
        "An xDS secret carrying a TLS certificate could not be obtained; that secret request was skipped.",
    ),
    (
        "E5028",
        "ErrGettingMeshService",
        "An SDS secret does not map to any MeshService.",
    ),
    (
        "E5029",
        "ErrGettingK8sServiceAccount",
        "An SDS secret does not map to any ServiceAccount.",
    ),
    (
        "E5030",
        "ErrSDSCertMismatch",
        "The identity in an SDS certificate request differs from the proxy's own identity; the "
        "request was skipped.",
    ),
    (
        "E6100",
        "ErrMarshallingProtoToYAML",
        "A protobuf message could not be rendered as YAML.",
    ),
    (
        "E6101",
        "ErrParsingMutatingWebhookCert",
        "The mutating webhook's certificate could not be parsed, so its HTTP server was not started.",
    ),
    (
        "E6102",
        "ErrStartingInjectionWebhookHTTPServer",
        "The HTTP server for the sidecar-injection webhook did not start.",
    ),
    (
        "E6103",
        "ErrDecodingAdmissionReqBody",
        "An AdmissionRequest could not be decoded.",
    ),
    (
        "E6104",
        "ErrParsingReqTimeout",
        "The timeout in an AdmissionRequest could not be parsed.",
    ),
    (
        "E6105",
        "ErrInvalidAdmissionReqHeader",
        "An AdmissionRequest had an invalid header (unsupported content type).",
    ),
    (
        "E6106",
        "ErrWritingAdmissionResp",
        "The AdmissionResponse could not be written back.",
    ),
    (
        "E6107",
        "ErrNilAdmissionReq",
        "The received AdmissionRequest was empty/nil.",
    ),
    (
        "E6108",
        "ErrDeterminingPodInjectionEnablement",
        "Could not decide whether the pod in the AdmissionRequest should get sidecar injection.",
    ),
    (
        "E6109",
        "ErrDeterminingNamespaceInjectionEnablement",
        "Could not decide whether the namespace in the AdmissionRequest is enabled for sidecar injection.",
    ),
    (
        "E6110",
        "ErrDeterminingPodPortExclusions",
        "A pod's outbound port exclusions could not be read, so none were added to the init container.",
    ),
    (
        "E6111",
        "ErrReadingAdmissionReqBody",
        "The AdmissionRequest body could not be read.",
    ),
    (
        "E6112",
        "ErrNilAdmissionReqBody",
        "The AdmissionRequest body was nil.",
    ),
    (
        "E6113",
        "ErrCreatingMutatingWebhook",
        "The MutatingWebhookConfiguration could not be created.",
    ),
    (
        "E6114",
        "ErrUpdatingMutatingWebhook",
        "The MutatingWebhookConfiguration could not be updated.",
    ),
    (
        "E6700",
        "ErrShuttingDownValidatingWebhookHTTPServer",
        "Something went wrong while stopping the validating webhook HTTP server.",
    ),
    (
        "E6701",
        "ErrStartingValidatingWebhookHTTPServer",
        "The validating webhook HTTP server did not start.",
    ),
    (
        "E6702",
        "ErrParsingValidatingWebhookCert",
        "The validating webhook's certificate could not be parsed, so its HTTP server was not started.",
    ),
    (
        "E6703",
        "ErrCreatingValidatingWebhook",
        "The ValidatingWebhookConfiguration could not be created.",
    ),
    (
        "E7000",
        "ErrReconcilingUpdatedCRD",
        "The reconciler failed to restore a modified OSM CRD to its original state.",
    ),
    (
        "E7001",
        "ErrReconcilingDeletedCRD",
        "The reconciler failed to re-create a deleted OSM CRD.",
    ),
    (
        "E7002",
        "ErrReconcilingUpdatedMutatingWebhook",
        "The reconciler failed to restore a modified mutating webhook to its original state.",
    ),
    (
        "E7003",
        "ErrReconcilingDeletedMutatingWebhook",
        "The reconciler failed to re-create a deleted mutating webhook.",
    ),
    (
        "E7004",
        "ErrReconcilingUpdatedValidatingWebhook",
        "The reconciler failed to restore a modified validating webhook to its original state.",
    ),
    (
        "E7005",
        "ErrReconcilingDeletedValidatingWebhook",
        "The reconciler failed to re-create a deleted validating webhook.",
    ),
)
_TABLE: dict[str, ErrCode] = {c: ErrCode(c, n, m) for c, n, m in _UPSTREAM}


def _code(code: str, name: str, meaning: str = "") -> str:
    if code in _TABLE:
        if meaning:
            raise ValueError(f"{code} is upstream's {_TABLE[code].name}")
        return code
    _TABLE[code] = ErrCode(code, name, meaning)
    return code


# Upstream's codes this program logs with.
MESH_CONFIG_MISSING = _code("E4152", "ErrMeshConfigFetchFromCache")
CERT_ROTATION_FAILED = _code("E4016", "ErrRotatingCert")
ADS_UNKNOWN_PROXY = _code("E5002", "ErrFetchingPodFromCert")
ADS_GENERATION_FAILED = _code("E5007", "ErrGeneratingReqResource")
ADS_UNKNOWN_TYPE = _code("E5015", "ErrInvalidXDSTypeURI")
POLICY_WARNING = _code("E2009", "ErrGettingInboundTrafficTargets")

# MeshConfig and the local source's manifests
MESH_CONFIG_IGNORED = _code(
    "E9000",
    "ErrMeshConfigIgnored",
    "A MeshConfig with another name or namespace than the one the mesh reads; it has no effect.",
)
MANIFEST_REJECTED = _code(
    "E9001",
    "ErrManifestRejected",
    "A manifest document or file was rejected; the last accepted version of its objects is kept.",
)
MANIFEST_CONFLICT = _code(
    "E9002", "ErrManifestConflict", "An object is defined twice; the definition that came first is used."
)
MANIFEST_TOO_LARGE = _code(
    "E9003",
    "ErrManifestTooLarge",
    "A manifest file exceeds the size or object count limit and is not read.",
)
MANIFEST_TYPE = _code(
    "E9004",
    "ErrManifestFileType",
    "A manifest path is not a regular file (a FIFO, socket or device) and is not read.",
)
MANIFEST_OUTSIDE = _code(
    "E9005",
    "ErrManifestOutsideDirectory",
    "A manifest path is a symlink to a file outside the manifest directory and is not followed.",
)
STATE_FILE_CORRUPT = _code(
    "E9006",
    "ErrStateFileCorrupt",
    "A file of the control plane's state directory cannot be used; it is started afresh.",
)
# The xDS server
ADS_EVICTED = _code(
    "E9100",
    "ErrProxyEvicted",
    "A connected proxy's stream was ended: its pod was deleted, changed identity or left the mesh, or its "
    "certificate expired.",
)
ADS_NACK = _code("E9101", "ErrProxyRejectedConfig", "A proxy rejected (NACKed) configuration it was sent.")
ADS_BAD_REQUEST = _code(
    "E9102", "ErrMalformedRequest", "An xDS request could not be decoded; the stream was ended."
)
ADS_LIMIT = _code(
    "E9103",
    "ErrLimitReached",
    "A client reached a limit of the control plane (streams, request size, names, queued requests).",
)

# The Kubernetes source
KUBE_RESOURCE_ABSENT = _code(
    "E9200",
    "ErrResourceNotServed",
    "The API server does not serve a resource the mesh watches (its CRD is not installed); the mesh runs "
    "without those objects, closed, and lists them again later.",
)
KUBE_API_FAILED = _code(
    "E9201",
    "ErrKubernetesAPI",
    "A list or watch of the API server failed; it is retried with backoff and the last state is kept.",
)
RECONCILED_WEBHOOK = _code("E7002", "ErrReconcilingUpdatedMutatingWebhook")
KUBE_OBJECT_REJECTED = _code(
    "E9202",
    "ErrObjectRejected",
    "An object read from the API server is invalid; the last accepted version of it is kept.",
)


def table() -> list[ErrCode]:
    """Every code, in order."""
    return [_TABLE[c] for c in sorted(_TABLE)]


def lookup(code: str) -> ErrCode | None:
    return _TABLE.get(code.upper())
