//! rvsd's `HTTP_GET`/`SSL_GET` response-head parser (rvs-control's `checks::http`, included
//! by path: it uses `std` only) over arbitrary answers: a head, "incomplete" or a refusal,
//! never a panic; a head accepted lies within the input, ends with CRLFCRLF, is at most
//! `MAX_HEAD` bytes and has a status 100..=599.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../../control/src/checks/http.rs"]
mod http;

fuzz_target!(|data: &[u8]| {
    match http::parse_head(data) {
        Ok(h) => {
            assert!(h.len <= data.len() && h.len <= http::MAX_HEAD);
            assert_eq!(&data[h.len - 4..h.len], b"\r\n\r\n");
            assert!((100..=599).contains(&h.status));
            // More bytes after a complete head do not change it.
            let mut more = data[..h.len].to_vec();
            more.extend_from_slice(b"body");
            assert_eq!(http::parse_head(&more), Ok(h));
        }
        Err(http::HeadError::Incomplete) => assert!(data.len() <= http::MAX_HEAD),
        Err(http::HeadError::Bad(_)) => {}
    }
});
