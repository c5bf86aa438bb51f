//! An address on an interface (what a start puts in place), and the address the parameters
//! stand for: `ip` itself, or for `ip=auto` the droplet's anchor IP and its netmask, read from
//! the DigitalOcean metadata service within the action's deadline.

use crate::netlink::IfAddr;
use crate::settings::{netmask_prefix, unusable, IpChoice, Settings};
use cloudha_common::http::MetadataService;
use cloudha_common::{Attempt, Deadline, OcfError, OcfResult, Retry, RetryError};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// Where the anchor IP and its netmask live under the metadata service's base URL.
pub const ANCHOR_ADDRESS_PATH: &str = "interfaces/public/0/anchor_ipv4/address";
pub const ANCHOR_NETMASK_PATH: &str = "interfaces/public/0/anchor_ipv4/netmask";

/// Readings of the anchor IP: the service is local and free, so quickly, until the deadline.
/// A failure and an answer an interface cannot hold are retried alike.
const METADATA_RETRY: Retry = Retry::backoff(Duration::from_millis(50), Duration::from_millis(500));

/// An address on an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub addr: IfAddr,
    pub nic: String,
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr.addr, self.addr.prefix)
    }
}

/// How one reading of the metadata service went wrong.
#[derive(Debug)]
enum Unread {
    /// Worth another try within the deadline; the words finish "the metadata service …".
    Again(String),
    /// An answer that will not change (404: no anchor IP on this droplet).
    Final(OcfError),
}

/// The address to put in place, and its prefix when known (`cidr_netmask`; for `ip=auto` the
/// metadata netmask). For `ip=auto` this reads the metadata service, retrying until `deadline`:
/// a service that does not answer, or answers something an interface cannot hold, is a failure
/// here (1), never a configuration error; a droplet without an anchor IP lacks something on
/// this node (5).
pub fn resolve(s: &Settings, deadline: &Deadline) -> OcfResult<(IpAddr, Option<u8>)> {
    if let IpChoice::Explicit(a) = s.ip {
        return Ok((a, s.prefix));
    }
    let service = MetadataService::new(s.metadata_url.as_str());
    let read = deadline.retry(&METADATA_RETRY, |d| match read_anchor(s, &service, d) {
        Ok(found) => Attempt::Done(found),
        Err(Unread::Final(e)) => Attempt::Fail(Unread::Final(e)),
        Err(again) => Attempt::Again(again),
    });
    match read.map_err(RetryError::into_inner) {
        Ok((addr, prefix)) => Ok((IpAddr::V4(addr), Some(prefix))),
        Err(Unread::Final(e)) => Err(e),
        Err(Unread::Again(problem)) => Err(OcfError::generic(format!(
            "parameter 'ip' is 'auto', but the metadata service {problem}"
        ))),
    }
}

/// One reading of the anchor IP and its netmask (the netmask only when `cidr_netmask` is not
/// given), each answer checked as an explicit `ip` and `cidr_netmask` would be.
fn read_anchor(
    s: &Settings,
    service: &MetadataService,
    deadline: &Deadline,
) -> Result<(Ipv4Addr, u8), Unread> {
    let text = read_text(service, ANCHOR_ADDRESS_PATH, deadline)?;
    let url = service.url(ANCHOR_ADDRESS_PATH);
    let addr = match text.parse::<Ipv4Addr>() {
        Err(_) => {
            return Err(Unread::Again(format!(
                "answered '{}' at {url} until the timeout, which is not an IPv4 address",
                shown(&text)
            )))
        }
        Ok(a) => match unusable(IpAddr::V4(a)) {
            Some(what) => {
                return Err(Unread::Again(format!(
                    "answered '{a}' at {url} until the timeout: {what}, which an interface \
                     cannot hold"
                )))
            }
            None => a,
        },
    };
    if let Some(p) = s.prefix {
        return Ok((addr, p));
    }
    let text = read_text(service, ANCHOR_NETMASK_PATH, deadline)?;
    match text
        .parse()
        .ok()
        .and_then(netmask_prefix)
        .filter(|p| *p > 0)
    {
        Some(p) => Ok((addr, p)),
        None => Err(Unread::Again(format!(
            "answered '{}' at {} until the timeout, which is not a netmask",
            shown(&text),
            service.url(ANCHOR_NETMASK_PATH)
        ))),
    }
}

/// One read of `path`: its text, or why not.
fn read_text(service: &MetadataService, path: &str, deadline: &Deadline) -> Result<String, Unread> {
    let url = service.url(path);
    match service.get(path, deadline) {
        Ok(Some(text)) => Ok(text.trim().to_string()),
        Ok(None) => Err(Unread::Final(OcfError::installed(format!(
            "parameter 'ip' is 'auto', but this droplet has no anchor IP ({url} answered 404; \
             droplets made before October 2015 and custom images have none): set 'ip' to the \
             address"
        )))),
        Err(e) => Err(Unread::Again(format!(
            "could not be read before the timeout: {} ({url})",
            e.detail
        ))),
    }
}

/// An answer as quoted in a reason: its first 40 characters, on one line.
fn shown(text: &str) -> String {
    text.chars()
        .take(40)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
