//! `DNS_CHECK`'s query and the check of its answer (network input: bounded, never
//! panics, fuzzed by `dataplane/fuzz`'s `dns_answer`, which includes this file: it uses
//! `std` only).

/// The query: header (`id`, RD set, one question) and the question `name`/`qtype`/IN.
/// `name` must satisfy `rvs_config::check::dns_name_ok` (labels too long are cut).
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(12 + name.len() + 6);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00]); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        let l = &label.as_bytes()[..label.len().min(63)];
        q.push(l.len() as u8);
        q.extend_from_slice(l);
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]); // IN
    q
}

/// Checks an answer to the query with `id`: same id, QR set, RCODE 0 (NOERROR), as
/// keepalived. The error names what is wrong.
pub fn check_answer(id: u16, answer: &[u8]) -> Result<(), String> {
    if answer.len() < 12 {
        return Err(format!("short DNS answer ({} bytes)", answer.len()));
    }
    let got = u16::from_be_bytes([answer[0], answer[1]]);
    if got != id {
        return Err(format!("DNS answer id {got} is not the query's {id}"));
    }
    if answer[2] & 0x80 == 0 {
        return Err("DNS message is not an answer (QR clear)".into());
    }
    let rcode = answer[3] & 0x0f;
    if rcode != 0 {
        let name = match rcode {
            1 => "FORMERR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            4 => "NOTIMP",
            5 => "REFUSED",
            _ => "error",
        };
        return Err(format!("DNS answer rcode {rcode} ({name})"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_wire_format() {
        let q = query(0x1234, "www.example.org.", 1);
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x03www\x07example\x03org\x00\x00\x01\x00\x01");
        // The root.
        assert_eq!(&query(1, ".", 6)[12..], &[0, 0, 6, 0, 1]);
    }

    #[test]
    fn answers_are_checked() {
        let mut a = query(7, "x", 1);
        assert!(check_answer(7, &a).unwrap_err().contains("QR clear"));
        a[2] |= 0x80;
        assert_eq!(check_answer(7, &a), Ok(()));
        assert!(check_answer(8, &a).unwrap_err().contains("id 7"));
        a[3] = 3;
        assert!(check_answer(7, &a).unwrap_err().contains("NXDOMAIN"));
        assert!(check_answer(7, &a[..5]).unwrap_err().contains("short"));
    }
}
