//! `Accept: application/json;as=Table;...`: rows for kubectl, with the CRD's printer columns.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::crd;
use crate::object::Object;
use crate::resource::Resource;

/// "5m", "3h", "2d" as kubectl shows ages.
pub(crate) fn human_age(timestamp: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(timestamp) else { return "<unknown>".into() };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn columns(res: Resource) -> Vec<(String, String, String)> {
    let mut cols = vec![("Name".to_owned(), "string".to_owned(), ".metadata.name".to_owned())];
    match res {
        Resource::SparkApplication => {
            for c in &crd::spark_application().printer_columns {
                cols.push((
                    c["name"].as_str().unwrap_or("").into(),
                    c["type"].as_str().unwrap_or("string").into(),
                    c["jsonPath"].as_str().unwrap_or("").into(),
                ));
            }
        }
        Resource::Pod => {
            cols.push(("Status".into(), "string".into(), ".status.phase".into()));
            cols.push(("Age".into(), "date".into(), ".metadata.creationTimestamp".into()));
        }
        Resource::Event => {
            cols.push(("Type".into(), "string".into(), ".type".into()));
            cols.push(("Reason".into(), "string".into(), ".reason".into()));
            cols.push(("Object".into(), "string".into(), ".involvedObject.name".into()));
            cols.push(("Message".into(), "string".into(), ".message".into()));
        }
    }
    cols
}

pub(crate) fn table(res: Resource, items: &[Arc<Object>], metadata: Value, include_object: Option<&str>) -> Value {
    let cols = columns(res);
    let definitions: Vec<Value> = cols
        .iter()
        .map(|(name, ty, _)| {
            let format = if name == "Name" { "name" } else { "" };
            let ty = if ty == "date" { "string" } else { ty.as_str() };
            json!({"name": name, "type": ty, "format": format, "description": "", "priority": 0})
        })
        .collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let cells: Vec<Value> = cols
                .iter()
                .map(|(_, ty, path)| {
                    let v = o.at(path.trim_start_matches('.'));
                    match (ty.as_str(), v) {
                        ("date", Value::String(s)) => json!(human_age(s)),
                        (_, Value::Null) => json!(""),
                        (_, v) => v.clone(),
                    }
                })
                .collect();
            let object = match include_object {
                Some("Object") => o.to_value(),
                Some("None") => Value::Null,
                _ => {
                    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.metadata_value()})
                }
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": definitions, "rows": rows})
}
