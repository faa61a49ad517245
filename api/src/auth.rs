//! Who is calling: [`Auth`] checks credentials; the [`Caller`] and [`Admin`] extractors put the
//! requirement in each handler's signature.
//!
//! Accepted, in order: the cluster secret as a bearer token (operators and nodes; admin);
//! the `User-Account` header, only when `auth.trustUserAccountHeader` is set (an auth sidecar
//! in front, as BPG's README suggests); HTTP Basic with a password checked against the user's
//! argon2 hash. Then BPG's `blockedUsers` / `allowedUsers` (`*` allows everyone) apply.
//! Unlike BPG, passwords are checked, and users other than admins see only their own jobs.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use base64::Engine;
use bpg_raft::ClusterSecret;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// One user with a password.
#[derive(Clone, Debug)]
pub struct UserEntry {
    pub name: String,
    /// PHC string, `$argon2id$v=19$...`.
    pub password_hash: String,
    pub admin: bool,
}

/// The authentication settings, validated by `node`.
#[derive(Clone, Debug, Default)]
pub struct AuthSettings {
    pub users: Vec<UserEntry>,
    /// BPG `allowedUsers`; `*` allows every authenticated name. Empty allows nobody.
    pub allowed_users: Vec<String>,
    /// BPG `blockedUsers`.
    pub blocked_users: Vec<String>,
    /// BPG `adminUsers` (read by bpg, unlike BPG): may see and delete every job and change
    /// cluster weights.
    pub admin_users: Vec<String>,
    /// Take the user name from the `User-Account` header without a password.
    pub trust_user_account_header: bool,
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub admin: bool,
}

/// Name given to callers presenting the cluster secret.
pub const CLUSTER_OPERATOR: &str = "bpg-operator";

/// How long a verified password is remembered, so that argon2 runs once per client and
/// period rather than on every request.
const VERIFIED_TTL: Duration = Duration::from_secs(300);
const VERIFIED_MAX: usize = 10_000;

pub struct Auth {
    users: HashMap<String, UserEntry>,
    allow_all: bool,
    allowed: HashSet<String>,
    blocked: HashSet<String>,
    admins: HashSet<String>,
    trust_user_account_header: bool,
    secret: ClusterSecret,
    /// Digests of (user, password, per-process salt) that verified, with the time they did.
    verified: Mutex<HashMap<[u8; 32], Instant>>,
    salt: [u8; 16],
    /// argon2 runs at once, one per core. Each takes 19 MiB and tens of milliseconds of CPU:
    /// unbounded, 64 clients arriving together with the same password (or a flood of wrong
    /// ones) ran 64 of them, over a gigabyte that the allocator kept afterwards.
    argon2_slots: tokio::sync::Semaphore,
    /// One lock per credential digest being checked: requests with the same credentials wait
    /// for the first check and then find it remembered instead of running their own.
    checking: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
    argon2_runs: AtomicU64,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("users", &self.users.len()).finish_non_exhaustive()
    }
}

impl Auth {
    /// Fails if a password hash is not a valid PHC string.
    pub fn new(settings: AuthSettings, secret: ClusterSecret) -> Result<Auth, String> {
        for user in &settings.users {
            PasswordHash::new(&user.password_hash)
                .map_err(|e| format!("password hash of user {:?} is not a valid PHC string: {e}", user.name))?;
        }
        Ok(Auth {
            allow_all: settings.allowed_users.iter().any(|u| u == "*"),
            allowed: settings.allowed_users.into_iter().collect(),
            blocked: settings.blocked_users.into_iter().collect(),
            admins: settings
                .admin_users
                .into_iter()
                .chain(settings.users.iter().filter(|u| u.admin).map(|u| u.name.clone()))
                .collect(),
            users: settings.users.into_iter().map(|u| (u.name.clone(), u)).collect(),
            trust_user_account_header: settings.trust_user_account_header,
            secret,
            verified: Mutex::new(HashMap::new()),
            salt: rand::random(),
            argon2_slots: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            ),
            checking: Mutex::new(HashMap::new()),
            argon2_runs: AtomicU64::new(0),
        })
    }

    /// Authenticates a request from its headers. Cancellation-safe.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, ApiError> {
        let authorization = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if let Some(token) = authorization.and_then(|v| v.strip_prefix("Bearer ")) {
            return if self.secret.matches(token) {
                Ok(Identity { name: CLUSTER_OPERATOR.into(), admin: true })
            } else {
                Err(ApiError::Unauthorized)
            };
        }
        if self.trust_user_account_header
            && let Some(name) = headers.get("user-account").and_then(|v| v.to_str().ok())
            && !name.is_empty()
        {
            return self.admit(name);
        }
        let Some(basic) = authorization.and_then(|v| v.strip_prefix("Basic ")) else {
            return Err(ApiError::Unauthorized);
        };
        let decoded =
            base64::engine::general_purpose::STANDARD.decode(basic.trim()).map_err(|_| ApiError::Unauthorized)?;
        let text = String::from_utf8(decoded).map_err(|_| ApiError::Unauthorized)?;
        let (name, password) = text.split_once(':').ok_or(ApiError::Unauthorized)?;
        let Some(user) = self.users.get(name) else { return Err(ApiError::Unauthorized) };
        if !self.password_ok(user, password).await {
            return Err(ApiError::Unauthorized);
        }
        self.admit(name)
    }

    fn admit(&self, name: &str) -> Result<Identity, ApiError> {
        if self.blocked.contains(name) || !(self.allow_all || self.allowed.contains(name)) {
            return Err(ApiError::Unauthorized);
        }
        Ok(Identity { name: name.to_owned(), admin: self.admins.contains(name) })
    }

    async fn password_ok(&self, user: &UserEntry, password: &str) -> bool {
        let digest: [u8; 32] = Sha256::new()
            .chain_update(self.salt)
            .chain_update(user.name.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .finalize()
            .into();
        if self.recently_verified(&digest) {
            return true;
        }
        let same_credentials = self.checking.lock().expect("checking map poisoned").entry(digest).or_default().clone();
        let ok = {
            let _turn = same_credentials.lock().await;
            self.recently_verified(&digest) || self.run_argon2(user, password, digest).await
        };
        drop(same_credentials);
        // Forget the locks nobody waits on (a cancelled request may have left one).
        self.checking.lock().expect("checking map poisoned").retain(|_, lock| Arc::strong_count(lock) > 1);
        ok
    }

    async fn run_argon2(&self, user: &UserEntry, password: &str, digest: [u8; 32]) -> bool {
        let Ok(_slot) = self.argon2_slots.acquire().await else { return false };
        self.argon2_runs.fetch_add(1, Ordering::Relaxed);
        let hash = user.password_hash.clone();
        let password = password.to_owned();
        // argon2 is deliberately slow: keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        })
        .await
        .unwrap_or(false);
        if ok {
            // A short critical section with no await inside: a std mutex is the right tool.
            let mut verified = self.verified.lock().expect("verified-password cache poisoned");
            if verified.len() >= VERIFIED_MAX {
                verified.retain(|_, at| at.elapsed() < VERIFIED_TTL);
                if verified.len() >= VERIFIED_MAX {
                    verified.clear();
                }
            }
            verified.insert(digest, Instant::now());
        }
        ok
    }

    fn recently_verified(&self, digest: &[u8; 32]) -> bool {
        let verified = self.verified.lock().expect("verified-password cache poisoned");
        verified.get(digest).is_some_and(|at| at.elapsed() < VERIFIED_TTL)
    }

    /// How many times a password has been checked against its argon2 hash.
    #[cfg(test)]
    fn argon2_runs(&self) -> u64 {
        self.argon2_runs.load(Ordering::Relaxed)
    }
}

/// Hashes a password into a PHC string for the config file (`bpg hash-password`).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher;
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Any authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller(pub Identity);

/// An authenticated caller with the admin role; others get 403.
#[derive(Clone, Debug)]
pub struct Admin(pub Identity);

impl<S> FromRequestParts<S> for Caller
where
    Arc<Auth>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let auth = Arc::<Auth>::from_ref(state);
        auth.authenticate(&parts.headers).await.map(Caller)
    }
}

impl<S> FromRequestParts<S> for Admin
where
    Arc<Auth>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Caller(identity) = Caller::from_request_parts(parts, state).await?;
        if identity.admin {
            Ok(Admin(identity))
        } else {
            Err(ApiError::Forbidden(format!("user {} is not an admin", identity.name)))
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn basic(user: &str, pw: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        h.insert("authorization", HeaderValue::from_str(&format!("Basic {v}")).unwrap());
        h
    }

    fn auth(trust_header: bool) -> Auth {
        let settings = AuthSettings {
            users: vec![
                UserEntry { name: "alice".into(), password_hash: hash_password("pw-a").unwrap(), admin: false },
                UserEntry { name: "root".into(), password_hash: hash_password("pw-r").unwrap(), admin: true },
                UserEntry { name: "eve".into(), password_hash: hash_password("pw-e").unwrap(), admin: false },
            ],
            allowed_users: vec!["*".into()],
            blocked_users: vec!["eve".into()],
            admin_users: vec![],
            trust_user_account_header: trust_header,
        };
        Auth::new(settings, ClusterSecret::new("sekrit")).unwrap()
    }

    #[tokio::test]
    async fn passwords_are_checked() {
        let a = auth(false);
        assert_eq!(
            a.authenticate(&basic("alice", "pw-a")).await.unwrap(),
            Identity { name: "alice".into(), admin: false }
        );
        // Twice: the second answer comes from the verified cache and must agree.
        assert!(a.authenticate(&basic("alice", "pw-a")).await.is_ok());
        assert!(matches!(a.authenticate(&basic("alice", "wrong")).await, Err(ApiError::Unauthorized)));
        assert!(matches!(a.authenticate(&basic("nobody", "x")).await, Err(ApiError::Unauthorized)));
        assert!(a.authenticate(&basic("root", "pw-r")).await.unwrap().admin);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn clients_arriving_together_with_one_password_cost_one_argon2_run() {
        let auth = Arc::new(auth(false));
        let attempts: Vec<_> = (0..32)
            .map(|_| {
                let auth = auth.clone();
                tokio::spawn(async move { auth.authenticate(&basic("alice", "pw-a")).await })
            })
            .collect();
        for attempt in attempts {
            assert_eq!(attempt.await.unwrap().unwrap().name, "alice");
        }
        assert_eq!(auth.argon2_runs(), 1);
        // A wrong password is never remembered: each attempt is checked.
        for _ in 0..2 {
            assert!(auth.authenticate(&basic("alice", "wrong")).await.is_err());
        }
        assert_eq!(auth.argon2_runs(), 3);
    }

    #[tokio::test]
    async fn blocked_users_are_refused_even_with_the_right_password() {
        assert!(matches!(auth(false).authenticate(&basic("eve", "pw-e")).await, Err(ApiError::Unauthorized)));
    }

    #[tokio::test]
    async fn user_account_header_counts_only_when_trusted() {
        let mut h = HeaderMap::new();
        h.insert("user-account", HeaderValue::from_static("bob"));
        assert!(matches!(auth(false).authenticate(&h).await, Err(ApiError::Unauthorized)));
        assert_eq!(auth(true).authenticate(&h).await.unwrap().name, "bob");
    }

    #[tokio::test]
    async fn the_cluster_secret_is_an_admin_credential() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer sekrit"));
        assert!(auth(false).authenticate(&h).await.unwrap().admin);
        h.insert("authorization", HeaderValue::from_static("Bearer nope"));
        assert!(matches!(auth(false).authenticate(&h).await, Err(ApiError::Unauthorized)));
    }

    #[tokio::test]
    async fn an_empty_allow_list_admits_nobody() {
        let settings = AuthSettings {
            users: vec![UserEntry { name: "alice".into(), password_hash: hash_password("pw").unwrap(), admin: false }],
            ..AuthSettings::default()
        };
        let a = Auth::new(settings, ClusterSecret::new("s")).unwrap();
        assert!(matches!(a.authenticate(&basic("alice", "pw")).await, Err(ApiError::Unauthorized)));
    }
}
