//! The kube 5 client exercised against every call the gateway makes, over HTTPS with a bearer
//! token, the way it talks to EKS.

mod common;

use std::time::Duration;

use common::*;
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, Preconditions, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use kubesim::OperatorConfig;
use serde_json::json;

#[tokio::test]
async fn create_get_list_and_delete() {
    let srv = server(frozen()).await;
    let c = client(&srv);
    let api = apps(&c, "spark");
    let created = api.create(&PostParams::default(), &spark_pi("pi-a", json!({"team": "a"}))).await.unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    let (code, reason, _) =
        api_error(api.create(&PostParams::default(), &spark_pi("pi-a", json!({}))).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    let got = api.get("pi-a").await.unwrap();
    assert_eq!(got.data["spec"]["mainClass"], "org.apache.spark.examples.SparkPi");
    assert_eq!(got.data["spec"]["driver"]["cores"], 1);
    assert!(api.get_opt("missing").await.unwrap().is_none(), "404 reads as None");
    let (code, reason, message) = api_error(api.get("missing").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    assert_eq!(message, "sparkapplications.sparkoperator.k8s.io \"missing\" not found");

    // A delete's resourceVersion precondition is checked against the current version's.
    let status = json!({"status": {"applicationState": {"state": "RUNNING"}}});
    let moved = api.patch_status("pi-a", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    assert_ne!(moved.metadata.resource_version, created.metadata.resource_version);
    let when = |rv: &Option<String>| DeleteParams {
        preconditions: Some(Preconditions { resource_version: rv.clone(), uid: None }),
        ..DeleteParams::foreground()
    };
    let (code, reason, message) =
        api_error(api.delete("pi-a", &when(&created.metadata.resource_version)).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "Conflict"), "{message}");
    let now = moved.metadata.resource_version.clone().unwrap();
    assert!(message.ends_with(&format!("resourceVersion in object meta: {now}")), "{message}");
    assert!(api.get_opt("pi-a").await.unwrap().is_some(), "the refused delete changed nothing");
    api.delete("pi-a", &when(&moved.metadata.resource_version)).await.unwrap();
    assert!(api.get_opt("pi-a").await.unwrap().is_none());
    let (code, _, _) = api_error(api.delete("pi-a", &DeleteParams::background()).await.unwrap_err());
    assert_eq!(code, 404);
}

#[tokio::test]
async fn events_expire_after_the_event_ttl_and_the_application_stays() {
    // 2 simulated minutes of event TTL at time scale 0.01: 1.2 s of real time.
    let srv = server(OperatorConfig { event_ttl_ms: 120_000, ..fast() }).await;
    let c = client(&srv);
    let api = apps(&c, "spark");
    api.create(&PostParams::default(), &spark_pi("pi", json!({}))).await.unwrap();
    let events: Api<Event> = Api::namespaced(c.clone(), "spark");
    let of_pi = ListParams::default().fields("involvedObject.name=pi");
    let added = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let listed = events.list(&of_pi).await.unwrap();
            if let Some(e) = listed.items.iter().find(|e| e.reason.as_deref() == Some("SparkApplicationAdded")) {
                return e.metadata.name.clone().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the operator records SparkApplicationAdded");
    tokio::time::timeout(Duration::from_secs(20), async {
        while events.get_opt(&added).await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the event is deleted once its TTL has passed");
    assert!(api.get_opt("pi").await.unwrap().is_some(), "only events expire, not the application");
}

#[tokio::test]
async fn invalid_objects_get_422_naming_the_field_and_change_nothing() {
    let srv = server(frozen()).await;
    let api = apps(&client(&srv), "spark");
    let mut bad = spark_pi("bad", json!({}));
    bad.data["spec"]["type"] = json!("scala");
    bad.data["spec"]["executor"]["instances"] = json!(0);
    let (code, reason, message) = api_error(api.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(message.contains("spec.type: Unsupported value: \"scala\""), "{message}");
    assert!(message.contains("spec.executor.instances"), "{message}");

    let label = spark_pi("bad-label", json!({"proxyUser": "a@b.com"}));
    let (code, _, message) = api_error(api.create(&PostParams::default(), &label).await.unwrap_err());
    assert_eq!(code, 422);
    assert!(message.contains("metadata.labels"), "{message}");

    let mut missing = spark_pi("missing-file", json!({}));
    missing.data["spec"].as_object_mut().unwrap().remove("mainApplicationFile");
    let (_, _, message) = api_error(api.create(&PostParams::default(), &missing).await.unwrap_err());
    assert!(message.contains("spec.mainApplicationFile: Required value"), "{message}");

    let dry = PostParams { dry_run: true, ..PostParams::default() };
    api.create(&dry, &spark_pi("dry", json!({}))).await.unwrap();
    assert!(api.list(&ListParams::default()).await.unwrap().items.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn lists_filter_by_label_and_page_with_continue() {
    let srv = server(frozen()).await;
    let c = client(&srv);
    for i in 0..25 {
        let (ns, team) = if i % 5 == 0 { ("other", "b") } else { ("spark", if i % 2 == 0 { "a" } else { "b" }) };
        apps(&c, ns)
            .create(&PostParams::default(), &spark_pi(&format!("app-{i:02}"), json!({"team": team})))
            .await
            .unwrap();
    }
    let api = apps(&c, "spark");
    let team_a = api.list(&ListParams::default().labels("team=a")).await.unwrap();
    assert_eq!(team_a.items.len(), 10);
    assert!(team_a.items.iter().all(|o| o.metadata.labels.as_ref().unwrap()["team"] == "a"));
    assert_eq!(api.list(&ListParams::default().labels("team in (a,b),team!=b")).await.unwrap().items.len(), 10);

    let mut names = Vec::new();
    let mut params = ListParams::default().limit(7);
    let mut pages = 0;
    loop {
        let page = api.list(&params).await.unwrap();
        pages += 1;
        names.extend(page.items.iter().map(|o| o.metadata.name.clone().unwrap()));
        if pages == 1 {
            // Changes after the first page do not show in the later ones, as with etcd.
            api.create(&PostParams::default(), &spark_pi("app-99", json!({"team": "a"}))).await.unwrap();
            api.delete("app-11", &Default::default()).await.unwrap();
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(names, sorted, "pages are ordered and disjoint");
    assert_eq!(names.len(), 20);
    assert!(names.contains(&"app-11".to_owned()) && !names.contains(&"app-99".to_owned()), "{names:?}");
    let now = api.list(&ListParams::default()).await.unwrap().items;
    assert!(now.iter().any(|o| o.metadata.name.as_deref() == Some("app-99")));
    assert!(!now.iter().any(|o| o.metadata.name.as_deref() == Some("app-11")));

    let everywhere: Api<kube::api::DynamicObject> = Api::all_with(c.clone(), &spark_resource());
    assert_eq!(everywhere.list(&ListParams::default()).await.unwrap().items.len(), 25);
    let rv = api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    assert!(rv.parse::<u64>().unwrap() >= 27);
}

#[tokio::test]
async fn watches_deliver_added_modified_deleted_bookmarks_and_end_on_timeout() {
    let srv = server(frozen()).await;
    let api = apps(&client(&srv), "spark");
    let rv = api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let stream = api.watch(&WatchParams::default().timeout(3), &rv).await.unwrap();
    let collector = tokio::spawn(async move { stream.try_collect::<Vec<_>>().await });

    api.create(&PostParams::default(), &spark_pi("w", json!({}))).await.unwrap();
    api.patch("w", &PatchParams::default(), &Patch::Merge(json!({"spec": {"arguments": ["9"]}}))).await.unwrap();
    api.delete("w", &DeleteParams::default()).await.unwrap();
    // The stream ends by itself after timeoutSeconds.
    let events = tokio::time::timeout(Duration::from_secs(10), collector).await.expect("stream ends").unwrap().unwrap();
    let kinds: Vec<(&str, &serde_json::Value)> = events
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Added(o) if o.metadata.name.as_deref() == Some("w") => Some(("ADDED", &o.data)),
            WatchEvent::Modified(o) if o.metadata.name.as_deref() == Some("w") => Some(("MODIFIED", &o.data)),
            WatchEvent::Deleted(o) if o.metadata.name.as_deref() == Some("w") => Some(("DELETED", &o.data)),
            _ => None,
        })
        .collect();
    // The operator's own status writes come as MODIFIED too; ours must be among them, in order.
    assert_eq!(kinds.first().map(|k| k.0), Some("ADDED"));
    assert_eq!(kinds.last().map(|k| k.0), Some("DELETED"));
    let patched = kinds.iter().position(|(k, d)| *k == "MODIFIED" && d["spec"]["arguments"] == json!(["9"]));
    assert!(patched.is_some_and(|p| p > 0 && p < kinds.len() - 1), "{kinds:?}");
    assert!(events.iter().any(|e| matches!(e, WatchEvent::Bookmark(_))), "bookmarks were asked for");
    // Every event carries its own revision; the deletion's is newer than the last change's.
    let revisions: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                o.metadata.resource_version.as_deref()?.parse().ok()
            }
            _ => None,
        })
        .collect();
    assert_eq!(revisions.len(), kinds.len());
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "revisions increase: {revisions:?}");
}

#[tokio::test]
async fn a_watch_from_a_forgotten_revision_gets_410() {
    let srv =
        server_with(kubesim::Settings { operator: frozen(), watch_history: 10, ..kubesim::Settings::default() }).await;
    let api = apps(&client(&srv), "spark");
    for i in 0..20 {
        api.create(&PostParams::default(), &spark_pi(&format!("x{i}"), json!({}))).await.unwrap();
    }
    let mut stream = api.watch(&WatchParams::default().timeout(2), "1").await.unwrap().boxed();
    match stream.next().await {
        Some(Ok(WatchEvent::Error(e))) => assert_eq!(e.code, 410),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn a_paginated_list_stays_consistent_however_many_changes_come_between_pages() {
    // The watch history holds 10 changes; 20 come between the first page and the next.
    let srv =
        server_with(kubesim::Settings { operator: frozen(), watch_history: 10, ..kubesim::Settings::default() }).await;
    let api = apps(&client(&srv), "spark");
    for i in 0..30 {
        let team = if i % 2 == 0 { "a" } else { "b" };
        api.create(&PostParams::default(), &spark_pi(&format!("x{i:02}"), json!({"team": team}))).await.unwrap();
    }
    let selective = ListParams::default().labels("team=a").limit(4);
    let first = api.list(&selective).await.unwrap();
    assert_eq!(first.metadata.remaining_item_count, None, "not counted under a selector, as by an API server");
    let unselective = api.list(&ListParams::default().limit(4)).await.unwrap();
    assert_eq!(unselective.metadata.remaining_item_count, Some(26));
    for i in (10..30).step_by(2) {
        api.delete(&format!("x{i:02}"), &Default::default()).await.unwrap();
        api.create(&PostParams::default(), &spark_pi(&format!("y{i:02}"), json!({"team": "a"}))).await.unwrap();
    }

    let mut names: Vec<String> = first.items.iter().map(|o| o.metadata.name.clone().unwrap()).collect();
    let mut token = first.metadata.continue_;
    while let Some(t) = token.filter(|t| !t.is_empty()) {
        let page = api.list(&selective.clone().continue_token(&t)).await.unwrap();
        assert!(page.items.len() <= 4);
        names.extend(page.items.iter().map(|o| o.metadata.name.clone().unwrap()));
        token = page.metadata.continue_;
    }
    let then: Vec<String> = (0..30).step_by(2).map(|i| format!("x{i:02}")).collect();
    assert_eq!(names, then, "the team-a applications of the first page's revision, in order");
    let now = api.list(&ListParams::default().labels("team=a")).await.unwrap().items;
    assert_eq!(now.len(), 15);
    assert!(now.iter().any(|o| o.metadata.name.as_deref() == Some("y28")));
}

#[tokio::test]
async fn a_continue_token_expires_after_the_list_retention() {
    let retention = Duration::from_millis(100);
    let srv = server_with(kubesim::Settings {
        operator: frozen(),
        list_retention: retention,
        ..kubesim::Settings::default()
    })
    .await;
    let api = apps(&client(&srv), "spark");
    for i in 0..3 {
        api.create(&PostParams::default(), &spark_pi(&format!("x{i}"), json!({}))).await.unwrap();
    }
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    let token = first.metadata.continue_.expect("more to come");
    tokio::time::sleep(retention).await;
    let (code, reason, message) = api_error(api.list(&ListParams::default().continue_token(&token)).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (410, "Expired"));
    assert!(message.contains("continue parameter is too old"), "{message}");
}

#[tokio::test]
async fn the_runtime_watcher_follows_an_application_to_completion() {
    let srv = server(fast()).await;
    let api = apps(&client(&srv), "spark");
    let watch = watcher(api.clone(), watcher::Config::default().fields("metadata.name=rt")).applied_objects();
    let seen = tokio::spawn(async move {
        let mut states = Vec::new();
        let mut watch = watch.boxed();
        while let Some(o) = watch.try_next().await.unwrap() {
            let s = state(&o).unwrap_or_default();
            if states.last() != Some(&s) {
                states.push(s.clone());
            }
            if s == "COMPLETED" {
                return states;
            }
        }
        states
    });
    api.create(&PostParams::default(), &spark_pi("rt", json!({}))).await.unwrap();
    let states = tokio::time::timeout(Duration::from_secs(20), seen).await.expect("completes").unwrap();
    let order = ["", "SUBMITTED", "RUNNING", "COMPLETED"];
    let mut positions = states.iter().filter_map(|s| order.iter().position(|o| o == s));
    assert!(positions.clone().zip(positions.clone().skip(1)).all(|(a, b)| a < b), "{states:?}");
    assert!(positions.any(|p| p == 3), "{states:?}");
    let done = api.get("rt").await.unwrap();
    let status = &done.data["status"];
    assert!(status["sparkApplicationId"].as_str().unwrap().starts_with("spark-"));
    assert_eq!(status["driverInfo"]["podName"], "rt-driver");
    assert_eq!(status["executionAttempts"], 1);
    assert_eq!(status["executorState"]["rt-exec-1"], "COMPLETED");
    assert!(status["terminationTime"].is_string() && status["lastSubmissionAttemptTime"].is_string());
    assert!(status["submissionID"].is_string());
}

#[tokio::test]
async fn patches_status_subresource_and_optimistic_concurrency() {
    let srv = server(frozen()).await;
    let c = client(&srv);
    let api = apps(&c, "spark");
    let v1 = api.create(&PostParams::default(), &spark_pi("p", json!({}))).await.unwrap();

    let v2 =
        api.patch("p", &PatchParams::default(), &Patch::Merge(json!({"spec": {"arguments": ["100"]}}))).await.unwrap();
    assert_eq!(v2.data["spec"]["arguments"], json!(["100"]));
    assert_eq!(v2.metadata.generation, Some(2), "a spec change bumps the generation");

    let v3 = api
        .patch_status(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"applicationState": {"state": "RUNNING"}}})),
        )
        .await
        .unwrap();
    assert_eq!(v3.data["status"]["applicationState"]["state"], "RUNNING");
    assert_eq!(v3.metadata.generation, Some(2), "a status change keeps it");
    let ignored = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"applicationState": {"state": "FAILED"}}})),
        )
        .await
        .unwrap();
    assert_eq!(ignored.data["status"]["applicationState"]["state"], "RUNNING", "status goes through /status only");

    let (code, reason, _) = api_error(api.replace("p", &PostParams::default(), &v1).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "Conflict"), "a stale resourceVersion is refused");
    let mut fresh = api.get("p").await.unwrap();
    fresh.data["spec"]["arguments"] = json!(["7"]);
    let replaced = api.replace("p", &PostParams::default(), &fresh).await.unwrap();
    assert_eq!(replaced.data["spec"]["arguments"], json!(["7"]));

    // JSON patch, sent through the same client as a raw request.
    let request = http::Request::patch("/apis/sparkoperator.k8s.io/v1beta2/namespaces/spark/sparkapplications/p")
        .header("content-type", "application/json-patch+json")
        .body(serde_json::to_vec(&json!([{"op": "replace", "path": "/spec/sparkVersion", "value": "3.4.0"}])).unwrap())
        .unwrap();
    let patched: serde_json::Value = c.request(request).await.unwrap();
    assert_eq!(patched["spec"]["sparkVersion"], "3.4.0");

    let mut applied = spark_pi("ssa", json!({}));
    applied.data["spec"]["sparkVersion"] = json!("3.3.0");
    let ssa = api.patch("ssa", &PatchParams::apply("bpg-test").force(), &Patch::Apply(&applied)).await.unwrap();
    assert_eq!(ssa.data["spec"]["sparkVersion"], "3.3.0", "apply creates");

    let (code, _, _) =
        api_error(api.patch("p", &PatchParams::default(), &Patch::Strategic(json!({"spec": {}}))).await.unwrap_err());
    assert_eq!(code, 415, "strategic merge is not supported on custom resources");

    let bad =
        api.patch("p", &PatchParams::default(), &Patch::Merge(json!({"spec": {"type": "Go"}}))).await.unwrap_err();
    assert_eq!(api_error(bad).0, 422, "patches are validated too");
}

#[tokio::test]
async fn pods_logs_and_events_follow_the_application() {
    let srv = server(fast()).await;
    let c = client(&srv);
    let api = apps(&c, "spark");
    api.create(&PostParams::default(), &spark_pi("pi", json!({}))).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(c.clone(), "spark");

    // Follow the driver's log while it runs: the stream ends when the driver does.
    let driver = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(p) = pods.get_opt("pi-driver").await.unwrap()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Pending")
            {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("driver starts");
    assert_eq!(driver.metadata.labels.as_ref().unwrap()["spark-role"], "driver");
    let mut lines =
        pods.log_stream("pi-driver", &LogParams { follow: true, ..LogParams::default() }).await.unwrap().lines();
    let mut followed = Vec::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(20), lines.next()).await.expect("log ends") {
        followed.push(line.unwrap());
    }
    assert!(followed.iter().any(|l| l.starts_with("Pi is roughly 3.1")), "{followed:?}");

    wait_state(&api, "pi", "COMPLETED").await;
    let whole = pods.logs("pi-driver", &LogParams::default()).await.unwrap();
    assert!(whole.contains("Pi is roughly"));
    let tail = pods.logs("pi-driver", &LogParams { tail_lines: Some(1), ..LogParams::default() }).await.unwrap();
    assert_eq!(tail.lines().count(), 1);
    let exec = pods.get("pi-exec-2").await.unwrap();
    assert_eq!(exec.status.unwrap().phase.as_deref(), Some("Succeeded"));
    assert_eq!(api_error(pods.logs("nope", &LogParams::default()).await.unwrap_err()).0, 404);

    let events: Api<Event> = Api::namespaced(c.clone(), "spark");
    let app_events = events.list(&ListParams::default().fields("involvedObject.name=pi")).await.unwrap();
    let reasons: Vec<String> = app_events.items.iter().filter_map(|e| e.reason.clone()).collect();
    for r in ["SparkApplicationAdded", "SparkApplicationSubmitted", "SparkDriverRunning", "SparkApplicationCompleted"] {
        assert!(reasons.iter().any(|x| x == r), "{r} missing from {reasons:?}");
    }
    let driver_events = events.list(&ListParams::default().fields("involvedObject.name=pi-driver")).await.unwrap();
    assert!(driver_events.items.iter().any(|e| e.reason.as_deref() == Some("Scheduled")));
    // Every field an Event carries, as kubectl describe shows them.
    let app = api.get("pi").await.unwrap();
    let added = app_events.items.iter().find(|e| e.reason.as_deref() == Some("SparkApplicationAdded")).unwrap();
    let involved = &added.involved_object;
    assert_eq!(
        (involved.kind.as_deref(), involved.name.as_deref(), involved.namespace.as_deref()),
        (Some("SparkApplication"), Some("pi"), Some("spark"))
    );
    assert_eq!(involved.uid, app.metadata.uid);
    assert_eq!(involved.api_version.as_deref(), Some("sparkoperator.k8s.io/v1beta2"));
    assert_eq!(added.type_.as_deref(), Some("Normal"));
    assert_eq!(added.message.as_deref(), Some("SparkApplication pi was added, enqueuing it for submission"));
    assert_eq!(added.count, Some(1));
    assert!(added.first_timestamp.is_some() && added.first_timestamp == added.last_timestamp);
    assert_eq!(added.source.as_ref().and_then(|s| s.component.as_deref()), Some("spark-operator"));
    assert_eq!(added.reporting_component.as_deref(), Some("spark-operator"));
    assert_eq!(added.metadata.namespace.as_deref(), Some("spark"));
    assert!(added.metadata.name.as_deref().is_some_and(|n| n.starts_with("pi.")));
    assert!(added.metadata.uid.is_some() && added.metadata.resource_version.is_some());
    let scheduled = driver_events.items.iter().find(|e| e.reason.as_deref() == Some("Scheduled")).unwrap();
    assert_eq!(scheduled.involved_object.kind.as_deref(), Some("Pod"));
    assert_eq!(scheduled.involved_object.uid, driver.metadata.uid, "the driver pod's own uid");
    assert_eq!(scheduled.source.as_ref().and_then(|s| s.component.as_deref()), Some("kubelet"));
    // A watch from the start sends the same Events.
    let mut watched = Vec::new();
    let mut stream =
        events.watch(&WatchParams::default().fields("involvedObject.name=pi").timeout(1), "0").await.unwrap().boxed();
    while let Some(event) = stream.try_next().await.unwrap() {
        if let WatchEvent::Added(e) = event {
            watched.push(e);
        }
    }
    assert!(watched.iter().any(|e| e == added), "{added:?} not among {watched:?}");

    api.delete("pi", &DeleteParams::background()).await.unwrap();
    assert!(
        pods.list(&ListParams::default().labels("sparkoperator.k8s.io/app-name=pi")).await.unwrap().items.is_empty()
    );
}

#[tokio::test]
async fn requests_without_the_token_get_401() {
    let srv = server(frozen()).await;
    for token in [None, Some("wrong")] {
        let api = apps(&client_with(&srv, token, false), "spark");
        let (code, _, _) = api_error(api.list(&ListParams::default()).await.unwrap_err());
        assert_eq!(code, 401, "token {token:?}");
    }
}

#[tokio::test]
async fn injected_faults_are_what_clients_see() {
    let srv = server(frozen()).await;
    let api = apps(&client(&srv), "spark");
    srv.sim.set_faults(kubesim::Faults { error_rate: 1.0, error_codes: vec![500], ..Default::default() }).unwrap();
    assert_eq!(api_error(api.list(&ListParams::default()).await.unwrap_err()).0, 500);
    srv.sim.set_faults(kubesim::Faults { unavailable: true, ..Default::default() }).unwrap();
    assert_eq!(api_error(api.get("x").await.unwrap_err()).0, 503);

    // "Apply the create, then answer 503": kube's own retry then meets its object: 409.
    srv.sim.set_faults(kubesim::Faults { apply_then_503_rate: 1.0, ..Default::default() }).unwrap();
    let retrying = apps(&client_with(&srv, Some(TOKEN), true), "spark");
    let (code, reason, _) =
        api_error(retrying.create(&PostParams::default(), &spark_pi("ghost", json!({}))).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
    srv.sim.set_faults(kubesim::Faults::default()).unwrap();
    assert!(api.get_opt("ghost").await.unwrap().is_some(), "the create was applied");

    srv.sim.set_faults(kubesim::Faults { latency_ms: 300, ..Default::default() }).unwrap();
    let started = std::time::Instant::now();
    api.get("ghost").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn the_operator_fails_waits_for_capacity_and_expires_applications() {
    // Every running application fails.
    let srv = server(kubesim::OperatorConfig { failure_probability: 1.0, ..fast() }).await;
    let api = apps(&client(&srv), "spark");
    api.create(&PostParams::default(), &spark_pi("f", json!({}))).await.unwrap();
    let failed = wait_state(&api, "f", "FAILED").await;
    assert!(failed.data["status"]["applicationState"]["errorMessage"].as_str().unwrap().contains("ExitCode: 1"));

    // spark-submit fails.
    let srv = server(kubesim::OperatorConfig { submission_failure_probability: 1.0, ..fast() }).await;
    let api = apps(&client(&srv), "spark");
    api.create(&PostParams::default(), &spark_pi("s", json!({}))).await.unwrap();
    let sf = wait_state(&api, "s", "SUBMISSION_FAILED").await;
    assert!(sf.data["status"]["applicationState"]["errorMessage"].as_str().unwrap().contains("spark-submit"));

    // Capacity 1: the second waits in SUBMITTED while the first runs.
    let slow = kubesim::OperatorConfig { capacity: Some(1), run_ms_min: 60_000, run_ms_max: 60_000, ..fast() };
    let srv = server(slow).await;
    let c = client(&srv);
    let api = apps(&c, "spark");
    api.create(&PostParams::default(), &spark_pi("one", json!({}))).await.unwrap();
    wait_state(&api, "one", "RUNNING").await;
    api.create(&PostParams::default(), &spark_pi("two", json!({}))).await.unwrap();
    wait_state(&api, "two", "SUBMITTED").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(state(&api.get("two").await.unwrap()).as_deref(), Some("SUBMITTED"), "no free slot");

    // A gateway kills a job by deleting its driver pod: the application fails, the slot frees.
    let pods: Api<Pod> = Api::namespaced(c.clone(), "spark");
    pods.delete("one-driver", &DeleteParams::default()).await.unwrap();
    let killed = wait_state(&api, "one", "FAILED").await;
    assert_eq!(killed.data["status"]["applicationState"]["errorMessage"], "driver pod not found");
    wait_state(&api, "two", "RUNNING").await;

    // timeToLiveSeconds: the operator deletes the application after it ends.
    let srv = server(fast()).await;
    let api = apps(&client(&srv), "spark");
    let mut ttl = spark_pi("ttl", json!({}));
    ttl.data["spec"]["timeToLiveSeconds"] = json!(1);
    api.create(&PostParams::default(), &ttl).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while api.get_opt("ttl").await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
