use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The secret every node of a cluster shares. Authenticates Raft RPC and signs forwarded
/// requests. Its `Debug` output never shows the value.
#[derive(Clone)]
pub struct ClusterSecret(std::sync::Arc<str>);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(***)")
    }
}

impl ClusterSecret {
    pub fn new(value: impl Into<String>) -> Self {
        ClusterSecret(value.into().into())
    }

    /// The value to send as a bearer token.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a presented token.
    pub fn matches(&self, presented: &str) -> bool {
        let mut mac = self.mac();
        mac.update(presented.as_bytes());
        let mut expected = self.mac();
        expected.update(self.0.as_bytes());
        mac.verify_slice(&expected.finalize().into_bytes()).is_ok()
    }

    /// HMAC-SHA256 of `parts` joined by newlines, hex-encoded.
    pub fn sign(&self, parts: &[&[u8]]) -> String {
        let mut mac = self.mac();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                mac.update(b"\n");
            }
            mac.update(part);
        }
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Checks a signature made by [`ClusterSecret::sign`], in constant time.
    pub fn verify(&self, parts: &[&[u8]], signature: &str) -> bool {
        let expected = self.sign(parts);
        let mut mac = self.mac();
        mac.update(signature.as_bytes());
        let mut reference = self.mac();
        reference.update(expected.as_bytes());
        mac.verify_slice(&reference.finalize().into_bytes()).is_ok()
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(self.0.as_bytes()).expect("HMAC takes keys of any length")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_same_secret() {
        let s = ClusterSecret::new("s3cret");
        assert!(s.matches("s3cret"));
        assert!(!s.matches("s3cre"));
        assert!(!s.matches(""));
        assert!(!s.matches("s3cretx"));
    }

    #[test]
    fn signatures_bind_every_part() {
        let s = ClusterSecret::new("k");
        let sig = s.sign(&[b"alice", b"POST /skatev2/spark"]);
        assert!(s.verify(&[b"alice", b"POST /skatev2/spark"], &sig));
        assert!(!s.verify(&[b"mallory", b"POST /skatev2/spark"], &sig));
        assert!(!ClusterSecret::new("other").verify(&[b"alice", b"POST /skatev2/spark"], &sig));
        assert_eq!(format!("{s:?}"), "ClusterSecret(***)");
    }
}
