//! `watch=true`: newline-delimited JSON events, as a real API server streams them.
//!
//! Without a resourceVersion (or with "0") the current objects come first as ADDED; with one,
//! every change after it is replayed from the store's history, or a 410 Expired ERROR event is
//! sent when the history no longer reaches back that far. An object that stops (starts)
//! matching the selectors is sent as DELETED (ADDED). A watcher that falls too far behind gets
//! 410 and must re-list, as kube-runtime's watcher expects. BOOKMARKs are sent when asked for;
//! the stream ends after `timeoutSeconds`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::error::KubeError;
use super::{ListQuery, flag};
use crate::object::Object;
use crate::resource::Resource;
use crate::selector::{FieldSelector, LabelSelector};
use crate::sim::Sim;
use crate::store::{Change, ChangeKind};

/// Default and largest watch duration, as kube's default (290 s) or a client's choice.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
const BOOKMARK_EVERY: Duration = Duration::from_secs(1);

struct Filter {
    resource: Resource,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches(&self, o: &Object) -> bool {
        self.labels.matches(o) && self.fields.matches(o)
    }

    /// The event a change becomes for this watcher, if any, as the line to send.
    fn line(&self, c: &Change) -> Option<Bytes> {
        let (kind, object) = self.event(c)?;
        Some(match c.revision_override() {
            Some(rv) => line(kind, &object.at_revision(rv)),
            None => line(kind, object.as_ref()),
        })
    }

    /// The event a change becomes for this watcher, if any.
    fn event(&self, c: &Change) -> Option<(&'static str, Arc<Object>)> {
        if c.resource != self.resource {
            return None;
        }
        if let Some(ns) = &self.namespace
            && c.object["metadata"]["namespace"].as_str() != Some(ns)
        {
            return None;
        }
        let now = self.matches(&c.object);
        let before = c.previous.as_ref().is_some_and(|p| self.matches(p));
        match c.kind {
            ChangeKind::Added => now.then_some(("ADDED", c.object.clone())),
            ChangeKind::Deleted => (now || before).then_some(("DELETED", c.object.clone())),
            ChangeKind::Modified => match (before, now) {
                (true, true) => Some(("MODIFIED", c.object.clone())),
                (false, true) => Some(("ADDED", c.object.clone())),
                (true, false) => Some(("DELETED", c.object.clone())),
                (false, false) => None,
            },
        }
    }
}

/// One watch event, `{"type":…,"object":…}` and a newline, serialized straight from the
/// stored object (no copy of it: applications are large and every watcher gets every change).
fn line(kind: &str, object: &impl serde::Serialize) -> Bytes {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"type\":");
    serde_json::to_writer(&mut out, kind).expect("a string serializes");
    out.extend_from_slice(b",\"object\":");
    serde_json::to_writer(&mut out, object).expect("a JSON value serializes");
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

fn bookmark(res: Resource, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line("BOOKMARK", &json!({"apiVersion": res.api_version(), "kind": res.kind(), "metadata": meta}))
}

fn expired(message: String) -> Bytes {
    line("ERROR", &KubeError::expired(message).status_json())
}

pub(crate) fn serve(
    sim: Sim,
    res: Resource,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    q: &ListQuery,
) -> Response {
    let filter = Filter { resource: res, namespace, labels, fields };
    let timeout = q.timeout_seconds.map(Duration::from_secs).unwrap_or(DEFAULT_TIMEOUT).min(DEFAULT_TIMEOUT);
    let bookmarks = flag(&q.allow_watch_bookmarks);
    let initial_events = flag(&q.send_initial_events);
    let from = q.resource_version.as_deref().filter(|rv| !rv.is_empty() && *rv != "0");

    let mut first: Vec<Bytes> = Vec::new();
    let (mut progress, mut rx) = match from {
        Some(rv) if !initial_events => {
            let Ok(since) = rv.parse::<u64>() else {
                return KubeError::bad_request(format!("invalid resource version {rv:?}")).into_response();
            };
            match sim.store().watch_from(res, since) {
                Ok((backlog, rx)) => {
                    first.extend(backlog.iter().filter_map(|c| filter.line(c)));
                    (backlog.last().map(|c| c.rv).unwrap_or(since), rx)
                }
                Err(too_old) => {
                    let msg = format!("too old resource version: {} ({})", too_old.requested, too_old.oldest);
                    return stream_response(futures::stream::iter([Ok::<_, std::convert::Infallible>(expired(msg))]));
                }
            }
        }
        _ => {
            let (rv, items, rx) = sim.store().watch_now(res, filter.namespace.as_deref());
            for o in items.iter().filter(|o| filter.matches(o)) {
                first.push(line("ADDED", o.as_ref()));
            }
            if initial_events {
                first.push(bookmark(res, rv, true));
            }
            (rv, rx)
        }
    };

    let stream = async_stream::stream! {
        for b in first {
            yield Ok::<_, std::convert::Infallible>(b);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = ticker.tick(), if bookmarks => yield Ok(bookmark(res, progress, false)),
                got = rx.recv() => match got {
                    Ok(change) => {
                        if change.rv <= progress {
                            continue;
                        }
                        progress = change.rv;
                        if let Some(l) = filter.line(&change) {
                            yield Ok(l);
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        yield Ok(expired(format!("watch fell behind at resource version {progress}; re-list")));
                        break;
                    }
                    Err(RecvError::Closed) => break,
                },
            }
        }
    };
    stream_response(stream)
}

fn stream_response<S>(stream: S) -> Response
where
    S: futures::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static,
{
    ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(stream)).into_response()
}
