//! The HTTP answer of `HTTP_GET`/`SSL_GET`: the request sent and the response head read
//! back (network input: bounded, never panics, fuzzed by `dataplane/fuzz`'s `http_head`,
//! which includes this file: it uses `std` only).

/// Largest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest body read (and digested); a longer answer fails the check.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// The request: HTTP/1.0 as keepalived sends it, with `Connection: close` so that the
/// server ends the answer by closing.
pub fn request(path: &str, host: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.0\r\nUser-Agent: rvs-checker\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// `Content-Length`, when given.
    pub content_length: Option<usize>,
    /// Bytes of the head, CRLFCRLF included: the body starts here.
    pub len: usize,
}

/// Why a response head is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// More bytes are needed.
    Incomplete,
    /// Not an HTTP response head (the text says why).
    Bad(&'static str),
}

/// Parses the response head at the start of `buf`.
pub fn parse_head(buf: &[u8]) -> Result<Head, HeadError> {
    let end = match buf.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => p + 4,
        None if buf.len() > MAX_HEAD => return Err(HeadError::Bad("response head too long")),
        None => return Err(HeadError::Incomplete),
    };
    if end > MAX_HEAD {
        return Err(HeadError::Bad("response head too long"));
    }
    let head = &buf[..end - 4];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, |&b| b == b' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with(b"HTTP/1.") || version.len() != 8 {
        return Err(HeadError::Bad("not an HTTP/1.x status line"));
    }
    let code = parts.next().unwrap_or_default();
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::Bad("bad status code"));
    }
    let status = code.iter().fold(0u16, |a, &d| a * 10 + u16::from(d - b'0'));
    if !(100..=599).contains(&status) {
        return Err(HeadError::Bad("bad status code"));
    }
    let mut content_length = None;
    for l in lines {
        let Some(colon) = l.iter().position(|&b| b == b':') else {
            return Err(HeadError::Bad("header line without a colon"));
        };
        if l[..colon].eq_ignore_ascii_case(b"content-length") {
            let v = std::str::from_utf8(&l[colon + 1..])
                .ok()
                .map(str::trim)
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or(HeadError::Bad("bad Content-Length"))?;
            content_length = Some(v);
        }
    }
    Ok(Head {
        status,
        content_length,
        len: end,
    })
}

/// Whether `status` is accepted: within one of the `expected` ranges, or any 2xx when
/// none is configured (as keepalived).
pub fn status_ok(status: u16, expected: &[(u16, u16)]) -> bool {
    if expected.is_empty() {
        return (200..=299).contains(&status);
    }
    expected.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_parsed_and_bad_ones_refused() {
        let h =
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello").unwrap();
        assert_eq!(
            h,
            Head {
                status: 200,
                content_length: Some(5),
                len: 49
            }
        );
        assert_eq!(
            parse_head(b"HTTP/1.0 404 Not Found\r\n\r\n")
                .unwrap()
                .status,
            404
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\n"),
            Err(HeadError::Incomplete)
        );
        assert!(matches!(
            parse_head(b"SSH-2.0-x\r\n\r\n"),
            Err(HeadError::Bad(_))
        ));
        assert!(matches!(
            parse_head(b"HTTP/1.1 2x0 OK\r\n\r\n"),
            Err(HeadError::Bad(_))
        ));
        assert!(matches!(
            parse_head(b"HTTP/1.1 099 OK\r\n\r\n"),
            Err(HeadError::Bad(_))
        ));
        assert!(matches!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
            Err(HeadError::Bad(_))
        ));
        assert!(matches!(
            parse_head(b"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n"),
            Err(HeadError::Bad(_))
        ));
        let long = vec![b'a'; MAX_HEAD + 1];
        assert!(matches!(parse_head(&long), Err(HeadError::Bad(_))));
    }

    #[test]
    fn status_and_digest() {
        assert!(status_ok(204, &[]));
        assert!(!status_ok(301, &[]));
        assert!(status_ok(301, &[(301, 301)]));
        assert!(!status_ok(200, &[(301, 301)]));
        // keepalived's `status_code 200-299 301`.
        let codes = [(200, 299), (301, 301)];
        assert!(status_ok(204, &codes) && status_ok(301, &codes));
        assert!(!status_ok(302, &codes) && !status_ok(404, &codes));
        assert!(request("/x", "h").starts_with(b"GET /x HTTP/1.0\r\n"));
    }
}
