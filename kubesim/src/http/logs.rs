//! `GET /api/v1/namespaces/{ns}/pods/{name}/log`: a container's log, whole, tailed, or
//! followed until the container ends.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::KubeError;
use super::flag;
use crate::resource::Resource;
use crate::sim::Sim;

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct LogQuery {
    container: Option<String>,
    follow: Option<String>,
    tail_lines: Option<usize>,
    limit_bytes: Option<usize>,
}

pub(crate) async fn pod_log(
    State(sim): State<Sim>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    let Some(pod) = sim.store().get(&(Resource::Pod, ns.clone(), name.clone())) else {
        return KubeError::not_found(Resource::Pod, &name).into_response();
    };
    let container_name = pod["spec"]["containers"][0]["name"].as_str().unwrap_or("").to_owned();
    if let Some(c) = q.container.as_deref().filter(|c| !c.is_empty())
        && c != container_name
    {
        return KubeError::bad_request(format!("container {c} is not valid for pod {name}")).into_response();
    }
    if pod["status"]["phase"] == "Pending" {
        return KubeError::bad_request(format!(
            "container \"{container_name}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        ))
        .into_response();
    }
    let Some(log) = sim.inner.logs.get(&ns, &name) else {
        return ([(header::CONTENT_TYPE, "text/plain")], "").into_response();
    };
    let mut lines = log.lines_from(0);
    if let Some(n) = q.tail_lines {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let mut sent = log.lines_from(0).len();
    let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if let Some(limit) = q.limit_bytes {
        text.truncate(limit);
    }
    if !flag(&q.follow) || q.limit_bytes.is_some() {
        return ([(header::CONTENT_TYPE, "text/plain")], text).into_response();
    }
    let mut progress = log.subscribe();
    let stream = async_stream::stream! {
        yield Ok::<_, std::convert::Infallible>(Bytes::from(text));
        loop {
            let (count, done) = *progress.borrow_and_update();
            if count > sent {
                let chunk: String = log.lines_from(sent).iter().map(|l| format!("{l}\n")).collect();
                sent = count;
                yield Ok(Bytes::from(chunk));
            }
            if done || progress.changed().await.is_err() {
                let rest: String = log.lines_from(sent).iter().map(|l| format!("{l}\n")).collect();
                if !rest.is_empty() {
                    yield Ok(Bytes::from(rest));
                }
                break;
            }
        }
    };
    ([(header::CONTENT_TYPE, "text/plain")], Body::from_stream(stream)).into_response()
}
