"""The Kubernetes manifests name commands, consumers, queues and probes that exist."""

import glob
import pathlib

import yaml

from exsync.bus import Topology
from exsync.cli import build_parser
from exsync.consumers.runner import CONSUMERS

K8S = pathlib.Path(__file__).resolve().parent.parent / "k8s"


def documents(kind):
    for path in glob.glob(str(K8S / "**" / "*.yaml"), recursive=True):
        for document in yaml.safe_load_all(open(path, encoding="utf-8")):
            if document and document.get("kind") == kind:
                yield document


def test_every_container_runs_a_real_subcommand():
    commands = build_parser()._subparsers._group_actions[0].choices
    deployments = list(documents("Deployment"))
    assert len(deployments) >= 5
    for deployment in deployments:
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            args = container["args"]
            assert args[0] in commands, f"{deployment['metadata']['name']}: no subcommand {args[0]}"
            commands[args[0]].parse_args(args[1:])
            if args[0] == "consume":
                assert args[1] in CONSUMERS


def consumer_deployments():
    """consumer name -> the Deployments running `exsync consume <name>`."""
    running = {}
    for deployment in documents("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if container["args"][:1] == ["consume"]:
                running.setdefault(container["args"][1], []).append(deployment)
    return running


def test_every_consumer_has_a_deployment():
    running = consumer_deployments()
    missing = sorted(set(CONSUMERS) - set(running))
    assert not missing, f"no Deployment runs exsync consume {', '.join(missing)}"


def test_consumers_scale_on_their_own_queue():
    queue_of = {deployment["metadata"]["name"]: CONSUMERS[name][0]
                for name, deployments in consumer_deployments().items() for deployment in deployments}
    for scaled in documents("ScaledObject"):
        target = scaled["spec"]["scaleTargetRef"]["name"]
        if target in queue_of:
            queues = {t["metadata"]["queueName"] for t in scaled["spec"]["triggers"] if t["type"] == "rabbitmq"}
            assert queues == {queue_of[target]}, f"{scaled['metadata']['name']} scales on {queues}"


# The customer merge is not safe for two handlers of one queue at once.
SINGLE_REPLICA_CONSUMERS = ("customers", "customers-export")


def test_customer_consumers_never_run_two_replicas():
    running = consumer_deployments()
    names = set()
    for consumer in SINGLE_REPLICA_CONSUMERS:
        [deployment] = running[consumer]
        names.add(deployment["metadata"]["name"])
        assert deployment["spec"]["replicas"] == 1
        # a rolling update would run the old and the new pod side by side
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
    for scaled in documents("ScaledObject"):
        if scaled["spec"]["scaleTargetRef"]["name"] in names:
            assert scaled["spec"]["maxReplicaCount"] == 1


def test_scaled_queues_exist_in_the_topology():
    queues = set(Topology().all_queue_names())
    for scaled in documents("ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            if trigger["type"] == "rabbitmq":
                assert trigger["metadata"]["queueName"] in queues


def test_webhook_probes_are_the_apps_routes():
    from exsync.bus import Publisher
    from exsync.webhooks import Receiver, create_app

    publisher = Publisher(url="amqp://guest:guest@127.0.0.1:1/")
    app = create_app(receiver=Receiver(secrets=("s",), publisher=publisher), publisher=publisher,
                     max_body_bytes=1024)
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    [webhook] = [d for d in documents("Deployment") if d["metadata"]["name"] == "exsync-webhook"]
    container = webhook["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] in routes
    assert container["readinessProbe"]["httpGet"]["path"] in routes
