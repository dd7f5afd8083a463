"""Admission webhooks, called as the API server calls them: the Mutating and ValidatingWebhookConfigurations
stored in fakekube are matched by rule, namespaceSelector and objectSelector; each webhook gets an
AdmissionReview v1 over HTTPS, with its certificate checked against the configuration's caBundle (and
the name `<service>.<namespace>.svc`); its JSONPatch is applied, a denial refuses the request, and a
webhook that cannot be reached fails the request or is skipped by its failurePolicy."""

from __future__ import annotations

import base64
import copy
import json
import logging
import ssl
import uuid
from typing import Any

import aiohttp

from osm.testing.fakekube import patch as patches
from osm.testing.fakekube.selectors import label_selector
from osm.testing.fakekube.store import ApiError, ApiType, Obj, Store

log = logging.getLogger(__name__)

MUTATING = ("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
VALIDATING = ("admissionregistration.k8s.io", "validatingwebhookconfigurations")
MAX_RESPONSE = 10 * 1024 * 1024


def _selector(sel: Any) -> Any:
    """A LabelSelector (matchLabels, matchExpressions) as a predicate on labels; None matches all."""
    if not sel:
        return lambda labels: True
    terms = [f"{k}={v}" for k, v in (sel.get("matchLabels") or {}).items()]
    for e in sel.get("matchExpressions") or []:
        op, key, values = e.get("operator"), e.get("key"), e.get("values") or []
        if op == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            terms.append(key)
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return label_selector(",".join(terms))


def _rule_matches(rule: Obj, op: str, t: ApiType, sub: str) -> bool:
    ops = rule.get("operations") or []
    if "*" not in ops and op not in ops:
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and t.group not in groups:
        return False
    versions = rule.get("apiVersions") or []
    if "*" not in versions and t.version not in versions:
        return False
    resource = f"{t.plural}/{sub}" if sub else t.plural
    resources = rule.get("resources") or []
    return "*" in resources or resource in resources or (not sub and f"{t.plural}/*" in resources)


class Webhooks:
    def __init__(self, store: Store, services: dict[str, str]) -> None:
        self.store = store
        self.services = services  # "ns/name" -> "host:port"
        self.calls = 0

    def _configs(self, kind: tuple[str, str]) -> list[Obj]:
        return [o for (g, p, _, _), o in sorted(self.store.objects.items()) if (g, p) == kind]

    def _namespace_labels(self, t: ApiType, obj: Obj) -> dict[str, str]:
        if t.kind == "Namespace":
            return dict(obj.get("metadata", {}).get("labels") or {})
        ns = obj.get("metadata", {}).get("namespace", "")
        found = self.store.objects.get(("", "namespaces", "", ns))
        return dict((found or {}).get("metadata", {}).get("labels") or {})

    def _matching(self, kind: tuple[str, str], op: str, t: ApiType, obj: Obj, sub: str) -> list[Obj]:
        out = []
        for cfg in self._configs(kind):
            for hook in cfg.get("webhooks") or []:
                if not any(_rule_matches(r, op, t, sub) for r in hook.get("rules") or []):
                    continue
                namespaced = t.namespaced or t.kind == "Namespace"
                if namespaced and not _selector(hook.get("namespaceSelector"))(
                    self._namespace_labels(t, obj)
                ):
                    continue
                if not _selector(hook.get("objectSelector"))(obj.get("metadata", {}).get("labels") or {}):
                    continue
                out.append(hook)
        return out

    async def review(
        self, op: str, t: ApiType, obj: Obj, old: Obj | None, *, sub: str = "", dry_run: bool = False
    ) -> Obj:
        """Run the mutating webhooks, then the validating ones; the admitted object (ApiError on denial)."""
        for hook in self._matching(MUTATING, op, t, obj, sub):
            obj = await self._call(hook, op, t, obj, old, sub, dry_run, mutating=True)
        for hook in self._matching(VALIDATING, op, t, obj, sub):
            await self._call(hook, op, t, obj, old, sub, dry_run, mutating=False)
        return obj

    async def _call(
        self,
        hook: Obj,
        op: str,
        t: ApiType,
        obj: Obj,
        old: Obj | None,
        sub: str,
        dry_run: bool,
        *,
        mutating: bool,
    ) -> Obj:
        name = hook.get("name", "")
        fail = (hook.get("failurePolicy") or "Fail") == "Fail"
        timeout = float(hook.get("timeoutSeconds") or 10)
        meta = obj.get("metadata", {})
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "kind": {"group": t.group, "version": t.version, "kind": t.kind},
                "resource": {"group": t.group, "version": t.version, "resource": t.plural},
                "requestKind": {"group": t.group, "version": t.version, "kind": t.kind},
                "requestResource": {"group": t.group, "version": t.version, "resource": t.plural},
                **({"subResource": sub} if sub else {}),
                "name": meta.get("name", ""),
                "namespace": meta.get("namespace", ""),
                "operation": op,
                "userInfo": {"username": "fakekube-admin", "groups": ["system:masters"]},
                "object": obj,
                "oldObject": old,
                "dryRun": dry_run,
            },
        }
        self.calls += 1
        try:
            url, ctx, server_name = self._target(hook)
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
                session.post(url, json=review, ssl=ctx, server_hostname=server_name) as resp,
            ):
                raw = await resp.content.read(MAX_RESPONSE + 1)
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}: {raw[:200]!r}")
                body = json.loads(raw)
        except Exception as e:
            message = f'failed calling webhook "{name}": {e}'
            if fail:
                raise ApiError(500, "InternalError", f"Internal error occurred: {message}") from None
            log.warning("%s (failurePolicy Ignore)", message)
            return obj
        response = body.get("response") or {}
        if not response.get("allowed"):
            status = response.get("status") or {}
            code = int(status.get("code") or 400)
            raise ApiError(
                code,
                status.get("reason") or "BadRequest",
                f'admission webhook "{name}" denied the request: {status.get("message", "")}',
            )
        if mutating and response.get("patch"):
            if response.get("patchType") != "JSONPatch":
                raise ApiError(
                    500, "InternalError", f'webhook "{name}" returned patchType {response.get("patchType")!r}'
                )
            try:
                ops = json.loads(base64.b64decode(response["patch"]))
                obj = patches.json_patch(copy.deepcopy(obj), ops)
            except (ValueError, patches.PatchError) as e:
                raise ApiError(
                    500, "InternalError", f'webhook "{name}" returned a patch that does not apply: {e}'
                ) from None
        return obj

    def _target(self, hook: Obj) -> tuple[str, ssl.SSLContext, str | None]:
        cc = hook.get("clientConfig") or {}
        ctx = ssl.create_default_context()
        bundle = cc.get("caBundle")
        if bundle:
            ctx = ssl.create_default_context(cadata=base64.b64decode(bundle).decode())
        if cc.get("url"):
            return str(cc["url"]), ctx, None
        svc = cc.get("service") or {}
        key = f"{svc.get('namespace', '')}/{svc.get('name', '')}"
        where = self.services.get(key)
        if where is None:
            raise RuntimeError(f"service {key} is not reachable from fakekube (give it with --service)")
        path = svc.get("path") or "/"
        return f"https://{where}{path}", ctx, f"{svc.get('name')}.{svc.get('namespace')}.svc"
