//! The SparkApplication CRD kubesim serves, embedded from `crds/` (kubeflow/spark-operator,
//! Apache-2.0; see `crds/SOURCE.txt`).

use std::sync::OnceLock;

use serde_json::Value;

use crate::schema::Schema;

const CRD_YAML: &str = include_str!("../crds/sparkoperator.k8s.io_sparkapplications.yaml");

/// What kubesim uses of the CRD.
#[derive(Debug)]
pub(crate) struct Crd {
    pub schema: Schema,
    /// `additionalPrinterColumns` of the served version.
    pub printer_columns: Vec<Value>,
}

/// The parsed CRD, loaded once per process.
pub(crate) fn spark_application() -> &'static Crd {
    static CRD: OnceLock<Crd> = OnceLock::new();
    CRD.get_or_init(|| {
        let document: Value = serde_saphyr::from_str(CRD_YAML).expect("the embedded CRD is valid YAML");
        let version = &document["spec"]["versions"][0];
        let schema = Schema::new(version["schema"]["openAPIV3Schema"].clone());
        let printer_columns = version["additionalPrinterColumns"].as_array().cloned().unwrap_or_default();
        Crd { schema, printer_columns }
    })
}
