//! Login throttling, per username and per client address, kept in PostgreSQL so that
//! every replica counts the same failures.
//!
//! Failures are counted in a fixed window. Reaching the limit locks the subject; each
//! further failure in the window doubles the lock, up to a cap. While locked, attempts are
//! answered 429 with `Retry-After` without looking at the password, so guessing learns
//! nothing. A successful login clears its username's count but not its address's: an
//! attacker cannot reset the address count by logging into an account of their own.

use std::net::IpAddr;
use std::time::Duration;

use sqlx::PgPool;

use super::AuthError;
use crate::names::is_principal_name;

#[derive(Debug, Clone)]
pub struct LoginThrottlePolicy {
    /// Failures for one username within `window` before it is locked.
    pub max_failures_per_username: u32,
    /// Failures from one client address within `window` before it is locked. Higher than
    /// the username limit: several people may share an address (NAT, a proxy).
    pub max_failures_per_address: u32,
    pub window: Duration,
    /// The lock after the failure that reaches a limit; doubles with each failure after.
    pub first_lockout: Duration,
    pub max_lockout: Duration,
}

impl Default for LoginThrottlePolicy {
    fn default() -> Self {
        LoginThrottlePolicy {
            max_failures_per_username: 5,
            max_failures_per_address: 20,
            window: Duration::from_secs(15 * 60),
            first_lockout: Duration::from_secs(30),
            max_lockout: Duration::from_secs(15 * 60),
        }
    }
}

/// The throttled subjects of one login attempt, with their limits.
pub struct Subjects {
    username: Option<String>,
    address: Option<String>,
}

impl Subjects {
    /// A username that cannot exist gets no row of its own (it cannot be locked out, and
    /// junk names cannot fill the table); its failures still count against the address.
    pub fn new(username: &str, address: Option<IpAddr>) -> Self {
        Subjects {
            username: is_principal_name(username).then(|| format!("user:{username}")),
            address: address.map(|ip| format!("addr:{ip}")),
        }
    }

    /// Each subject with its limit.
    fn limited<'a>(&'a self, policy: &LoginThrottlePolicy) -> impl Iterator<Item = (&'a str, u32)> {
        [(&self.username, policy.max_failures_per_username), (&self.address, policy.max_failures_per_address)]
            .into_iter()
            .filter_map(|(subject, limit)| subject.as_deref().map(|subject| (subject, limit)))
    }
}

/// Counts this attempt against each subject *before* its password is checked, so that
/// concurrent guesses cannot all pass a check made before any of them was counted: a
/// subject that is locked, or whose count this attempt takes past its limit, is refused
/// 429 without the password being looked at. A wrong password then needs nothing more
/// than [`settle_failure`]; a right one gives its reservation back ([`settle_success`]).
pub async fn reserve(pool: &PgPool, policy: &LoginThrottlePolicy, subjects: &Subjects) -> Result<(), AuthError> {
    let mut refused: Option<u64> = None;
    for (subject, limit) in subjects.limited(policy) {
        let wait = match count_attempt(pool, policy, subject, limit).await? {
            Attempt::Locked { remaining_secs } => Some(remaining_secs),
            Attempt::PastLimit { failures } => {
                Some(lock(pool, policy, subject, failures, limit).await?.as_secs().max(1))
            }
            Attempt::Allowed => None,
        };
        if let Some(wait) = wait {
            refused = Some(refused.map_or(wait, |longest| longest.max(wait)));
        }
    }
    forget_stale(pool, policy).await?;
    match refused {
        Some(retry_after_secs) => Err(AuthError::Throttled { retry_after_secs }),
        None => Ok(()),
    }
}

enum Attempt {
    Allowed,
    Locked { remaining_secs: u64 },
    PastLimit { failures: u32 },
}

/// Counts one attempt against `subject`, in a transaction that holds its row: concurrent
/// attempts on any replica are counted one after the other. An expired lock is cleared by
/// the one attempt that finds it, which is allowed (and locks again, longer, if it fails);
/// the attempts after it are past the limit until then.
async fn count_attempt(
    pool: &PgPool,
    policy: &LoginThrottlePolicy,
    subject: &str,
    limit: u32,
) -> Result<Attempt, AuthError> {
    let window = policy.window.as_secs_f64();
    let mut tx = pool.begin().await?;
    let fresh: Option<i32> = sqlx::query_scalar(
        "INSERT INTO login_throttle (subject, failures, window_started_at) VALUES ($1, 1, now())
         ON CONFLICT (subject) DO NOTHING RETURNING failures",
    )
    .bind(subject)
    .fetch_optional(&mut *tx)
    .await?;
    if fresh.is_some() {
        tx.commit().await?;
        return Ok(if limit == 0 { Attempt::PastLimit { failures: 1 } } else { Attempt::Allowed });
    }
    let (failures, remaining, lock_ended, window_over): (i32, Option<i64>, bool, bool) = sqlx::query_as(
        "SELECT failures,
                CASE WHEN locked_until > now() THEN ceil(extract(epoch FROM locked_until - now()))::bigint END,
                coalesce(locked_until <= now(), false),
                window_started_at <= now() - make_interval(secs => $2)
         FROM login_throttle WHERE subject = $1 FOR UPDATE",
    )
    .bind(subject)
    .bind(window)
    .fetch_one(&mut *tx)
    .await?;
    let (failures, attempt) = if window_over {
        (1, Attempt::Allowed)
    } else {
        let failures = u32::try_from(failures).unwrap_or(0).saturating_add(1);
        let attempt = match remaining {
            Some(secs) => Attempt::Locked { remaining_secs: secs.max(1).unsigned_abs() },
            None if lock_ended => Attempt::Allowed,
            None if failures > limit => Attempt::PastLimit { failures },
            None => Attempt::Allowed,
        };
        (failures, attempt)
    };
    sqlx::query(
        "UPDATE login_throttle SET failures = $2,
             window_started_at = CASE WHEN $3 THEN now() ELSE window_started_at END,
             locked_until = CASE WHEN $3 OR locked_until <= now() THEN NULL ELSE locked_until END
         WHERE subject = $1",
    )
    .bind(subject)
    .bind(i32::try_from(failures).unwrap_or(i32::MAX))
    .bind(window_over)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(attempt)
}

/// A wrong password (its attempt was counted by [`reserve`]): a subject at its limit is
/// locked.
pub async fn settle_failure(pool: &PgPool, policy: &LoginThrottlePolicy, subjects: &Subjects) -> Result<(), AuthError> {
    for (subject, limit) in subjects.limited(policy) {
        let failures: Option<i32> = sqlx::query_scalar("SELECT failures FROM login_throttle WHERE subject = $1")
            .bind(subject)
            .fetch_optional(pool)
            .await?;
        let failures = failures.and_then(|f| u32::try_from(f).ok()).unwrap_or(0);
        if failures >= limit {
            lock(pool, policy, subject, failures, limit).await?;
        }
    }
    Ok(())
}

/// A right password: its username's count is forgotten, and its address's reservation
/// given back (a success must not count against the address, nor reset it: an attacker
/// could otherwise clear the address count by logging into an account of their own).
pub async fn settle_success(pool: &PgPool, subjects: &Subjects) -> Result<(), AuthError> {
    if let Some(subject) = &subjects.username {
        sqlx::query("DELETE FROM login_throttle WHERE subject = $1").bind(subject).execute(pool).await?;
    }
    if let Some(subject) = &subjects.address {
        sqlx::query("UPDATE login_throttle SET failures = failures - 1 WHERE subject = $1 AND failures > 1")
            .bind(subject)
            .execute(pool)
            .await?;
        sqlx::query("DELETE FROM login_throttle WHERE subject = $1 AND failures = 1 AND locked_until IS NULL")
            .bind(subject)
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// A password reset: the failures counted against `username` are forgotten and its lock
/// lifted (the address counts stay). Whether the name was locked.
pub async fn forget_username(conn: &mut sqlx::PgConnection, username: &str) -> Result<bool, sqlx::Error> {
    let Some(subject) = Subjects::new(username, None).username else { return Ok(false) };
    let was_locked: Option<bool> =
        sqlx::query_scalar("DELETE FROM login_throttle WHERE subject = $1 RETURNING locked_until > now()")
            .bind(subject)
            .fetch_optional(conn)
            .await?
            .flatten();
    Ok(was_locked == Some(true))
}

/// A failure that cannot be reserved first (a login request that could not be read): counted, and locking at the limit.
pub async fn record_failure(pool: &PgPool, policy: &LoginThrottlePolicy, subjects: &Subjects) -> Result<(), AuthError> {
    match reserve(pool, policy, subjects).await {
        Ok(()) | Err(AuthError::Throttled { .. }) => settle_failure(pool, policy, subjects).await,
        Err(other) => Err(other),
    }
}

/// Locks `subject`, which has `failures` in its window against `limit`; the lock doubles
/// with each failure past the limit. Returns how long.
async fn lock(
    pool: &PgPool,
    policy: &LoginThrottlePolicy,
    subject: &str,
    failures: u32,
    limit: u32,
) -> Result<Duration, AuthError> {
    let lockout = lockout_after(policy, failures.saturating_sub(limit));
    sqlx::query("UPDATE login_throttle SET locked_until = now() + make_interval(secs => $2) WHERE subject = $1")
        .bind(subject)
        .bind(lockout.as_secs_f64())
        .execute(pool)
        .await?;
    tracing::warn!(subject, failures, lockout_secs = lockout.as_secs(), "login locked after repeated failures");
    Ok(lockout)
}

/// Rows whose window has passed and that hold no lock say nothing any more.
async fn forget_stale(pool: &PgPool, policy: &LoginThrottlePolicy) -> Result<(), AuthError> {
    sqlx::query(
        "DELETE FROM login_throttle WHERE window_started_at <= now() - make_interval(secs => $1)
         AND (locked_until IS NULL OR locked_until <= now())",
    )
    .bind(policy.window.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

fn lockout_after(policy: &LoginThrottlePolicy, failures_past_limit: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures_past_limit.min(20));
    policy.first_lockout.saturating_mul(factor).min(policy.max_lockout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lockout_doubles_up_to_its_cap() {
        let policy = LoginThrottlePolicy::default();
        assert_eq!(lockout_after(&policy, 0), Duration::from_secs(30));
        assert_eq!(lockout_after(&policy, 1), Duration::from_secs(60));
        assert_eq!(lockout_after(&policy, 3), Duration::from_secs(240));
        assert_eq!(lockout_after(&policy, 10), policy.max_lockout);
        assert_eq!(lockout_after(&policy, u32::MAX), policy.max_lockout);
    }
}
