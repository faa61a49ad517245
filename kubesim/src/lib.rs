//! kubesim: a simulated Kubernetes API server with Spark Operator behaviour, for bpg's tests and
//! local demos. It answers the Kubernetes REST calls the gateway makes, over HTTP only; it shares
//! no code with the gateway.
