"""The deployment files and docs/deploy.md agree with the settings the code reads."""

import re

from ..deployment import ROOT, compose_services

SETTINGS = ROOT / "registry" / "settings.py"
READ = re.compile(r'env_(?:str|bool|int|list)\(\s*"([A-Z0-9_]+)"')
# Read by the containers of other programs, or by prometheus_client.
NOT_SETTINGS = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "PROMETHEUS_MULTIPROC_DIR"}


def settings_variables():
    return set(READ.findall(SETTINGS.read_text()))


def test_docs_deploy_names_every_environment_variable_wharf_reads():
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", (ROOT / "docs/deploy.md").read_text()))

    assert settings_variables() - documented == set()


def test_compose_sets_only_variables_wharf_reads():
    services = compose_services("docker/compose.local-storage.yml")
    for name in ("migrate", "web", "worker", "beat"):
        unknown = set(services[name]["environment"]) - settings_variables() - NOT_SETTINGS
        assert unknown == set(), f"{name}: {unknown}"


def test_every_wharf_service_runs_the_image_and_waits_for_migrations():
    services = compose_services()
    for name in ("web", "worker", "beat"):
        assert services[name]["image"] == services["migrate"]["image"]
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["s3-init"]["condition"] == "service_completed_successfully"
    assert services["worker"]["deploy"]["replicas"] >= 2
