"""Drives kubesim with the official Python `kubernetes` client (CustomObjectsApi and
CoreV1Api), as a user's tooling would. Exits non-zero with a message on the first mismatch.

Environment: KUBESIM_URL, KUBESIM_TOKEN, KUBESIM_CA (path to the server certificate).
"""
import os
import sys
import time

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

GROUP, VERSION, PLURAL, NS = "sparkoperator.k8s.io", "v1beta2", "sparkapplications", "python-ns"


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def app(name, labels=None):
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SparkApplication",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "type": "Scala",
            "mode": "cluster",
            "sparkVersion": "3.5.0",
            "mainClass": "org.apache.spark.examples.SparkPi",
            "mainApplicationFile": "local:///opt/spark/examples/jars/spark-examples.jar",
            "driver": {"cores": 1, "memory": "1g"},
            "executor": {"cores": 1, "instances": 1, "memory": "1g"},
        },
    }


def main():
    cfg = client.Configuration()
    cfg.host = os.environ["KUBESIM_URL"]
    cfg.ssl_ca_cert = os.environ["KUBESIM_CA"]
    cfg.api_key = {"authorization": os.environ["KUBESIM_TOKEN"]}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    api = client.ApiClient(cfg)
    custom = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)

    # create, and a duplicate refused with 409
    created = custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, app("py-pi", {"team": "a"}))
    check(created["metadata"]["name"] == "py-pi", "create returns the object")
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, app("py-pi"))
        check(False, "duplicate create must fail")
    except ApiException as e:
        check(e.status == 409, f"duplicate create answers 409, got {e.status}")
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, app("py-other", {"team": "b"}))

    # invalid objects are refused with 422 naming the field
    bad = app("py-bad")
    bad["spec"]["type"] = "java"
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, bad)
        check(False, "an invalid object must be refused")
    except ApiException as e:
        check(e.status == 422 and "spec.type" in e.body, f"422 naming spec.type, got {e.status} {e.body}")

    # get, list with a label selector
    got = custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py-pi")
    check(got["spec"]["mainClass"] == "org.apache.spark.examples.SparkPi", "get returns the spec")
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, label_selector="team=a")
    check([i["metadata"]["name"] for i in listed["items"]] == ["py-pi"], f"label selector, got {listed['items']}")

    # watch until the application completes
    states = []
    w = watch.Watch()
    for event in w.stream(custom.list_namespaced_custom_object, GROUP, VERSION, NS, PLURAL,
                          field_selector="metadata.name=py-pi", timeout_seconds=30):
        state = (event["object"].get("status") or {}).get("applicationState", {}).get("state")
        states.append((event["type"], state))
        if state == "COMPLETED":
            w.stop()
    check(("MODIFIED", "COMPLETED") in states, f"watch sees COMPLETED, got {states}")
    check(any(s == "RUNNING" for _, s in states) or states[0][1] in ("", "SUBMITTED", "RUNNING", None),
          f"watch starts before completion, got {states}")

    # the driver's log
    log = core.read_namespaced_pod_log("py-pi-driver", NS)
    check("Pi is roughly 3.1" in log, f"driver log has the SparkPi result: {log[-300:]}")

    # delete, then 404
    custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py-pi",
                                           body=client.V1DeleteOptions(propagation_policy="Foreground"))
    try:
        custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py-pi")
        check(False, "a deleted object must be gone")
    except ApiException as e:
        check(e.status == 404, f"get after delete answers 404, got {e.status}")
    pods = core.list_namespaced_pod(NS, label_selector="sparkoperator.k8s.io/app-name=py-pi")
    check(pods.items == [], "the application's pods are deleted with it")
    print("official python client: all checks passed")


if __name__ == "__main__":
    main()
