//! `run_as`: a stdio upstream started as another account, so that it cannot open what the
//! gateway's user can (the data directory with `admin-password`, the managed
//! PostgreSQL's socket and files, a 0600 file of the gateway's) nor signal the gateway.
//!
//! Switching users needs privilege: the gateway must run as root, or hold `CAP_SETUID`
//! and `CAP_SETGID`. Registration checks that here and now (a 422 otherwise); a replica
//! without it reports the server's connection as failed, saying why.

use std::path::PathBuf;

/// The account a child runs as: who it is and where its home is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// `CAP_SETGID` and `CAP_SETUID` (linux/capability.h), bits of `CapEff`.
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;

/// Looks `name` up in the system's accounts and checks this process may start a child as
/// it. The error says what to change.
pub fn resolve(name: &str) -> Result<Account, String> {
    let account = match nix::unistd::User::from_name(name) {
        Ok(Some(account)) => account,
        Ok(None) => return Err(format!("run_as: there is no account named {name:?} on this host")),
        Err(error) => return Err(format!("run_as: cannot look up the account {name:?}: {error}")),
    };
    if account.uid.is_root() {
        return Err(format!("run_as must name an unprivileged account, not {name:?} (uid 0)"));
    }
    if !may_switch_users() {
        return Err(format!(
            "run_as: the gateway cannot start a server as {name:?}: it runs as uid {} without the privilege to \
             change user (run it as root, or give it CAP_SETUID and CAP_SETGID)",
            nix::unistd::geteuid()
        ));
    }
    Ok(Account { name: account.name, uid: account.uid.as_raw(), gid: account.gid.as_raw(), home: account.dir })
}

/// Whether `setuid`/`setgid`/`setgroups` to another account will work for a child.
fn may_switch_users() -> bool {
    #[cfg(target_os = "linux")]
    {
        // Root without these capabilities (a container's `--cap-drop`) cannot switch
        // either, and a non-root binary given them can: the capabilities decide.
        if let Some(effective) = effective_capabilities() {
            return effective & (1 << CAP_SETUID) != 0 && effective & (1 << CAP_SETGID) != 0;
        }
    }
    nix::unistd::geteuid().is_root()
}

/// The `CapEff` mask of `/proc/self/status`.
#[cfg(target_os = "linux")]
fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|line| line.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

/// Makes `command` start as `account`: its uid and primary gid, no supplementary groups
/// (the standard library clears them when it sets the uid as root), and the identity
/// variables of that account rather than the gateway's (its `HOME` may be the data
/// directory).
pub fn apply(command: &mut tokio::process::Command, account: &Account) {
    command.uid(account.uid).gid(account.gid);
    command.env("HOME", &account.home).env("USER", &account.name).env("LOGNAME", &account.name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_privileged_accounts_are_refused_by_name() {
        let unknown = resolve("no-such-account-here").unwrap_err();
        assert!(unknown.contains("no account named \"no-such-account-here\""), "{unknown}");
        let root = resolve("root").unwrap_err();
        assert!(root.contains("unprivileged"), "{root}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_capability_mask_is_read() {
        assert!(effective_capabilities().is_some());
    }
}
