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
