//! The meta-data's texts that name the clouds, built at compile time from `provider::PROVIDERS`
//! (a description is a `&'static str`): a new cloud appears in them, with its defaults, its
//! parameters and its own sentences, with nothing to edit here.

use crate::provider::{Cloud, PROVIDERS};

/// A text built at compile time: pieces pushed in order into `N` bytes, keeping what fits and
/// counting everything, so that a first pass with `N = 0` measures the second (`text!`).
pub struct Text<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    pub const fn new() -> Self {
        Text {
            bytes: [0; N],
            len: 0,
        }
    }

    pub const fn push(mut self, piece: &str) -> Self {
        let piece = piece.as_bytes();
        let mut i = 0;
        while i < piece.len() {
            if self.len < N {
                self.bytes[self.len] = piece[i];
            }
            self.len += 1;
            i += 1;
        }
        self
    }

    pub const fn len(&self) -> usize {
        self.len
    }

    /// The whole text; fails the build when `N` is not its length.
    pub const fn as_str(&'static self) -> &'static str {
        assert!(self.len == N, "the text does not fill its buffer");
        match core::str::from_utf8(&self.bytes) {
            Ok(s) => s,
            Err(_) => panic!("the text is not UTF-8"),
        }
    }
}

/// `text!(build)`: the `&'static str` that `build` (a `const fn<const N: usize>(Text<N>) ->
/// Text<N>`) writes, measured first.
macro_rules! text {
    ($build:ident) => {{
        const LEN: usize = $crate::describe::$build($crate::describe::Text::<0>::new()).len();
        static TEXT: $crate::describe::Text<LEN> =
            $crate::describe::$build($crate::describe::Text::<LEN>::new());
        TEXT.as_str()
    }};
}
pub(crate) use text;

/// Which clouds a list names.
#[derive(Clone, Copy)]
enum Which {
    Every,
    /// Those that sign with an API key.
    Signing,
    /// Those whose API is per zone.
    Zoned,
}

const fn keeps(which: Which, c: &Cloud) -> bool {
    match which {
        Which::Every => true,
        Which::Signing => c.api_key.is_some(),
        Which::Zoned => c.zone.is_some(),
    }
}

/// What a list says of each cloud.
#[derive(Clone, Copy)]
enum Piece {
    /// `provider=hetzner`
    Provider,
    /// `hetzner (Hetzner Cloud)`
    NameTitle,
    /// `https://api.hetzner.cloud (hetzner)`
    ApiUrl,
    /// `http://169.254.169.254/hetzner/v1/metadata (hetzner)`
    MetadataUrl,
    /// `provider=exoscale: <what its key is>`
    Key,
    /// `provider=exoscale: <what its zone is>`
    Zone,
    /// `Hetzner Cloud`
    Title,
    /// `floating IP (hetzner)`
    IpWord,
    /// `Hetzner Cloud (provider=hetzner): <its sentences>`
    Describes,
}

const fn piece<const N: usize>(t: Text<N>, piece: Piece, c: &Cloud) -> Text<N> {
    match piece {
        Piece::Provider => t.push("provider=").push(c.name),
        Piece::NameTitle => t.push(c.name).push(" (").push(c.title).push(")"),
        Piece::ApiUrl => t.push(c.api_url).push(" (").push(c.name).push(")"),
        Piece::MetadataUrl => t.push(c.metadata_url).push(" (").push(c.name).push(")"),
        Piece::Key => match c.api_key {
            Some(key) => t.push("provider=").push(c.name).push(": ").push(key),
            None => t,
        },
        Piece::Zone => match &c.zone {
            Some(zone) => t
                .push("provider=")
                .push(c.name)
                .push(": ")
                .push(zone.describes),
            None => t,
        },
        Piece::Title => t.push(c.title),
        Piece::IpWord => t.push(c.ip_word).push(" (").push(c.name).push(")"),
        Piece::Describes => t
            .push(c.title)
            .push(" (provider=")
            .push(c.name)
            .push("): ")
            .push(c.describes),
    }
}

/// `t` followed by `what` of each cloud `which` names, joined by ", " and a `last` separator.
const fn list<const N: usize>(t: Text<N>, which: Which, what: Piece, last: &str) -> Text<N> {
    joined(t, which, what, ", ", last)
}

/// `list` with `sep` between all but the last two.
const fn joined<const N: usize>(
    mut t: Text<N>,
    which: Which,
    what: Piece,
    sep: &str,
    last: &str,
) -> Text<N> {
    let mut total = 0;
    let mut i = 0;
    while i < PROVIDERS.len() {
        if keeps(which, PROVIDERS[i]) {
            total += 1;
        }
        i += 1;
    }
    let (mut i, mut n) = (0, 0);
    while i < PROVIDERS.len() {
        let c = PROVIDERS[i];
        if keeps(which, c) {
            if n > 0 {
                t = t.push(if n + 1 == total { last } else { sep });
            }
            t = piece(t, what, c);
            n += 1;
        }
        i += 1;
    }
    t
}

pub const fn ip_long<const N: usize>(t: Text<N>) -> Text<N> {
    list(
        t.push("The IPv4 address to point at this node, e.g. 203.0.113.7: the cloud's "),
        Which::Every,
        Piece::IpWord,
        " or ",
    )
    .push(". It must belong to the account of the API token.")
}

pub const fn provider_long<const N: usize>(t: Text<N>) -> Text<N> {
    list(
        t.push("The cloud whose API and metadata service to use: "),
        Which::Every,
        Piece::NameTitle,
        " or ",
    )
    .push(".")
}

pub const fn api_url_long<const N: usize>(t: Text<N>) -> Text<N> {
    list(
        t.push("The cloud API's base URL. Not set: the provider's own, "),
        Which::Every,
        Piece::ApiUrl,
        " or ",
    )
    .push(
        ". TLS is verified with the system's root certificates. Plain http:// is accepted only \
         for loopback hosts (test APIs).",
    )
}

pub const fn metadata_url_long<const N: usize>(t: Text<N>) -> Text<N> {
    list(
        t.push(
            "The server's metadata service (its id; where the cloud's service says which IP the \
             server holds, also that, which is all a monitor reads there). Not set: the provider's own, ",
        ),
        Which::Every,
        Piece::MetadataUrl,
        " or ",
    )
    .push(".")
}

pub const fn api_token_long<const N: usize>(t: Text<N>) -> Text<N> {
    list(
        t.push("The cloud API token, with write access to the IPs; with "),
        Which::Signing,
        Piece::Provider,
        " or ",
    )
    .push(
        ", the API key's secret. Prefer api_token_file, or store it with cibsecret so that it \
         is not kept in the CIB. Never logged. One of api_token and api_token_file is required; \
         api_token wins when both are set.",
    )
}

pub const fn api_token_file_long<const N: usize>(t: Text<N>) -> Text<N> {
    list(
        t.push("A file that holds the API token (with "),
        Which::Signing,
        Piece::Provider,
        " or ",
    )
    .push(
        ": the API secret) on its first non-empty line, owned by root and writable by no one \
         else (it is refused otherwise; a warning is logged when others can read it). Must exist \
         on every node.",
    )
}

pub const fn api_key_short<const N: usize>(t: Text<N>) -> Text<N> {
    list(t.push("API key ("), Which::Signing, Piece::Provider, " or ").push(")")
}

pub const fn api_key_long<const N: usize>(t: Text<N>) -> Text<N> {
    let t = list(t, Which::Signing, Piece::Key, "; ").push(". Required with ");
    list(t, Which::Signing, Piece::Provider, " or ").push("; not used by the other providers.")
}

pub const fn zone_short<const N: usize>(t: Text<N>) -> Text<N> {
    list(t.push("Zone ("), Which::Zoned, Piece::Provider, " or ").push(")")
}

pub const fn zone_long<const N: usize>(t: Text<N>) -> Text<N> {
    list(
        t.push("Where the API is per zone, the zone to call. "),
        Which::Zoned,
        Piece::Zone,
        "; ",
    )
    .push(". Not used by the other providers.")
}

pub const fn longdesc<const N: usize>(t: Text<N>) -> Text<N> {
    let t = list(
        t.push(
            "Makes this node's server the holder of a floating (reserved, elastic) IP through the \
             cloud's API (provider: ",
        ),
        Which::Every,
        Piece::Title,
        ", ",
    );
    let t = t.push(
        "), and answers where the address points from the server's metadata service where it \
can tell, else from one API read. \
start: when this server already holds the address (alone), nothing is done; otherwise the cloud's \
calls make it the holder, the agent waits until the API reports them done (polling quickly at \
first, then backing off; where the metadata service can tell, it is watched often), confirms the \
holder with the API and records that it started. An action pending, 429 (rate limit; \
retry-after and ratelimit-reset are honoured), 5xx and connection errors are retried within the \
action's timeout; an errored action or the timeout gives 1; a token rejected or an address \
unknown in the cloud's own error body gives 6. \
stop does not unassign: it removes the record, so that the next start elsewhere moves the \
address; it needs neither the API nor the token. \
monitor (probes included) answers 7 when this node holds no record from this boot (stopped \
here, never started, or rebooted since). With a record, where the metadata service can tell, it \
asks that service only, never the API: 0 when this server holds exactly the configured address, \
7 when it does not; a metadata service that cannot be read or answers garbage is retried until \
the timeout, then 1; it never reads as running. Where the metadata service cannot tell, a \
monitor with a record makes one API request, never a listing; a failed read is retried until \
the timeout, then 1 (never 7: an API hiccup must not move the IP). \
validate-all checks the parameters; with OCF_CHECK_LEVEL=10 it also finds the address through \
the API, which proves the token works and the address is in the account. \
Each cloud: ",
    );
    joined(t, Which::Every, Piece::Describes, " ", " ").push(
        " The tutorial agent's parameter names do_token and floating_ip work unchanged; this \
         agent is installed as ocf:digitalocean:floatip too.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cloud_is_named_with_its_defaults() {
        let api = text!(api_url_long);
        let metadata = text!(metadata_url_long);
        let provider = text!(provider_long);
        let long = text!(longdesc);
        let ip = text!(ip_long);
        for c in PROVIDERS {
            assert!(
                api.contains(&format!("{} ({})", c.api_url, c.name)),
                "{api}"
            );
            assert!(
                metadata.contains(&format!("{} ({})", c.metadata_url, c.name)),
                "{metadata}"
            );
            assert!(provider.contains(&format!("{} ({})", c.name, c.title)));
            assert!(long.contains(c.describes));
            assert!(ip.contains(&format!("{} ({})", c.ip_word, c.name)), "{ip}");
            let key = text!(api_key_long);
            assert_eq!(
                key.contains(&format!("provider={}", c.name)),
                c.api_key.is_some(),
                "{key}"
            );
            let zone = text!(zone_long);
            assert_eq!(
                zone.contains(&format!("provider={}", c.name)),
                c.zone.is_some(),
                "{zone}"
            );
        }
        assert!(api.contains(") or https://"), "{api}");
    }
}
