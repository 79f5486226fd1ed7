"""What a deployer relies on without reading the code: Procfile, Dockerfile, compose.yaml and
.env.example agree with each other and with the code. (No Docker engine runs here, so the image is
checked by reading its recipe: every command it will run exists in this project.)"""

from __future__ import annotations

import importlib
import re
import shlex
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # where the project's dependencies put their commands
DOCUMENTED = {
    line.split("=", 1)[0]
    for line in (ROOT / ".env.example").read_text().splitlines()
    if line and not line.startswith("#") and "=" in line
}
# Read by the containers of compose.yaml, not by tasklane.
THIRD_PARTY_ENV = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"}


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def assert_command_exists(argv: list[str]) -> None:
    """The executable is installed with the project, and the module/app it names imports."""
    if argv[:2] == ["sh", "-c"]:
        argv = shlex.split(argv[2])
    if argv[0] == "exec":
        argv = argv[1:]
    executable = argv[0]
    assert (BIN / executable).exists() or shutil.which(executable), executable
    if executable in ("python", "python3") and argv[1] == "-m":
        importlib.import_module(argv[2])
    elif executable == "uvicorn":
        module, _, attribute = argv[1].partition(":")
        assert callable(getattr(importlib.import_module(module), attribute))
    elif executable == "dramatiq":
        importlib.import_module(argv[1])


def test_every_env_name_the_code_reads_is_documented_and_vice_versa():
    code = (ROOT / "service" / "config.py").read_text() + (ROOT / "service" / "serve.py").read_text()
    read = set(re.findall(r'get\("([A-Z0-9_]+)"', code)) | set(re.findall(r'env\.get\("([A-Z0-9_]+)"', code))
    assert read - DOCUMENTED == set(), "read by the code but missing from .env.example"
    process_model = {"WORKER_PROCESSES", "WORKER_THREADS"}
    assert DOCUMENTED - read - process_model == set(), "documented in .env.example but read by nothing"


def test_procfile_has_every_process_type_and_its_commands_exist():
    entries = procfile()
    assert {"release", "web", "worker"} <= entries.keys()
    for command in entries.values():
        words = shlex.split(re.sub(r"\$\{[^}]+\}", "1", command))
        assert_command_exists(words)
    # `exec`: the runner's shell (dash does not exec a lone command itself) must not take the stop signal.
    assert all(command.startswith("exec ") for command in entries.values())
    assert entries["web"] == "exec python -m service.serve"  # uvicorn set up from the environment
    assert "${WORKER_PROCESSES" in entries["worker"] and "${WORKER_THREADS" in entries["worker"]
    # Bounded, so a stop always ends well within a platform's 30 s before SIGKILL.
    assert "--worker-shutdown-timeout" in entries["worker"]


def test_dockerfile_builds_a_small_non_root_image_with_a_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(stages) >= 2 and all("slim" in s for s in stages), "multi-stage on a slim base"
    final = text.split("FROM ")[-1]
    assert "build-essential" not in final, "no build tools in the final image"
    assert re.search(r"^USER (?!root)\w+", final, re.MULTILINE), "runs as a non-root user"
    assert "HEALTHCHECK" in final and "/health/live" in final
    for needed in ("service", "workers", "sql"):
        assert re.search(rf"^COPY .*\b{needed}\b", final, re.MULTILINE), needed
    assert re.search(r'^CMD \["python", "-m", "service.serve"\]$', final, re.MULTILINE), "the Procfile's web command"


def test_compose_brings_up_a_working_system():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "mailpit", "minio", "bucket", "migrate", "web", "worker"} <= services.keys()
    for name in ("postgres", "redis", "mailpit", "minio"):
        assert "healthcheck" in services[name], name
    assert "pgdata" in " ".join(services["postgres"]["volumes"])
    app = [services[n] for n in ("migrate", "web", "worker")]
    assert len({s["image"] for s in app}) == 1, "one image for every process type"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["bucket"]["condition"] == "service_completed_successfully", name
        # As on a platform: no disk shared between web and worker, uploads go through the S3 store
        assert "volumes" not in services[name], "web and worker share no volume"
        environment = services[name]["environment"]
        assert environment["UPLOAD_STORE_URL"].startswith("s3://tasklane-uploads/")
        assert environment["S3_ENDPOINT_URL"] == "http://minio:9000"
        assert environment["AWS_ACCESS_KEY_ID"] == services["minio"]["environment"]["MINIO_ROOT_USER"]
        assert environment["AWS_SECRET_ACCESS_KEY"] == services["minio"]["environment"]["MINIO_ROOT_PASSWORD"]
        assert "ports" not in services["worker"], "workers scale with --scale worker=N: no fixed port"
    assert "tasklane-uploads" in " ".join(services["bucket"]["command"])
    for service in app:
        for variable in service["environment"]:
            assert variable in DOCUMENTED, f"{variable} is not in .env.example"
        if "command" in service:
            assert_command_exists(service["command"])
    for service in services.values():
        for variable in service.get("environment", {}):
            assert variable in DOCUMENTED | THIRD_PARTY_ENV, variable
    assert services["web"]["environment"]["SMTP_HOST"] == "mailpit"
