"""The deployment files under deploy/ checked against the code they deploy.

No Docker or Kubernetes here: every YAML file is parsed, and what matters is
held to the code's own values — probe paths against the app's routes, the port,
every environment variable against the names the server reads (and the whole
environment through ServerConfig.from_env), the drain against the shutdown
timings, the autoscaling metric against streamserver/metrics.py, selectors
against labels, compose flags against the CLI. The nginx config is checked by the
real nginx (``nginx -t``) with loopback upstreams in a temporary directory.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamserver.config import DELAY_MS_MAX, ServerConfig

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose" / "docker-compose.yml"
NGINX_DIR = DEPLOY / "nginx"
NGINX = "/usr/sbin/nginx"  # Debian's nginx-light (scripts/test.sh installs it)

# docs/benchmarks.md "Eight sessions after the memory work, and with recording":
# peak RSS at 8 live sessions on 2 cores (tiny.en int8), the largest of three runs.
PEAK_RSS_MB_AT_8 = 483
SESSIONS_PER_2_CORES = 8
# Variables the server does not read itself but its libraries do.
LIBRARY_ENV = {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
               "AWS_DEFAULT_REGION", "AWS_REGION", "PGPASSWORD"}
# Stand-ins for values that come from the Secret or the downward API.
SECRET_STAND_INS = {
    "STREAMSERVER_API_KEYS": "k" * 32,
    "STREAMSERVER_CLUSTER_SECRET": "c" * 32,
    "STREAMSERVER_REDIS_URL": "redis://redis:6379/0",
    "STREAMSERVER_DATABASE_URL": "postgresql://streamserver@postgres:5432/streamserver",
    "STREAMSERVER_NODE_ID": "streamserver-7d9c5b6f4-x2x9q",
}


def _load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _manifest(name: str, kind: str) -> dict[str, Any]:
    (doc,) = [d for d in _load_all(K8S / name) if d.get("kind") == kind]
    return dict(doc)


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (c,) = [c for c in deployment["spec"]["template"]["spec"]["containers"]
            if c["name"] == "streamserver"]
    return dict(c)


def _env_values(env: list[dict[str, Any]]) -> dict[str, str]:
    """Plain values as given; secret and field references as stand-ins."""
    out = {}
    for item in env:
        if "value" in item:
            out[item["name"]] = str(item["value"])
        elif item["name"] in SECRET_STAND_INS:
            out[item["name"]] = SECRET_STAND_INS[item["name"]]
    return out


def _server_env_names() -> set[str]:
    """Every STREAMSERVER_* name the package reads: string constants in its source,
    and NAME_FILE for each ``_secret_from("NAME")`` (a secret may come as a file)."""
    names: set[str] = set()
    for path in (ROOT / "streamserver").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(
                    r"STREAMSERVER_[A-Z0-9_]+", node.value):
                names.add(node.value)
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "_secret_from" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                names.add(f"{node.args[0].value}_FILE")
    return names


def _config_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                 **overrides: Any) -> ServerConfig:
    for name in [n for n in __import__("os").environ if n.startswith("STREAMSERVER_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return ServerConfig.from_env(**overrides)


def _routed_paths() -> set[str]:
    from starlette.routing import Route

    from streamserver.server.app import create_app

    app = create_app(ServerConfig(), engines=object())  # type: ignore[arg-type]  # not started
    return {r.path for r in app.routes if isinstance(r, Route)}


def _uvicorn_graceful_s() -> float:
    """uvicorn's timeout_graceful_shutdown as cli.py passes it (after the drain)."""
    found = re.findall(r"timeout_graceful_shutdown=(\d+(?:\.\d+)?)",
                       (ROOT / "streamserver" / "cli.py").read_text())
    assert len(found) == 1, "cli.py should pass timeout_graceful_shutdown once"
    return float(found[0])


def _drain_worst_case_s(cfg: ServerConfig) -> float:
    """SIGTERM to exit: the sessions' drain (shutdown_grace_s), their close
    (DRAIN_CLOSE_S), then uvicorn's own graceful shutdown of HTTP requests."""
    from streamserver.server.app import DRAIN_CLOSE_S

    return cfg.shutdown_grace_s + DRAIN_CLOSE_S + _uvicorn_graceful_s()


def _memory_mib(quantity: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Mi|Gi|M|G)", quantity)
    assert m, f"memory quantity {quantity!r}"
    factor = {"Mi": 1.0, "Gi": 1024.0, "M": 1e6 / 2**20, "G": 1e9 / 2**20}[m.group(2)]
    return float(m.group(1)) * factor


def _prestop_sleep_s(container: dict[str, Any]) -> float:
    pre = container["lifecycle"]["preStop"]
    if "sleep" in pre:
        return float(pre["sleep"]["seconds"])
    command = pre["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, command
    return float(command[1])


# ---------------------------------------------------------------- every file


def test_every_yaml_file_under_deploy_parses() -> None:
    files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    names = {str(f.relative_to(DEPLOY)) for f in files}
    assert {"kubernetes/deployment.yaml", "kubernetes/service.yaml", "kubernetes/pdb.yaml",
            "kubernetes/hpa.yaml", "kubernetes/prometheus-adapter-values.yaml",
            "kubernetes/secret.example.yaml", "kubernetes/kustomization.yaml",
            "kubernetes/gpu/kustomization.yaml", "kubernetes/gpu/deployment-gpu.yaml",
            "compose/docker-compose.yml"} <= names
    for path in files:
        docs = _load_all(path)
        assert docs and all(isinstance(d, dict) for d in docs), path


def test_kustomizations_name_files_that_exist() -> None:
    for kust in K8S.rglob("kustomization.yaml"):
        spec = _load_all(kust)[0]
        for resource in spec.get("resources", []):
            assert (kust.parent / resource).exists(), (kust, resource)
        for patch in spec.get("patches", []):
            assert (kust.parent / patch["path"]).exists(), (kust, patch)
    # The Secret holds real credentials: never applied from the repository.
    assert "secret.example.yaml" not in _load_all(K8S / "kustomization.yaml")[0]["resources"]


def test_the_image_checks_liveness_and_carries_the_cluster_clients() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    (check,) = re.findall(r"^HEALTHCHECK .*$", dockerfile, re.M)
    (path,) = re.findall(r"http://127\.0\.0\.1:\d+(/\w+)", check)
    assert path == "/healthz" and path in _routed_paths()  # never /readyz: full is healthy
    assert re.search(r'pip install "?\.\[cluster\]"?', dockerfile)
    assert re.search(rf"^EXPOSE {ServerConfig().port}$", dockerfile, re.M)


# ---------------------------------------------------------------- Deployment


def test_probes_point_to_paths_the_server_serves() -> None:
    routed = _routed_paths()
    c = _container(_manifest("deployment.yaml", "Deployment"))
    port_names = {p["name"]: p["containerPort"] for p in c["ports"]}
    probes = {kind: c[kind]["httpGet"] for kind in
              ("readinessProbe", "livenessProbe", "startupProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"  # 503 when full or draining
    # Liveness never on /readyz: a full or draining pod is alive.
    assert probes["livenessProbe"]["path"] == probes["startupProbe"]["path"] == "/healthz"
    for probe in probes.values():
        assert probe["path"] in routed
        assert probe["port"] in port_names or probe["port"] in port_names.values()


def test_container_port_is_the_servers_port() -> None:
    c = _container(_manifest("deployment.yaml", "Deployment"))
    (port,) = c["ports"]
    env = _env_values(c["env"])
    assert port["containerPort"] == ServerConfig().port == int(env["STREAMSERVER_PORT"])
    assert env["STREAMSERVER_HOST"] == "0.0.0.0"  # reachable from the kubelet and Service
    service = _manifest("service.yaml", "Service")
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {port["name"]}


def test_environment_names_are_read_by_the_server() -> None:
    known = _server_env_names()
    assert {"STREAMSERVER_PORT", "STREAMSERVER_REDIS_URL", "STREAMSERVER_DATABASE_URL",
            "STREAMSERVER_CLUSTER_SECRET", "STREAMSERVER_DEVICE",
            "STREAMSERVER_DATA_KEYS"} <= known  # the collector finds them at all
    envs = [_container(_manifest("deployment.yaml", "Deployment"))["env"],
            _container(_manifest("gpu/deployment-gpu.yaml", "Deployment"))["env"]]
    for env in envs:
        for item in env:
            assert item["name"] in known | LIBRARY_ENV, item["name"]


def test_deployment_environment_is_a_valid_config(monkeypatch: pytest.MonkeyPatch) -> None:
    c = _container(_manifest("deployment.yaml", "Deployment"))
    cfg = _config_from(_env_values(c["env"]), monkeypatch)
    assert cfg.max_sessions == SESSIONS_PER_2_CORES and cfg.workers == 2
    assert (cfg.asr.device, cfg.asr.compute_type) == ("cpu", "int8")
    assert cfg.redis_url and cfg.database_url and cfg.storage_url.startswith("s3://")
    assert cfg.api_key_hashes and cfg.cluster_secret
    # The GPU overlay's values over the base ones (a strategic merge by name).
    gpu = _container(_manifest("gpu/deployment-gpu.yaml", "Deployment"))
    merged = {**_env_values(c["env"]), **_env_values(gpu["env"])}
    cfg = _config_from(merged, monkeypatch)
    assert (cfg.asr.device, cfg.asr.compute_type) == ("cuda", "int8_float16")


def test_secret_refs_name_keys_of_the_example_secret() -> None:
    secret = _manifest("secret.example.yaml", "Secret")
    for manifest in ("deployment.yaml",):
        for item in _container(_manifest(manifest, "Deployment"))["env"]:
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == secret["metadata"]["name"]
                assert ref["key"] in secret["stringData"], ref


def test_grace_period_covers_prestop_and_the_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = _manifest("deployment.yaml", "Deployment")
    c = _container(deployment)
    cfg = _config_from(_env_values(c["env"]), monkeypatch)
    # The drain releases every delay line: the longest D a session may ask for.
    assert cfg.shutdown_grace_s >= DELAY_MS_MAX / 1000
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    margin = 5.0
    assert grace >= _prestop_sleep_s(c) + _drain_worst_case_s(cfg) + margin, grace
    assert _prestop_sleep_s(c) >= 2 * c["readinessProbe"]["periodSeconds"]


def test_resources_come_from_the_capacity_benchmark(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = (ROOT / "docs" / "benchmarks.md").read_text()
    assert f"peak RSS {PEAK_RSS_MB_AT_8} MB" in bench  # the figure this sizing rests on
    c = _container(_manifest("deployment.yaml", "Deployment"))
    requests, limits = c["resources"]["requests"], c["resources"]["limits"]
    assert str(requests["cpu"]) == str(limits["cpu"]) == "2"
    peak_mib = PEAK_RSS_MB_AT_8 * 1e6 / 2**20
    assert _memory_mib(requests["memory"]) >= 1.5 * peak_mib
    assert _memory_mib(limits["memory"]) >= _memory_mib(requests["memory"])
    cfg = _config_from(_env_values(c["env"]), monkeypatch)
    assert cfg.max_sessions <= SESSIONS_PER_2_CORES  # no more than 2 cores were shown to hold


def test_selectors_match_the_pod_labels() -> None:
    deployment = _manifest("deployment.yaml", "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict[str, str]) -> bool:
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    assert selects(deployment["spec"]["selector"]["matchLabels"])
    assert selects(_manifest("pdb.yaml", "PodDisruptionBudget")["spec"]["selector"]
                   ["matchLabels"])
    assert selects(_manifest("service.yaml", "Service")["spec"]["selector"])
    pdb = _manifest("pdb.yaml", "PodDisruptionBudget")["spec"]
    assert pdb.get("maxUnavailable") == 1 or "minAvailable" in pdb


# ---------------------------------------------------------------- autoscaling


def test_autoscaler_uses_the_active_sessions_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client.core import Metric

    from streamserver.metrics import Metrics

    families: dict[str, Metric] = {m.name: m for m in Metrics().registry.collect()}
    hpa = _manifest("hpa.yaml", "HorizontalPodAutoscaler")
    (metric,) = hpa["spec"]["metrics"]
    name = metric["pods"]["metric"]["name"]
    assert name in families and families[name].type == "gauge"
    assert hpa["spec"]["scaleTargetRef"]["name"] == _manifest(
        "deployment.yaml", "Deployment")["metadata"]["name"]
    # The adapter serves exactly that series under that name.
    (rule,) = _load_all(K8S / "prometheus-adapter-values.yaml")[0]["rules"]["custom"]
    assert rule["seriesQuery"].startswith(name + "{")
    assert rule["name"]["as"] == name and re.fullmatch(rule["name"]["matches"], name)
    # Scale out before a pod is full (full pods refuse new calls).
    c = _container(_manifest("deployment.yaml", "Deployment"))
    cfg = _config_from(_env_values(c["env"]), monkeypatch)
    assert 0 < float(metric["pods"]["target"]["averageValue"]) < cfg.max_sessions
    assert hpa["spec"]["minReplicas"] >= 2


# ---------------------------------------------------------------- compose


def _compose() -> dict[str, Any]:
    return dict(_load_all(COMPOSE)[0])


def _node_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items()
            if s.get("command", [None, None])[:2] == ["streamserver", "serve"]}


def test_compose_runs_two_nodes_with_the_clusters_flags(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from streamserver.cli import build_parser

    compose = _compose()
    nodes = _node_services(compose)
    assert len(nodes) == 2 and {"redis", "postgres", "minio", "nginx"} <= set(
        compose["services"])
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    known = _server_env_names() | LIBRARY_ENV
    node_ids = set()
    flags = {o for action in serve._actions for o in action.option_strings}
    for service in nodes.values():
        # Whole flag names (argparse would also take an unambiguous prefix).
        assert {a for a in service["command"] if a.startswith("--")} <= flags
        args = serve.parse_args(service["command"][2:])  # unknown flags: SystemExit
        assert args.redis_url.startswith("redis://")
        assert args.database_url.startswith("postgresql://")
        assert args.storage_url.startswith("s3://")
        env = {k: str(v) for k, v in service["environment"].items()}
        assert set(env) <= known, set(env) - known
        node_ids.add(env["STREAMSERVER_NODE_ID"])
        plain = {k: ("x" * 32 if v.startswith("${") else v) for k, v in env.items()}
        cfg = _config_from(plain, monkeypatch, redis_url=args.redis_url,
                           database_url=args.database_url, storage_url=args.storage_url)
        assert cfg.max_sessions == SESSIONS_PER_2_CORES
        # docker stop: SIGTERM, then SIGKILL after stop_grace_period.
        grace = float(service["stop_grace_period"].removesuffix("s"))
        assert grace >= _drain_worst_case_s(cfg), grace
        assert "password" not in " ".join(service["command"]).lower()  # nothing secret in argv
    assert len(node_ids) == 2


def test_compose_nginx_balances_over_the_two_nodes() -> None:
    compose = _compose()
    nginx = compose["services"]["nginx"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in nginx["volumes"]}
    assert mounts["/etc/nginx/nginx.conf"] == "../nginx/streamserver.conf"
    for inside, outside in mounts.items():
        assert (COMPOSE.parent / outside).resolve().is_file(), outside
        assert Path(inside).name in ("nginx.conf", *[p.name for p in NGINX_DIR.iterdir()])
    upstreams = (NGINX_DIR / "streamserver-upstreams.conf").read_text()
    servers = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", upstreams, re.M)
    assert {host for host, _ in servers} == set(_node_services(compose))
    assert {int(port) for _, port in servers} == {ServerConfig().port}
    listen = re.search(r"^\s*listen\s+(\d+);", (NGINX_DIR / "streamserver-listen.conf")
                       .read_text(), re.M)
    assert listen and any(p.endswith(f":{listen.group(1)}") for p in nginx["ports"])


# ---------------------------------------------------------------- nginx


def _render_nginx(tmp: Path, upstream_lines: str, listen: str = "127.0.0.1:18080") -> Path:
    """streamserver.conf as shipped, with the two per-deployment includes written
    for loopback; what a cluster test does before starting nginx."""
    conf = tmp / "streamserver.conf"
    shutil.copy(NGINX_DIR / "streamserver.conf", conf)
    (tmp / "streamserver-upstreams.conf").write_text(upstream_lines)
    (tmp / "streamserver-listen.conf").write_text(f"listen {listen};\n")
    return conf


def _nginx_t(tmp: Path, conf: Path) -> subprocess.CompletedProcess[str]:
    assert Path(NGINX).exists(), "nginx is needed (scripts/test.sh installs nginx-light)"
    return subprocess.run(
        [NGINX, "-t", "-p", f"{tmp}/", "-c", str(conf),
         "-g", f"pid {tmp}/nginx.pid; error_log {tmp}/error.log;"],
        capture_output=True, text=True, timeout=30)


def test_nginx_accepts_the_config_with_loopback_upstreams(tmp_path: Path) -> None:
    conf = _render_nginx(tmp_path, "server 127.0.0.1:18081;\nserver 127.0.0.1:18082;\n")
    done = _nginx_t(tmp_path, conf)
    assert done.returncode == 0 and "test is successful" in done.stderr, done.stderr
    # Nothing outside the temporary prefix was needed (temp paths are relative).
    assert (tmp_path / "proxy_temp").is_dir()


def test_nginx_t_really_checks_the_rendered_config(tmp_path: Path) -> None:
    conf = _render_nginx(tmp_path, "server 127.0.0.1:18081 not_a_parameter;\n")
    done = _nginx_t(tmp_path, conf)
    assert done.returncode != 0 and "invalid parameter" in done.stderr, done.stderr


def test_nginx_passes_websockets_with_long_timeouts() -> None:
    text = (NGINX_DIR / "streamserver.conf").read_text()
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert re.search(r"proxy_http_version\s+1\.1;", code)
    assert re.search(r"proxy_set_header\s+Upgrade\s+\$http_upgrade;", code)
    assert re.search(r"proxy_set_header\s+Connection\s+\$connection_upgrade;", code)
    assert re.search(r"include\s+streamserver-upstreams\.conf;", code)
    (default_pool,) = re.findall(r"upstream\s+streamserver\s*\{([^}]*)\}", code)
    assert not re.search(r"\b(least_conn|ip_hash|hash|random)\b", default_pool)  # round-robin
    assert re.search(r"hash\s+\$arg_bridge\S*\s+consistent;", code)  # a bridge: one node
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        m = re.search(rf"{directive}\s+(\d+)s;", code)
        assert m and int(m.group(1)) >= 10 * ServerConfig().idle_timeout_s, directive
    # Access logs never carry the query string (one-use tokens travel in ?token=).
    (fmt,) = re.findall(r"log_format\s+\w+\s+((?:'[^']*'\s*)+);", code)
    assert "$request_uri" not in fmt and "$args" not in fmt and "$request " not in fmt


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Backend:
    """A stand-in node on loopback: answers every GET with its name and the
    Upgrade/Connection headers it received."""

    def __init__(self, name: str) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"node": name, "upgrade": self.headers.get("Upgrade"),
                                   "connection": self.headers.get("Connection")}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_nginx_round_robins_and_keeps_a_bridge_on_one_node(tmp_path: Path) -> None:
    """The shipped config run by the real nginx over two loopback stand-in nodes."""
    import json
    import time
    import urllib.request

    backends = [_Backend("a"), _Backend("b")]
    port = _free_port()
    conf = _render_nginx(tmp_path, "".join(f"server 127.0.0.1:{b.port};\n" for b in backends),
                         listen=f"127.0.0.1:{port}")
    assert Path(NGINX).exists(), "nginx is needed (scripts/test.sh installs nginx-light)"
    proc = subprocess.Popen(
        [NGINX, "-p", f"{tmp_path}/", "-c", str(conf),
         "-g", f"daemon off; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def get(path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
        with urllib.request.urlopen(req, timeout=5) as r:
            return dict(json.loads(r.read()))

    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                get("/healthz")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
                time.sleep(0.05)
        plain = [get(f"/v1/sessions/s{i}?token=do-not-log")["node"] for i in range(6)]
        assert sorted(plain) == ["a"] * 3 + ["b"] * 3  # round-robin
        for bridge in ("call-1", "call-2", "call-3", "call-4"):
            legs = {get(f"/v1/stream?bridge={bridge}&role={r}")["node"]
                    for r in ("agent", "caller", "agent")}
            assert len(legs) == 1, bridge  # both legs on one node
            assert get(f"/v1/bridges/{bridge}")["node"] in legs  # and its REST view
        seen = get("/v1/stream", {"Upgrade": "websocket", "Connection": "Upgrade"})
        assert (seen["upgrade"], seen["connection"]) == ("websocket", "upgrade")
        assert get("/healthz")["connection"] == "close"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
        for b in backends:
            b.close()
    assert "/v1/sessions/s0" in out and "do-not-log" not in out  # no query in the log
