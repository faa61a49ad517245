//! The kinds of object kubesim serves, and what the API server knows about each.

use serde_json::{Value, json};

/// A served resource type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    SparkApplication,
    Pod,
    Event,
}

pub(crate) const SPARK_GROUP: &str = "sparkoperator.k8s.io";
pub(crate) const SPARK_VERSION: &str = "v1beta2";

impl Resource {
    pub const ALL: [Resource; 3] = [Resource::SparkApplication, Resource::Pod, Resource::Event];

    /// Its position in [`Resource::ALL`], for per-resource arrays.
    pub(crate) fn slot(self) -> usize {
        self as usize
    }

    pub fn kind(self) -> &'static str {
        match self {
            Resource::SparkApplication => "SparkApplication",
            Resource::Pod => "Pod",
            Resource::Event => "Event",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Resource::SparkApplication => "sparkapplications",
            Resource::Pod => "pods",
            Resource::Event => "events",
        }
    }

    pub fn singular(self) -> &'static str {
        match self {
            Resource::SparkApplication => "sparkapplication",
            Resource::Pod => "pod",
            Resource::Event => "event",
        }
    }

    /// Empty for the core group.
    pub fn group(self) -> &'static str {
        match self {
            Resource::SparkApplication => SPARK_GROUP,
            Resource::Pod | Resource::Event => "",
        }
    }

    pub fn version(self) -> &'static str {
        match self {
            Resource::SparkApplication => SPARK_VERSION,
            Resource::Pod | Resource::Event => "v1",
        }
    }

    pub fn api_version(self) -> String {
        match self.group() {
            "" => self.version().to_owned(),
            g => format!("{g}/{}", self.version()),
        }
    }

    /// `sparkapplications.sparkoperator.k8s.io`, as API errors name it.
    pub fn qualified(self) -> String {
        match self.group() {
            "" => self.plural().to_owned(),
            g => format!("{}.{g}", self.plural()),
        }
    }

    /// `SparkApplication.sparkoperator.k8s.io`, as validation errors name it.
    pub fn qualified_kind(self) -> String {
        match self.group() {
            "" => self.kind().to_owned(),
            g => format!("{}.{g}", self.kind()),
        }
    }

    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Resource::SparkApplication => &["sparkapp"],
            Resource::Pod => &["po"],
            Resource::Event => &["ev"],
        }
    }

    pub fn has_status_subresource(self) -> bool {
        matches!(self, Resource::SparkApplication | Resource::Pod)
    }

    /// Entry in an `APIResourceList`.
    pub fn api_resource(self) -> Value {
        let mut r = json!({
            "name": self.plural(),
            "singularName": self.singular(),
            "namespaced": true,
            "kind": self.kind(),
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": self.short_names(),
        });
        if self == Resource::SparkApplication {
            r["categories"] = json!(["all"]);
        }
        r
    }
}
