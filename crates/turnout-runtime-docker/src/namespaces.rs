//! The network namespaces of this server's running containers, by their
//! address on the app's network: the router opens its upstream
//! connections to a container from inside the container's namespace,
//! over its loopback, instead of over the bridge, the veth pair and the
//! host's netfilter chains (turnout-proxy's `netns`). That is the same TCP
//! connection to the same address and port as over the bridge; the
//! container sees it come from its own address.
//!
//! A namespace is listed only when it can be told apart from anything
//! else: the engine is on this machine (a unix socket), the container's
//! main process is visible here under the pid the engine reported (its
//! `/proc/<pid>/cgroup` names the container id, so a turnout that runs in
//! a pid namespace of its own lists nothing), and the namespace is not
//! the server's own. When it is opened for a connection, its inode must
//! still be the one listed (a pid reused by another process after the
//! container ended is not followed). Whatever is not listed is reached
//! over the bridge, as before.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

use arc_swap::ArcSwap;

/// The listing; see the module's documentation.
#[derive(Debug, Default)]
pub struct ContainerNamespaces {
    /// Off when the engine is not on this machine, or the operator set
    /// `TURNOUT_DOCKER_NETNS=off`.
    enabled: bool,
    /// Read without a lock: the router opens connections from it, on its
    /// request path.
    by_address: ArcSwap<HashMap<IpAddr, Listed>>,
    /// Held while the listing is changed (a start, an adoption, a
    /// removal), so that two changes never lose one another.
    changing: Mutex<()>,
}

#[derive(Debug, Clone)]
struct Listed {
    container: String,
    pid: u32,
    /// The namespace's identity when listed (device, inode).
    identity: (u64, u64),
}

/// `/proc/<pid>/ns/net`'s identity: the namespace's device and inode.
fn identity(pid: &str) -> Option<(u64, u64)> {
    let found = std::fs::metadata(format!("/proc/{pid}/ns/net")).ok()?;
    Some((found.dev(), found.ino()))
}

impl ContainerNamespaces {
    /// A listing for an engine at `host` (`DOCKER_HOST`'s form): on only
    /// for a unix socket, and unless `TURNOUT_DOCKER_NETNS` is `off`.
    pub fn for_engine(host: &str) -> ContainerNamespaces {
        let off = std::env::var("TURNOUT_DOCKER_NETNS").is_ok_and(|v| v == "off");
        ContainerNamespaces {
            enabled: host.starts_with("unix://") && !off,
            ..ContainerNamespaces::default()
        }
    }

    /// Lists `container`'s namespace at `address`, its main process being
    /// `pid` (as the engine reported it), if it can be told apart (see the
    /// module's documentation); else forgets whatever was at `address`.
    pub(crate) fn list(&self, container: &str, address: IpAddr, pid: Option<u32>) {
        if !self.enabled {
            return;
        }
        let listed = pid.and_then(|pid| {
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
            if !cgroup.contains(container) {
                return None;
            }
            let identity = identity(&pid.to_string())?;
            (Some(identity) != self::identity("self")).then(|| Listed {
                container: container.to_string(),
                pid,
                identity,
            })
        });
        self.change(|by_address| {
            match listed {
                Some(listed) => by_address.insert(address, listed),
                None => by_address.remove(&address),
            };
        });
    }

    /// Applies `change` to a copy of the listing and stores the copy.
    fn change(&self, change: impl FnOnce(&mut HashMap<IpAddr, Listed>)) {
        let _changing = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        let mut by_address = HashMap::clone(&self.by_address.load());
        change(&mut by_address);
        self.by_address.store(std::sync::Arc::new(by_address));
    }

    /// Forgets `container` (it is being removed).
    pub(crate) fn forget(&self, container: &str) {
        self.change(|by_address| by_address.retain(|_, listed| listed.container != container));
    }

    /// The network namespace `address` is local to, open, if it is listed
    /// and still the one listed.
    pub fn open(&self, address: IpAddr) -> Option<OwnedFd> {
        let listed = self.by_address.load().get(&address)?.clone();
        let file = std::fs::File::open(format!("/proc/{}/ns/net", listed.pid)).ok()?;
        let found = file.metadata().ok()?;
        ((found.dev(), found.ino()) == listed.identity).then(|| file.into())
    }

    /// How many namespaces are listed.
    pub fn len(&self) -> usize {
        self.by_address.load().len()
    }

    /// Whether none is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> ContainerNamespaces {
        ContainerNamespaces {
            enabled: true,
            ..ContainerNamespaces::default()
        }
    }

    const ADDRESS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(172, 30, 0, 2));

    #[test]
    fn a_remote_engine_lists_nothing() {
        let remote = ContainerNamespaces::for_engine("tcp://10.0.0.5:2375");
        remote.list("abc", ADDRESS, Some(std::process::id()));
        assert!(remote.is_empty());
        assert!(remote.open(ADDRESS).is_none());
    }

    #[test]
    fn a_process_whose_cgroup_does_not_name_the_container_is_not_listed() {
        // This test's own process: its cgroup names no such container (and
        // its namespace is the server's own).
        let namespaces = on();
        namespaces.list("4f1c9e0d2b7a", ADDRESS, Some(std::process::id()));
        assert!(namespaces.is_empty());
        namespaces.list("4f1c9e0d2b7a", ADDRESS, None);
        assert!(namespaces.is_empty());
    }

    #[test]
    fn a_namespace_whose_inode_changed_is_not_opened_and_forget_removes_it() {
        let namespaces = on();
        let pid = std::process::id();
        // Listed by hand with an identity that is not the process's: as
        // when the pid was reused by another process after the container
        // ended.
        let listed = |identity| Listed {
            container: "c1".into(),
            pid,
            identity,
        };
        namespaces.change(|m| drop(m.insert(ADDRESS, listed((0, 1)))));
        assert!(namespaces.open(ADDRESS).is_none());
        let real = identity(&pid.to_string()).unwrap();
        namespaces.change(|m| drop(m.insert(ADDRESS, listed(real))));
        assert!(namespaces.open(ADDRESS).is_some());
        namespaces.forget("c2");
        assert_eq!(namespaces.len(), 1);
        namespaces.forget("c1");
        assert!(namespaces.is_empty());
    }
}
