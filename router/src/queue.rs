//! Queue resolution (BPG §4.1) and queue tokens: HS256 JWTs with issuer `admin` or `airflow`
//! whose `allowedQueues` claim lists the queue.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt;
use serde_json::Value;
use sha2::Sha256;

use crate::config::Policy;

/// Collapses runs of dots and trims leading and trailing dots: `...a..b..` → `a.b`.
pub fn normalize_queue(queue: &str) -> String {
    queue.split('.').filter(|p| !p.is_empty()).collect::<Vec<_>>().join(".")
}

/// The text before the first `.`.
pub fn parent_queue(queue: &str) -> &str {
    queue.split('.').next().unwrap_or(queue)
}

/// The queue of a submission: the request's, else a random queue listing the user, else `poc`.
pub fn resolve_queue(policy: &Policy, requested: Option<&str>, user: &str, rng: &mut impl rand::Rng) -> String {
    if let Some(q) = requested.map(normalize_queue).filter(|q| !q.is_empty()) {
        return q;
    }
    let mine: Vec<&str> = policy
        .queues
        .iter()
        .filter(|q| q.users.iter().any(|u| u.eq_ignore_ascii_case(user)))
        .map(|q| q.name.as_str())
        .collect();
    if mine.is_empty() { "poc".to_owned() } else { mine[rng.random_range(0..mine.len())].to_owned() }
}

/// Checks a queue token for `queue` against any of `secrets`.
pub fn verify_queue_token(token: &str, queue: &str, secrets: &[String], now_secs: u64) -> Result<(), String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts.as_slice() else {
        return Err("queueToken is not a valid JWT".into());
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header: Value =
        b64.decode(header).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or("queueToken is not a valid JWT")?;
    if header["alg"] != "HS256" {
        return Err("queueToken must be signed with HS256".into());
    }
    let signature = b64.decode(signature).map_err(|_| "queueToken is not a valid JWT")?;
    let signed = format!("{}.{}", parts[0], parts[1]);
    let valid = secrets.iter().any(|s| {
        let mut mac = Hmac::<Sha256>::new_from_slice(s.as_bytes()).expect("any key length");
        mac.update(signed.as_bytes());
        mac.verify_slice(&signature).is_ok()
    });
    if !valid {
        return Err("queueToken signature is invalid".into());
    }
    let claims: Value = b64
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("queueToken is not a valid JWT")?;
    match claims["iss"].as_str() {
        None => return Err("queueToken has no issuer".into()),
        Some("admin" | "airflow") => {}
        Some(other) => return Err(format!("queueToken issuer {other:?} is not admin or airflow")),
    }
    if let Some(exp) = claims["exp"].as_u64()
        && exp < now_secs
    {
        return Err("queueToken has expired".into());
    }
    let Some(allowed) = claims["allowedQueues"].as_array() else {
        return Err("queueToken has no allowedQueues claim".into());
    };
    if !allowed.iter().any(|q| q.as_str() == Some(queue)) {
        return Err(format!("queueToken does not allow queue {queue}"));
    }
    Ok(())
}

/// Makes a queue token (`bpg queue-token`, and tests).
pub fn issue_queue_token(secret: &str, subject: &str, queues: &[&str], issuer: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({"sub": subject, "iss": issuer, "allowedQueues": queues});
    let payload = b64.encode(claims.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{header}.{payload}").as_bytes());
    format!("{header}.{payload}.{}", b64.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::config::QueueConfig;

    #[test]
    fn queues_normalize_and_default() {
        assert_eq!(normalize_queue("...parent..q1.."), "parent.q1");
        assert_eq!(parent_queue("parent.q1"), "parent");
        let mut policy = Policy::default();
        let mut q = QueueConfig::named("etl");
        q.users = vec!["Alice".into()];
        policy.queues.push(q);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(resolve_queue(&policy, None, "alice", &mut rng), "etl");
        assert_eq!(resolve_queue(&policy, None, "bob", &mut rng), "poc");
        assert_eq!(resolve_queue(&policy, Some(".dev."), "alice", &mut rng), "dev");
    }

    #[test]
    fn queue_tokens_are_checked() {
        let secrets = vec!["old".to_owned(), "new".to_owned()];
        let token = issue_queue_token("new", "svc", &["vip"], "admin");
        assert_eq!(verify_queue_token(&token, "vip", &secrets, 0), Ok(()));
        assert!(verify_queue_token(&token, "other", &secrets, 0).unwrap_err().contains("does not allow"));
        assert!(verify_queue_token(&token, "vip", &["wrong".to_owned()], 0).unwrap_err().contains("signature"));
        let bad_issuer = issue_queue_token("new", "svc", &["vip"], "mallory");
        assert!(verify_queue_token(&bad_issuer, "vip", &secrets, 0).unwrap_err().contains("issuer"));
        assert!(verify_queue_token("not-a-jwt", "vip", &secrets, 0).is_err());
    }
}
