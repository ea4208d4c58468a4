//! The rvsd control protocol: serde-typed messages over a Unix stream socket, one JSON
//! document per line (newline-delimited JSON), strictly request -> response, any number
//! of requests per connection. rvsadm fetches raw data and formats it itself, as ipvsadm
//! does with the kernel.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::backend::{ConnRow, DestCounters, Rates, Stats};
use crate::ipvs::{
    AclLists, DestConf, IpvsError, Laddr, Op, ServiceConf, ServiceKey, SyncDaemon, Timeouts,
};

/// Version and table size (the listing header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// IPVS version, `0x010201`.
    pub version: u32,
    /// Connection hash table size.
    pub conn_tab_size: u32,
    /// Number of services.
    pub num_services: u32,
}

/// A dest with its counters (stats since the last `-Z`) and rates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestView {
    /// Settings.
    pub conf: DestConf,
    /// Counts and stats.
    pub counters: DestCounters,
    /// Estimated rates.
    pub rates: Rates,
}

/// A LIP with its counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaddrView {
    /// The LIP.
    pub laddr: Laddr,
    /// Port allocation conflicts.
    pub conflicts: u64,
    /// Connections using it.
    pub conns: u64,
}

/// A service as listed: settings, stats, rates, dests in kernel order, LIPs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    /// Settings.
    pub conf: ServiceConf,
    /// Stats since the last `-Z`.
    pub stats: Stats,
    /// Estimated rates.
    pub rates: Rates,
    /// Dests, newest first.
    pub dests: Vec<DestView>,
    /// LIP pool.
    pub laddrs: Vec<LaddrView>,
}

/// The ACLs (`-B`, `-W`, `-S`): the global list and every service's, in table order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclsView {
    /// The global ACL.
    pub global: AclLists,
    /// Every service's ACL (empty ones too), in table order.
    pub services: Vec<(ServiceKey, AclLists)>,
}

/// A request to rvsd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Version and size.
    Info,
    /// Change the table.
    Apply(Op),
    /// All services, in table order.
    GetServices,
    /// One service.
    GetService(ServiceKey),
    /// The connection table.
    GetConnections,
    /// Timeouts.
    GetTimeouts,
    /// Running sync daemons.
    GetDaemons,
    /// The dataplane's own counters, as text (rvs extension: `rvsadm --dataplane`).
    Dataplane,
    /// Read the configuration file again and apply it (rvs extension: `rvsadm --reload`).
    Reload,
    /// Every health check's state (rvs extension: `rvsadm --list-checks`).
    ListChecks,
    /// The ACLs (DPVS's `--get-blklst`, `--get-whtlst`; `-S`).
    GetAcls,
    /// The sync group's peers and their state (rvs extension: `rvsadm --list-group`).
    ListGroup,
}

/// rvsd's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The change was applied.
    Ok,
    /// The change was refused (table unchanged) or the service does not exist.
    Error(IpvsError),
    /// For [`Request::Info`].
    Info(Info),
    /// For [`Request::GetServices`].
    Services(Vec<ServiceView>),
    /// For [`Request::GetService`].
    Service(ServiceView),
    /// For [`Request::GetConnections`].
    Connections(Vec<ConnRow>),
    /// For [`Request::GetTimeouts`].
    Timeouts(Timeouts),
    /// For [`Request::GetDaemons`].
    Daemons(Vec<SyncDaemon>),
    /// The request could not be decoded.
    BadRequest(String),
    /// Free text (for [`Request::Dataplane`], [`Request::Reload`] and
    /// [`Request::ListChecks`]).
    Text(String),
    /// The request was refused and changed nothing (a reload of a bad file): why.
    Failed(String),
    /// For [`Request::GetAcls`].
    Acls(AclsView),
}

/// A client error: the socket failed or the answer was not understood.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Socket I/O.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Undecodable answer.
    #[error("bad response from rvsd: {0}")]
    Decode(String),
    /// rvsd closed the connection.
    #[error("rvsd closed the connection")]
    Closed,
}

/// Writes one message as a JSON line.
pub fn write_message<T: Serialize>(w: &mut impl Write, msg: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(msg).map_err(io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)?;
    w.flush()
}

/// Reads one JSON line; `Ok(None)` at end of stream.
pub fn read_line(r: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line))
}

/// A connection to rvsd.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects to the socket.
    pub fn connect(path: &Path) -> io::Result<Client> {
        let s = UnixStream::connect(path)?;
        Ok(Client {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    /// Sends a request and waits for its response.
    pub fn call(&mut self, req: &Request) -> Result<Response, ClientError> {
        write_message(&mut self.writer, req)?;
        let line = read_line(&mut self.reader)?.ok_or(ClientError::Closed)?;
        serde_json::from_str(&line).map_err(|e| ClientError::Decode(e.to_string()))
    }
}

/// Serves one connection: decodes requests and writes `handle`'s responses until EOF.
pub fn serve(stream: UnixStream, mut handle: impl FnMut(Request) -> Response) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    while let Some(line) = read_line(&mut reader)? {
        if line.trim().is_empty() {
            continue;
        }
        let resp = match serde_json::from_str::<Request>(&line) {
            Ok(req) => handle(req),
            Err(e) => Response::BadRequest(e.to_string()),
        };
        write_message(&mut writer, &resp)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::Protocol;

    #[test]
    fn roundtrip_over_a_socketpair() {
        let (a, b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            serve(b, |req| match req {
                Request::Info => Response::Info(Info {
                    version: 0x010201,
                    conn_tab_size: 4096,
                    num_services: 0,
                }),
                Request::Apply(Op::DelService(_)) => Response::Error(IpvsError::NoSuchService),
                _ => Response::Ok,
            })
        });
        let mut c = Client {
            reader: BufReader::new(a.try_clone().unwrap()),
            writer: a,
        };
        assert!(
            matches!(c.call(&Request::Info).unwrap(), Response::Info(i) if i.conn_tab_size == 4096)
        );
        let key = ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr: "1.2.3.4".parse().unwrap(),
            port: 80,
        };
        assert_eq!(
            c.call(&Request::Apply(Op::DelService(key))).unwrap(),
            Response::Error(IpvsError::NoSuchService)
        );
        drop(c);
        t.join().unwrap().unwrap();
    }
}
