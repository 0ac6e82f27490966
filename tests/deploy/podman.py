"""Podman for the deploy tests: make it usable (deploy/podman-setup.sh, as root), build images once per
content, and skip with the reason only where podman cannot run containers on this machine."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
RUN = ["--runtime", "runc"]
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} … failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def ensure_podman() -> None:
    """Install and prepare podman if needed (deploy/podman-setup.sh is idempotent and quick when all is
    there); skip, with the reason, where podman cannot run containers."""
    if os.geteuid() != 0:
        if shutil.which("podman") is None or podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
            pytest.skip("podman or the debian:bookworm-slim base is missing and setting them up needs root")
    else:
        setup = subprocess.run(
            [str(ROOT / "deploy" / "podman-setup.sh")], capture_output=True, text=True, timeout=1200, check=False
        )
        if setup.returncode != 0:
            pytest.skip(f"podman could not be set up here (deploy/podman-setup.sh): {setup.stderr[-500:]}")
    probe = podman("run", "--rm", *RUN, "--network", "host", BASE_IMAGE, "true", check=False)
    if probe.returncode != 0:
        pytest.skip(f"podman cannot run containers on this machine: {probe.stderr[-500:]}")


def content_hash(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for root in paths for p in ([root] if root.is_file() else root.rglob("*"))):
        if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(".pyc"):
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def build(name: str, containerfile: Path, inputs: list[Path], context: Path = ROOT) -> str:
    """The image built from `containerfile`, reused while nothing it is built from has changed."""
    tag = f"localhost/{name}:test-{content_hash([containerfile, *inputs])}"
    if podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    args = ["build", *RUN, "--pull=never", "--network", "host", "-f", str(containerfile), "-t", tag]
    ignore = containerfile.with_name(containerfile.name + ".dockerignore")
    if ignore.exists():
        args += ["--ignorefile", str(ignore)]
    if HOST_CA.exists():  # pip inside the build trusts what this machine trusts (see docs/operations.md)
        args += ["-v", f"{HOST_CA}:/run/host-ca.crt:ro", "--build-arg", "PIP_CERT=/run/host-ca.crt"]
    podman(*args, str(context), timeout=900)
    listed = podman("images", "--format", "{{.Repository}}:{{.Tag}}", f"localhost/{name}", check=False)
    stale = [image for image in listed.stdout.split() if ":test-" in image and image != tag]
    if stale:  # earlier builds of this test image: keep only the current one
        podman("rmi", *stale, check=False)
    return tag


def build_headrace() -> str:
    """deploy/Containerfile's image for this checkout."""
    deploy = ROOT / "deploy"
    inputs = [
        deploy / "Containerfile.dockerignore",
        *(ROOT / name for name in ("pyproject.toml", "README.md", "LICENSE")),
    ]
    return build("headrace", deploy / "Containerfile", [*inputs, ROOT / "src"])
