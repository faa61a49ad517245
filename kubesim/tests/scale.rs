//! Thousands of objects across namespaces, with many concurrent watches.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

const OBJECTS: usize = 2000;
const NAMESPACES: usize = 8;
const WATCHERS: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_objects_reach_fifty_watchers() {
    let srv = server(frozen()).await;
    let c = client(&srv);
    let all: Api<DynamicObject> = Api::all_with(c.clone(), &spark_resource());
    let rv = all.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();

    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let stream = all.watch(&WatchParams::default().labels("load=yes").timeout(120), &rv).await.unwrap();
        watchers.push(tokio::spawn(async move {
            let mut names = HashSet::new();
            let mut stream = stream.boxed();
            while let Some(ev) = stream.try_next().await.unwrap() {
                if let WatchEvent::Added(o) = ev {
                    names.insert(format!("{}/{}", o.metadata.namespace.unwrap(), o.metadata.name.unwrap()));
                    if names.len() == OBJECTS {
                        break;
                    }
                }
            }
            names.len()
        }));
    }

    futures::stream::iter(0..OBJECTS)
        .map(|i| {
            let api = apps(&c, &format!("ns{}", i % NAMESPACES));
            async move {
                api.create(&PostParams::default(), &spark_pi(&format!("load-{i}"), json!({"load": "yes"})))
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;

    for w in watchers {
        let seen = tokio::time::timeout(Duration::from_secs(120), w).await.expect("watcher finishes").unwrap();
        assert_eq!(seen, OBJECTS);
    }
    assert_eq!(all.list(&ListParams::default().labels("load=yes")).await.unwrap().items.len(), OBJECTS);
    assert_eq!(apps(&c, "ns3").list(&ListParams::default()).await.unwrap().items.len(), OBJECTS / NAMESPACES);
}
