"""`kubectl annotate` for the local mesh: the manifest directory is its API, so an annotation of a
Namespace (e.g. `osm metrics enable`) is written into the file that defines the Namespace. The file's
documents are rewritten as YAML (or JSON), so its comments are not kept; it is replaced in one rename,
so the watching control plane reads it once, whole."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from osm.local.source import (
    DEFAULT_SOURCE_LIMITS,
    YAML_SUFFIXES,
    ManifestError,
    read_manifest,
)


class AnnotateError(Exception):
    pass


def _files(root: Path) -> list[Path]:
    out = []
    for top, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(top) / f for f in sorted(files) if Path(f).suffix in YAML_SUFFIXES]
    return out


def annotate_namespace(root: Path, namespace: str, annotations: Mapping[str, str | None]) -> Path:
    """Set the Namespace's `annotations` (None removes one) in the manifest file that defines it under
    `root`; that file."""
    for path in _files(root):
        try:
            docs: list[Any] = list(yaml.safe_load_all(read_manifest(path, root, DEFAULT_SOURCE_LIMITS)))
        except (ManifestError, yaml.YAMLError, UnicodeDecodeError):
            continue  # the control plane reports such a file; it defines nothing to annotate
        for doc in docs:
            meta = doc.get("metadata") if isinstance(doc, dict) and doc.get("kind") == "Namespace" else None
            if not isinstance(meta, dict) or meta.get("name") != namespace:
                continue
            current = dict(meta.get("annotations") or {})
            for key, value in annotations.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = value
            if current:
                meta["annotations"] = current
            else:
                meta.pop("annotations", None)
            if path.suffix == ".json" and len(docs) == 1:
                text = json.dumps(docs[0], indent=2) + "\n"
            else:
                text = yaml.safe_dump_all(docs, sort_keys=False)
            target = path.resolve()  # a symlink stays one: its file inside the directory is written
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_text(text)
            os.chmod(tmp, os.stat(target).st_mode & 0o7777)
            os.replace(tmp, target)
            return path
    raise AnnotateError(f"no Namespace {namespace} in the manifests under {root}")
