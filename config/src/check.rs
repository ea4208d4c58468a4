//! Real-server health checks in the TOML: keepalived's checkers and their keywords, so
//! that a `virtual_server` block of a keepalived.conf and a `[[services]]` table say the
//! same thing in the same words.
//!
//! ```toml
//! [[services]]
//! proto = "tcp"
//! vip = "10.10.0.100:80"
//! scheduler = "rr"
//! delay_loop = 6            # keepalived's virtual_server delay_loop (seconds)
//! quorum = 1
//! sorry_server = "10.20.0.99:80"
//!
//! [[services.real]]
//! address = "10.20.0.11:80"
//! forward = "masq"
//! notify_down = "/etc/rvs/down.sh rs1"
//!
//! [[services.real.checks]]
//! type = "HTTP_GET"
//! connect_timeout = 3
//! retry = 3
//! delay_before_retry = 3
//! url = [{ path = "/", status_code = 200 }]
//! ```

use serde::{Deserialize, Serialize};

/// The checker: keepalived's block name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckKind {
    /// A TCP connect.
    #[serde(rename = "TCP_CHECK")]
    Tcp,
    /// An HTTP GET of each `url`, its status and optionally the MD5 digest of its body.
    #[serde(rename = "HTTP_GET")]
    HttpGet,
    /// [`CheckKind::HttpGet`] over TLS (the certificate is not verified, as keepalived).
    #[serde(rename = "SSL_GET")]
    SslGet,
    /// A DNS query of `dns_name`, type `dns_type`; any answer with the query's id and no
    /// error code is a success.
    #[serde(rename = "DNS_CHECK")]
    Dns,
    /// An operator's command: exit 0 is up; with `misc_dynamic`, exit 2..=255 is up with
    /// weight `status - 2`, exit 1 is down.
    #[serde(rename = "MISC_CHECK")]
    Misc,
    /// A UDP datagram (`payload`); up unless an ICMP port unreachable comes back, or, with
    /// `require_reply`, unless a reply starting with it comes back.
    #[serde(rename = "UDP_CHECK")]
    Udp,
}

/// One `url` of `HTTP_GET`/`SSL_GET`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Url {
    /// The path requested (`/`, `/health`).
    pub path: String,
    /// Accepted status codes (absent: 200..=299, as keepalived).
    #[serde(default)]
    pub status_code: Option<i64>,
    /// The MD5 of the body, 32 hex digits (absent: not checked).
    #[serde(default)]
    pub digest: Option<String>,
}

/// `[[services.real.checks]]`: one checker of a real server. A server is up while every
/// one of its checkers is up (as keepalived). Times are seconds (fractions allowed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Which checker.
    #[serde(rename = "type")]
    pub kind: CheckKind,
    /// Address to probe (default: the real server's).
    #[serde(default)]
    pub connect_ip: Option<String>,
    /// Port to probe (default: the real server's).
    #[serde(default)]
    pub connect_port: Option<i64>,
    /// Source address of the probe (default: the host's choice).
    #[serde(default)]
    pub bindto: Option<String>,
    /// Source port of the probe (default: any).
    #[serde(default)]
    pub bind_port: Option<i64>,
    /// Connect (and, for HTTP, whole-answer) timeout (default 5).
    #[serde(default)]
    pub connect_timeout: Option<f64>,
    /// Failed attempts in a row before the server is marked down (default 1 for
    /// `TCP_CHECK`, `UDP_CHECK`, `DNS_CHECK` and `MISC_CHECK`; 1 for HTTP too).
    #[serde(default)]
    pub retry: Option<i64>,
    /// Wait between a failed attempt and the next one (default 1).
    #[serde(default)]
    pub delay_before_retry: Option<f64>,
    /// Interval between checks (default: the service's `delay_loop`).
    #[serde(default)]
    pub delay_loop: Option<f64>,
    /// The first check waits a random time up to this (default 0: at once).
    #[serde(default)]
    pub warmup: Option<f64>,
    /// `HTTP_GET`/`SSL_GET`: the urls, all of which must answer.
    #[serde(default)]
    pub url: Vec<Url>,
    /// `HTTP_GET`/`SSL_GET`: the Host header (and SNI) (default: the service's
    /// `virtualhost`, else the address).
    #[serde(default)]
    pub virtualhost: Option<String>,
    /// `DNS_CHECK`: the record type (default `SOA`).
    #[serde(default)]
    pub dns_type: Option<String>,
    /// `DNS_CHECK`: the name queried (default `.`).
    #[serde(default)]
    pub dns_name: Option<String>,
    /// `MISC_CHECK`: the command (run by `/bin/sh -c`).
    #[serde(default)]
    pub misc_path: Option<String>,
    /// `MISC_CHECK`: seconds before the command is killed and the check failed (default:
    /// `delay_loop`).
    #[serde(default)]
    pub misc_timeout: Option<f64>,
    /// `MISC_CHECK`: the exit status sets the weight (see [`CheckKind::Misc`]).
    #[serde(default)]
    pub misc_dynamic: bool,
    /// `UDP_CHECK`: the datagram sent, as hex digits (default: empty).
    #[serde(default)]
    pub payload: Option<String>,
    /// `UDP_CHECK`: a reply must come back and start with these bytes (hex digits).
    #[serde(default)]
    pub require_reply: Option<String>,
}
