//! [`ToSocketAddrs`]: what the socket constructors accept as an address,
//! and name resolution off the loop's thread.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Values that name one or more socket addresses: what
/// [`TcpStream::connect`](super::TcpStream::connect),
/// [`TcpListener::bind`](super::TcpListener::bind) and the
/// [`UdpSocket`](super::UdpSocket) methods take.
///
/// Implemented for [`SocketAddr`], [`SocketAddrV4`], [`SocketAddrV6`],
/// `(IpAddr, u16)`, `(Ipv4Addr, u16)`, `(Ipv6Addr, u16)`, `str`, `String`,
/// `(&str, u16)`, `(String, u16)`, `[SocketAddr]`, `[SocketAddr; N]`, and
/// references to any of them (`&str`, `&[SocketAddr]`, ...). The trait is
/// sealed: it cannot be implemented outside this crate.
///
/// A string that parses as an address (`"127.0.0.1:8080"`, `"[::1]:80"`)
/// is used as is. Any other (`"localhost:8080"`, `("example.org", 443)`) is
/// a host name: it is resolved by the system's resolver
/// (`getaddrinfo`, through [`std::net::ToSocketAddrs`]) on a worker thread
/// ([`crate::to_thread`]), as asyncio's `getaddrinfo` runs on the default
/// executor, so a slow resolver suspends the task but never the loop.
///
/// When a name gives several addresses, `connect` and `bind` try them in
/// order and return the last error if none works (std's rule).
pub trait ToSocketAddrs: sealed::Sealed {}

pub(crate) mod sealed {
    use super::*;

    /// The private half of [`ToSocketAddrs`](super::ToSocketAddrs).
    pub trait Sealed {
        /// The addresses, or the name to resolve.
        #[doc(hidden)]
        fn to_addrs(&self) -> Addrs;
    }

    /// Addresses known at once, or a name for the resolver.
    #[doc(hidden)]
    #[derive(Debug)]
    pub enum Addrs {
        /// Known.
        Ready(Vec<SocketAddr>),
        /// `"host:port"`.
        Name(String),
        /// A host and a port.
        HostPort(String, u16),
    }
}

use sealed::{Addrs, Sealed};

/// The addresses `addr` names, resolving a host name on a worker thread.
///
/// # Errors
///
/// The resolver's error, or `InvalidInput` if there is no address.
///
/// # Panics
///
/// If `addr` is a name to resolve and the caller is not a task of a running
/// loop.
pub(crate) fn resolve(addr: &(impl ToSocketAddrs + ?Sized)) -> io::Result<Vec<SocketAddr>> {
    let addrs = match addr.to_addrs() {
        Addrs::Ready(v) => v,
        Addrs::Name(name) => crate::to_thread(move || {
            std::net::ToSocketAddrs::to_socket_addrs(&name).map(Iterator::collect)
        })?,
        Addrs::HostPort(host, port) => crate::to_thread(move || {
            std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port)).map(Iterator::collect)
        })?,
    };
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        ));
    }
    Ok(addrs)
}

/// Runs `f` on each address of `addr` in order until one succeeds; the last
/// error otherwise (std's `each_addr`).
pub(crate) fn each_addr<T>(
    addr: &(impl ToSocketAddrs + ?Sized),
    mut f: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in resolve(addr)? {
        match f(&a) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("resolve returns at least one address"))
}

/// The first address `addr` names (where one target is needed: `send_to`).
pub(crate) fn first_addr(addr: &(impl ToSocketAddrs + ?Sized)) -> io::Result<SocketAddr> {
    Ok(resolve(addr)?[0])
}

macro_rules! ready {
    ($($t:ty => |$s:ident| $e:expr;)*) => {$(
        impl ToSocketAddrs for $t {}
        impl Sealed for $t {
            fn to_addrs(&self) -> Addrs {
                let $s = self;
                Addrs::Ready(vec![$e])
            }
        }
    )*};
}

ready! {
    SocketAddr => |s| *s;
    SocketAddrV4 => |s| SocketAddr::V4(*s);
    SocketAddrV6 => |s| SocketAddr::V6(*s);
    (IpAddr, u16) => |s| SocketAddr::new(s.0, s.1);
    (Ipv4Addr, u16) => |s| SocketAddr::new(IpAddr::V4(s.0), s.1);
    (Ipv6Addr, u16) => |s| SocketAddr::new(IpAddr::V6(s.0), s.1);
}

impl ToSocketAddrs for str {}
impl Sealed for str {
    fn to_addrs(&self) -> Addrs {
        match self.parse::<SocketAddr>() {
            Ok(a) => Addrs::Ready(vec![a]),
            Err(_) => Addrs::Name(self.to_owned()),
        }
    }
}

impl ToSocketAddrs for String {}
impl Sealed for String {
    fn to_addrs(&self) -> Addrs {
        self.as_str().to_addrs()
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl Sealed for (&str, u16) {
    fn to_addrs(&self) -> Addrs {
        match self.0.parse::<IpAddr>() {
            Ok(ip) => Addrs::Ready(vec![SocketAddr::new(ip, self.1)]),
            Err(_) => Addrs::HostPort(self.0.to_owned(), self.1),
        }
    }
}

impl ToSocketAddrs for (String, u16) {}
impl Sealed for (String, u16) {
    fn to_addrs(&self) -> Addrs {
        (self.0.as_str(), self.1).to_addrs()
    }
}

impl ToSocketAddrs for [SocketAddr] {}
impl Sealed for [SocketAddr] {
    fn to_addrs(&self) -> Addrs {
        Addrs::Ready(self.to_vec())
    }
}

impl<const N: usize> ToSocketAddrs for [SocketAddr; N] {}
impl<const N: usize> Sealed for [SocketAddr; N] {
    fn to_addrs(&self) -> Addrs {
        Addrs::Ready(self.to_vec())
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: ToSocketAddrs + ?Sized> Sealed for &T {
    fn to_addrs(&self) -> Addrs {
        (**self).to_addrs()
    }
}
