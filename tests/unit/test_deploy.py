"""deploy/: every manifest is valid against the Kubernetes schemas, and says what it must;
every image a manifest names is built by a Dockerfile that gives it what the manifest expects.

No Docker daemon here: the Dockerfiles are read, linted (hadolint) and their commands parsed
with the real command line, not built.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tersify.cli import _parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = "1.30.0"
BUILD = re.compile(r"docker build -f (deploy/\S+\.Dockerfile) -t (\S+) \.$", re.MULTILINE)


def _documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


def _find(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in _documents() if d["kind"] == kind and d["metadata"]["name"] == name)


@pytest.mark.parametrize("doc", _documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_valid_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_triton_ready_on_health_with_a_gpu_and_autoscaled_on_queue_time() -> None:
    pod = _find("Deployment", "tersify-triton")["spec"]["template"]["spec"]
    (triton,) = pod["containers"]
    assert triton["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {p["containerPort"] for p in triton["ports"]} == {8000, 8001, 8002}
    hpa = _find("HorizontalPodAutoscaler", "tersify-triton")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "tersify-triton"
    metric = hpa["metrics"][0]["pods"]["metric"]["name"]
    rules = yaml.safe_load(_find("ConfigMap", "tersify-prometheus-adapter")["data"]["config.yaml"])
    (rule,) = rules["rules"]
    assert rule["name"]["as"] == metric and "nv_inference_queue_duration_us" in rule["metricsQuery"]


def test_serve_args_parse_and_point_at_the_triton_service() -> None:
    (serve,) = _find("Deployment", "tersify-serve")["spec"]["template"]["spec"]["containers"]
    assert serve["command"] == ["tersify", "serve"]
    args = _parser().parse_args(["serve", *serve["args"]])
    service = _find("Service", "tersify-triton")["spec"]
    grpc = next(p["port"] for p in service["ports"] if p["name"] == "grpc")
    assert args.scorer.startswith(f"grpc://tersify-triton:{grpc}")
    assert serve["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_the_validator_catches_a_broken_manifest() -> None:
    doc = _find("Deployment", "tersify-triton")
    broken = {**doc, "spec": {**doc["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


@dataclass
class Dockerfile:
    """The instructions of a Dockerfile's last stage (the image), and every RUN of all stages."""

    path: Path
    stages: list[str] = field(default_factory=list)  # each FROM's image
    runs: list[str] = field(default_factory=list)
    last: dict[str, list[str]] = field(default_factory=dict)  # instruction -> its arguments

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
        out = cls(path)
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            instruction, _, rest = line.partition(" ")
            instruction = instruction.upper()
            if instruction == "FROM":
                out.stages.append(rest.split()[0])
                out.last = {}
            elif instruction == "RUN":
                out.runs.append(rest)
            out.last.setdefault(instruction, []).append(rest.strip())
        return out

    def exec_form(self, instruction: str) -> list[str]:
        (value,) = self.last[instruction]
        words = json.loads(value)
        assert isinstance(words, list), f"{self.path.name}: {instruction} must be exec form"
        return words

    def env(self) -> dict[str, str]:
        pairs = [p for value in self.last.get("ENV", []) for p in shlex.split(value)]
        return dict(p.split("=", 1) for p in pairs)

    def tersify_commands(self) -> list[list[str]]:
        """Every ``tersify ...`` command that a RUN line runs, as argv without the name."""
        commands = []
        for run in self.runs:
            for part in re.split(r"&&|;", run):
                words = shlex.split(part)
                if words and words[0] == "tersify":
                    commands.append(words[1:])
        return commands


def _dockerfiles() -> dict[str, Dockerfile]:
    return {p.name: Dockerfile.read(p) for p in sorted(DEPLOY.glob("*.Dockerfile"))}


def _builds() -> dict[str, str]:
    """Image tag -> the Dockerfile that builds it, from docs/deploy.md's build commands."""
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    return {tag: dockerfile for dockerfile, tag in BUILD.findall(text)}


def _container(deployment: str) -> dict[str, Any]:
    (container,) = _find("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return container


def _version() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    found = re.search(r'^version = "([^"]+)"$', text, re.MULTILINE)
    assert found, "pyproject.toml has no version"
    return found.group(1)


def test_every_image_the_manifests_name_is_built_by_a_dockerfile() -> None:
    images = {
        c["image"]
        for d in _documents()
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    builds = _builds()
    assert images and images <= set(builds), f"no build command for {images - set(builds)}"
    assert {Path(f).name for f in builds.values()} == set(_dockerfiles())
    for tag, dockerfile in builds.items():
        # the Dockerfile's own header gives the same command
        assert f"docker build -f {dockerfile} -t {tag} ." in (ROOT / dockerfile).read_text()


def test_image_tags_follow_the_package_and_the_ngc_release() -> None:
    version = _version()
    builds = _builds()
    serve = _container("tersify-serve")["image"]
    assert serve.endswith(f"/serve:{version}") and builds[serve] == "deploy/serve.Dockerfile"
    triton = _container("tersify-triton")["image"]
    base = _dockerfiles()["triton.Dockerfile"].stages[-1]
    release = re.fullmatch(r"nvcr\.io/nvidia/tritonserver:(\d\d\.\d\d)-py3", base)
    assert release, base
    assert triton.endswith(f"/triton:{release.group(1)}-tersify-{version}")
    assert release.group(1) >= "24.11"  # the stub that reads numpy 2's BYTES tensors


def test_bases_are_pinned() -> None:
    for name, dockerfile in _dockerfiles().items():
        for image in dockerfile.stages:
            assert ":" in image and not image.endswith(":latest"), f"{name}: {image}"


def test_serve_entry_point_parses_and_matches_the_manifest() -> None:
    image = _dockerfiles()["serve.Dockerfile"]
    entry, default = image.exec_form("ENTRYPOINT"), image.exec_form("CMD")
    assert entry == ["tersify", "serve"]
    _parser().parse_args([*entry[1:], *default])
    container = _container("tersify-serve")
    assert container["command"] == entry
    _parser().parse_args([*entry[1:], *container["args"]])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert image.env()["TERSIFY_HOME"] == env["TERSIFY_HOME"]
    (user,) = image.last["USER"]
    assert int(user) == container["securityContext"]["runAsUser"] != 0
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == "http")
    assert image.last["EXPOSE"] == [str(port)] and f"--port={port}" in default
    assert "/healthz" in image.last["HEALTHCHECK"][0]


def test_triton_image_holds_what_the_manifest_serves() -> None:
    image = _dockerfiles()["triton.Dockerfile"]
    container = _container("tersify-triton")
    entry = image.exec_form("ENTRYPOINT")
    assert container["command"] == entry == ["tritonserver"]
    repo = next(a for a in container["args"] if a.startswith("--model-repository="))
    assert repo in image.exec_form("CMD")
    (written,) = [c for c in image.tersify_commands() if c[:2] == ["triton", "repo"]]
    out = _parser().parse_args(written).out
    assert repo == f"--model-repository={out}/onnxruntime"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert image.env()["TERSIFY_HOME"] == env["TERSIFY_HOME"]
    assert out.startswith("/opt/tersify/") and env["TERSIFY_HOME"].startswith("/opt/tersify/")
    # the volume must not hide what the image holds
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    assert not any(out.startswith(m) or env["TERSIFY_HOME"].startswith(m) for m in mounts)
    ports = {str(p["containerPort"]) for p in container["ports"]}
    assert set(image.last["EXPOSE"][0].split()) == ports


def test_every_tersify_command_in_a_dockerfile_parses() -> None:
    commands = [c for d in _dockerfiles().values() for c in d.tersify_commands()]
    assert len(commands) >= 3  # export twice, triton repo once
    for argv in commands:
        _parser().parse_args(argv)


def test_the_parser_of_dockerfiles_sees_a_broken_command() -> None:
    image = _dockerfiles()["serve.Dockerfile"]
    with pytest.raises(SystemExit):
        _parser().parse_args([*image.exec_form("ENTRYPOINT")[1:], "--no-such-flag"])


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    if not hadolint.exists():
        pytest.skip("hadolint is not installed: pip install 'tersify[dev]'")
    files = [str(p) for p in sorted(DEPLOY.glob("*.Dockerfile"))]
    done = subprocess.run(
        [str(hadolint), *files], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
