//! Bad input gets a clear 4xx naming what is wrong, and changes nothing.

use bpg_tests::gateway::GatewayCluster;
use bpg_tests::kubesim::{FAST, spark_pi};
use bpg_tests::{Body, Credentials, bins};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_submissions_are_refused_clearly_and_change_nothing() -> anyhow::Result<()> {
    let g = GatewayCluster::start(bins!(), &[50, 50], false, FAST).await?;
    let leader = g.nodes.leader().await?;
    let follower = g.nodes.followers(leader)[0];
    let c = g.user(follower);
    let path = c.ctx("/spark");
    let raw = |ct: &str, body: &str| Some(Body::Raw { content_type: ct.into(), bytes: body.as_bytes().to_vec() });
    let with = |patch: serde_json::Value| {
        let mut r = spark_pi();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                r.as_object_mut().unwrap().remove(k);
            } else {
                r[k] = v.clone();
            }
        }
        Some(Body::Json(r))
    };
    let cases: Vec<(&str, Option<Body>, StatusCode, &str)> = vec![
        (
            "malformed JSON",
            raw("application/json", "{\"sparkVersion\": "),
            StatusCode::BAD_REQUEST,
            "Invalid JSON request",
        ),
        ("a file path", raw("application/json", "/home/me/pi.json"), StatusCode::BAD_REQUEST, "looks like a file path"),
        (
            "malformed YAML",
            raw("application/yaml", "sparkVersion: [3.5\n"),
            StatusCode::BAD_REQUEST,
            "Invalid YAML request",
        ),
        ("an unknown field", with(json!({"hadoopConf": {"a": "b"}})), StatusCode::BAD_REQUEST, "hadoopConf"),
        ("no Spark version", with(json!({"sparkVersion": null})), StatusCode::BAD_REQUEST, "sparkVersion is required"),
        (
            "no application file",
            with(json!({"mainApplicationFile": null})),
            StatusCode::BAD_REQUEST,
            "mainApplicationFile is required",
        ),
        ("an unknown queue", with(json!({"queue": "nope"})), StatusCode::BAD_REQUEST, "The queue nope does not exist"),
        (
            "an unknown version",
            with(json!({"sparkVersion": "9.9"})),
            StatusCode::BAD_REQUEST,
            "Spark version not supported: 9.9",
        ),
        (
            "a pinned unknown cluster",
            with(json!({"clusterId": "nowhere"})),
            StatusCode::BAD_REQUEST,
            "Cluster with id nowhere",
        ),
        (
            "memory without a unit",
            with(json!({"driver": {"memory": "2048"}})),
            StatusCode::BAD_REQUEST,
            "driver.memory",
        ),
        ("a bad type", with(json!({"type": "Golang"})), StatusCode::BAD_REQUEST, "type must be one of"),
        (
            "a non-integer core count",
            with(json!({"executor": {"cores": "many"}})),
            StatusCode::BAD_REQUEST,
            "\"many\" is not an integer",
        ),
        (
            "too many executors",
            with(json!({"executor": {"instances": 6000}})),
            StatusCode::BAD_REQUEST,
            "exceeds the limit 5000",
        ),
        (
            "an oversized body",
            raw("application/json", &"x".repeat(2 * 1024 * 1024)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than",
        ),
    ];
    for (what, body, status, needle) in cases {
        let a = c.call(Method::POST, &path, body).await?;
        assert_eq!(a.status, status, "{what}: {}", a.body);
        let message = a.body["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{what}: {message:?} lacks {needle:?}");
        assert_eq!(a.body["code"], status.as_u16(), "{what}: BPG's error shape");
    }

    for creds in [Credentials::basic("user", "wrong"), Credentials::basic("nobody", "x"), Credentials::None] {
        let a = g.client(follower, creds.clone()).submit(&spark_pi(), None).await?;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{creds:?}");
        assert_eq!(a.body, json!({"code": "401", "message": "HTTP 401 Unauthorized."}));
    }
    let bad_key = g.user(follower).submit(&spark_pi(), Some(&"k".repeat(300))).await?;
    assert_eq!(bad_key.status, StatusCode::BAD_REQUEST);

    tracing::info!("--- nothing changed anywhere");
    let all = g.admin(leader).call(Method::GET, &c.ctx("/admin/submissions"), None).await?;
    assert!(all.ok());
    assert_eq!(all.body, json!(""), "no job was recorded");
    for sim in &g.sims {
        assert!(sim.applications().await?.is_empty(), "nothing reached {}", sim.id);
    }
    Ok(())
}
