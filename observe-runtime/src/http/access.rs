//! Who may read the admin endpoints that reveal the process: `/debug/pprof/*` always,
//! `/metrics` when configured.
//!
//! By default only loopback peers are allowed. An allow-list of CIDRs and a bearer token
//! widen that: a request is allowed when its client address is loopback or allowed, or
//! when it presents the token. `X-Forwarded-For` is read only when the direct peer is a
//! configured trusted proxy, and then from the right (the entry the proxy appended),
//! skipping further trusted proxies, so a client cannot spoof its address.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// Every line of a repeated header, joined with `,` (as HTTP allows a list header to be
/// split across lines); `None` when absent.
pub(crate) fn joined_header(
    headers: &actix_web::http::header::HeaderMap,
    name: actix_web::http::header::HeaderName,
) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// The access rules of the admin endpoints.
///
/// ```
/// use observe_runtime::admin::{AccessPolicy, Decision};
/// let policy = AccessPolicy::loopback_only()
///     .allow("10.0.0.0/8").unwrap()
///     .token("s3cret");
/// let peer = "10.1.2.3".parse().ok();
/// assert_eq!(policy.check(peer, None, None), Decision::Allowed);
/// let outsider = "192.0.2.7".parse().ok();
/// assert!(matches!(policy.check(outsider, None, None), Decision::DeniedToken { .. }));
/// assert_eq!(policy.check(outsider, None, Some("Bearer s3cret")), Decision::Allowed);
/// ```
#[derive(Clone, Default)]
pub struct AccessPolicy {
    allow: Vec<IpNet>,
    token: Option<String>,
    trusted_proxies: Vec<IpNet>,
}

impl fmt::Debug for AccessPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessPolicy")
            .field("allow", &self.allow)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

/// A configuration value that could not be used; says which and why.
///
/// ```
/// let err = observe_runtime::admin::AccessPolicy::loopback_only().allow("10.0.0.0/33").unwrap_err();
/// assert!(err.to_string().contains("10.0.0.0/33"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting, e.g. `OBSERVE_ADMIN_ALLOW`.
    pub setting: &'static str,
    /// The value as given.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?} {}", self.setting, self.value, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// The outcome of [`AccessPolicy::check`].
///
/// ```
/// use observe_runtime::admin::{AccessPolicy, Decision};
/// let d = AccessPolicy::loopback_only().check("127.0.0.1".parse().ok(), None, None);
/// assert_eq!(d, Decision::Allowed);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allowed,
    /// The client address is not allowed and no token is configured (403).
    DeniedAddress(Option<IpAddr>),
    /// The client address is not allowed and the token is missing or wrong (401).
    DeniedToken {
        /// Whether a bearer token was presented at all.
        presented: bool,
    },
}

impl Decision {
    /// The one-line reason sent with a denial.
    ///
    /// ```
    /// use observe_runtime::admin::Decision;
    /// assert_eq!(Decision::DeniedToken { presented: false }.reason(), "bearer token required");
    /// ```
    pub fn reason(&self) -> String {
        match self {
            Decision::Allowed => "allowed".to_owned(),
            Decision::DeniedAddress(Some(ip)) => format!(
                "address {ip} is not allowed (loopback only unless OBSERVE_ADMIN_ALLOW or a token is configured)"
            ),
            Decision::DeniedAddress(None) => {
                "client address unknown (unparsable X-Forwarded-For from a trusted proxy)"
                    .to_owned()
            }
            Decision::DeniedToken { presented: false } => "bearer token required".to_owned(),
            Decision::DeniedToken { presented: true } => "bearer token invalid".to_owned(),
        }
    }
}

fn parse_nets(setting: &'static str, list: &str) -> Result<Vec<IpNet>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| parse_net(setting, item))
        .collect()
}

fn parse_net(setting: &'static str, item: &str) -> Result<IpNet, ConfigError> {
    item.parse::<IpNet>()
        .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| ConfigError {
            setting,
            value: item.to_owned(),
            reason: "is not an IP address or CIDR (e.g. 10.0.0.0/8, fd00::/8, 192.0.2.7)"
                .to_owned(),
        })
}

/// Compares without an early exit, so timing does not reveal how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl AccessPolicy {
    /// Loopback peers only: the default.
    ///
    /// ```
    /// use observe_runtime::admin::{AccessPolicy, Decision};
    /// let policy = AccessPolicy::loopback_only();
    /// assert_eq!(policy.check("::1".parse().ok(), None, None), Decision::Allowed);
    /// assert!(matches!(policy.check("192.0.2.1".parse().ok(), None, None), Decision::DeniedAddress(_)));
    /// ```
    pub fn loopback_only() -> Self {
        AccessPolicy::default()
    }

    /// Reads `OBSERVE_ADMIN_ALLOW` (comma-separated CIDRs or addresses),
    /// `OBSERVE_ADMIN_TOKEN` and `OBSERVE_ADMIN_TRUSTED_PROXIES` (CIDRs), on top of the
    /// loopback default. A value that cannot be parsed is an error naming it.
    ///
    /// ```
    /// let policy = observe_runtime::admin::AccessPolicy::from_env().unwrap();
    /// # drop(policy);
    /// ```
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut policy = AccessPolicy::loopback_only();
        if let Ok(list) = std::env::var("OBSERVE_ADMIN_ALLOW") {
            policy.allow = parse_nets("OBSERVE_ADMIN_ALLOW", &list)?;
        }
        if let Ok(token) = std::env::var("OBSERVE_ADMIN_TOKEN")
            && !token.is_empty()
        {
            policy.token = Some(token);
        }
        if let Ok(list) = std::env::var("OBSERVE_ADMIN_TRUSTED_PROXIES") {
            policy.trusted_proxies = parse_nets("OBSERVE_ADMIN_TRUSTED_PROXIES", &list)?;
        }
        Ok(policy)
    }

    /// Also allows clients in `cidr` (or one address).
    ///
    /// ```
    /// let policy = observe_runtime::admin::AccessPolicy::loopback_only().allow("fd00::/8").unwrap();
    /// # drop(policy);
    /// ```
    pub fn allow(mut self, cidr: &str) -> Result<Self, ConfigError> {
        self.allow.push(parse_net("allow", cidr)?);
        Ok(self)
    }

    /// Also allows any client that presents `Authorization: Bearer <token>`.
    ///
    /// ```
    /// let policy = observe_runtime::admin::AccessPolicy::loopback_only().token("t0ken");
    /// # drop(policy);
    /// ```
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Trusts `X-Forwarded-For` from peers in `cidr` (a reverse proxy or ingress).
    ///
    /// ```
    /// let policy = observe_runtime::admin::AccessPolicy::loopback_only().trust_proxy("10.0.0.1").unwrap();
    /// # drop(policy);
    /// ```
    pub fn trust_proxy(mut self, cidr: &str) -> Result<Self, ConfigError> {
        self.trusted_proxies.push(parse_net("trusted proxy", cidr)?);
        Ok(self)
    }

    fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy, then the
    /// rightmost `X-Forwarded-For` entry that is not itself a trusted proxy. `None` when
    /// a trusted proxy sent an entry that is not an address.
    ///
    /// ```
    /// let policy = observe_runtime::admin::AccessPolicy::loopback_only().trust_proxy("10.0.0.1").unwrap();
    /// let proxy = "10.0.0.1".parse().unwrap();
    /// assert_eq!(policy.client_ip(proxy, Some("127.0.0.1, 192.0.2.9")), "192.0.2.9".parse().ok());
    /// let other = "10.0.0.2".parse().unwrap();
    /// assert_eq!(policy.client_ip(other, Some("127.0.0.1")), Some(other));
    /// ```
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let peer = canonical(peer);
        let Some(list) = forwarded_for.filter(|_| self.is_trusted_proxy(peer)) else {
            return Some(peer);
        };
        let mut client = peer;
        for entry in list.rsplit(',').map(str::trim) {
            let ip = canonical(entry.parse::<IpAddr>().ok()?);
            client = ip;
            if !self.is_trusted_proxy(ip) {
                break;
            }
        }
        Some(client)
    }

    /// Decides on one request from its peer address, its `X-Forwarded-For` (all lines
    /// joined with `,`) and its `Authorization` header.
    ///
    /// ```
    /// use observe_runtime::admin::{AccessPolicy, Decision};
    /// let policy = AccessPolicy::loopback_only();
    /// // A spoofed header from an untrusted peer changes nothing.
    /// let peer = "192.0.2.1".parse().ok();
    /// assert!(matches!(policy.check(peer, Some("127.0.0.1"), None), Decision::DeniedAddress(_)));
    /// ```
    pub fn check(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: Option<&str>,
        authorization: Option<&str>,
    ) -> Decision {
        let client = peer.and_then(|p| self.client_ip(p, forwarded_for));
        if let Some(ip) = client
            && (ip.is_loopback() || self.allow.iter().any(|net| net.contains(&ip)))
        {
            return Decision::Allowed;
        }
        let Some(token) = &self.token else {
            return Decision::DeniedAddress(client);
        };
        let presented = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim);
        match presented {
            Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => {
                Decision::Allowed
            }
            Some(_) => Decision::DeniedToken { presented: true },
            None => Decision::DeniedToken {
                presented: authorization.is_some(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn loopback_is_allowed_in_every_form() {
        let p = AccessPolicy::loopback_only();
        for peer in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(p.check(ip(peer), None, None), Decision::Allowed, "{peer}");
        }
        assert_eq!(
            p.check(ip("10.0.0.1"), None, None),
            Decision::DeniedAddress(ip("10.0.0.1"))
        );
        assert_eq!(p.check(None, None, None), Decision::DeniedAddress(None));
    }

    #[test]
    fn cidrs_and_tokens_widen_access() {
        let p = AccessPolicy::loopback_only()
            .allow("10.0.0.0/8")
            .unwrap()
            .allow("fd00::/8")
            .unwrap()
            .token("abc");
        assert_eq!(p.check(ip("10.200.0.1"), None, None), Decision::Allowed);
        assert_eq!(p.check(ip("fd12::1"), None, None), Decision::Allowed);
        assert_eq!(
            p.check(ip("192.0.2.1"), None, None),
            Decision::DeniedToken { presented: false }
        );
        assert_eq!(
            p.check(ip("192.0.2.1"), None, Some("Bearer abd")),
            Decision::DeniedToken { presented: true }
        );
        assert_eq!(
            p.check(ip("192.0.2.1"), None, Some("Bearer ab")),
            Decision::DeniedToken { presented: true }
        );
        assert_eq!(
            p.check(ip("192.0.2.1"), None, Some("Basic abc")),
            Decision::DeniedToken { presented: true }
        );
        assert_eq!(
            p.check(ip("192.0.2.1"), None, Some("Bearer abc")),
            Decision::Allowed
        );
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_proxies_and_from_the_right() {
        let p = AccessPolicy::loopback_only()
            .trust_proxy("10.0.0.0/30")
            .unwrap();
        // Untrusted peer: header ignored.
        assert_eq!(
            p.check(ip("192.0.2.1"), Some("127.0.0.1"), None),
            Decision::DeniedAddress(ip("192.0.2.1"))
        );
        // Trusted proxy: the client prepended a spoofed loopback; the proxy appended the truth.
        assert_eq!(
            p.check(ip("10.0.0.1"), Some("127.0.0.1, 192.0.2.9"), None),
            Decision::DeniedAddress(ip("192.0.2.9"))
        );
        // Chains of trusted proxies are skipped.
        assert_eq!(
            p.client_ip("10.0.0.1".parse().unwrap(), Some("192.0.2.9, 10.0.0.2")),
            ip("192.0.2.9")
        );
        // A loopback client behind the proxy.
        assert_eq!(
            p.check(ip("10.0.0.1"), Some("127.0.0.1"), None),
            Decision::Allowed
        );
        // Garbage from a trusted proxy is not a free pass.
        assert_eq!(
            p.check(ip("10.0.0.1"), Some("not-an-ip"), None),
            Decision::DeniedAddress(None)
        );
    }

    #[test]
    fn bad_settings_name_the_value() {
        let err = AccessPolicy::loopback_only()
            .allow("10.0.0.0/40")
            .unwrap_err();
        assert_eq!(err.value, "10.0.0.0/40");
        assert!(parse_nets("X", "10.0.0.0/8, 192.0.2.1").is_ok());
        assert!(parse_nets("X", "10.0.0.0/8, nope").is_err());
    }

    #[test]
    fn constant_time_eq_compares_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
