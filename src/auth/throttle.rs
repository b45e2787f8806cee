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

    fn all(&self) -> Vec<String> {
        self.username.iter().chain(self.address.iter()).cloned().collect()
    }
}

/// 429 with `Retry-After` while any subject is locked.
pub async fn check(pool: &PgPool, subjects: &Subjects) -> Result<(), AuthError> {
    let remaining_secs: Option<i64> = sqlx::query_scalar(
        "SELECT ceil(extract(epoch FROM max(locked_until) - now()))::bigint
         FROM login_throttle WHERE subject = ANY($1) AND locked_until > now()",
    )
    .bind(subjects.all())
    .fetch_one(pool)
    .await?;
    match remaining_secs {
        Some(secs) => Err(AuthError::Throttled { retry_after_secs: secs.max(1).unsigned_abs() }),
        None => Ok(()),
    }
}

pub async fn record_failure(pool: &PgPool, policy: &LoginThrottlePolicy, subjects: &Subjects) -> Result<(), AuthError> {
    let limited =
        [(&subjects.username, policy.max_failures_per_username), (&subjects.address, policy.max_failures_per_address)];
    for (subject, limit) in limited {
        let Some(subject) = subject else { continue };
        // Counting and starting a new window happen in one statement, so concurrent
        // failures on several replicas are all counted.
        let failures: i32 = sqlx::query_scalar(
            "INSERT INTO login_throttle AS t (subject, failures, window_started_at) VALUES ($1, 1, now())
             ON CONFLICT (subject) DO UPDATE SET
                 failures = CASE WHEN t.window_started_at <= now() - make_interval(secs => $2) THEN 1 ELSE t.failures + 1 END,
                 locked_until = CASE WHEN t.window_started_at <= now() - make_interval(secs => $2) THEN NULL ELSE t.locked_until END,
                 window_started_at = CASE WHEN t.window_started_at <= now() - make_interval(secs => $2) THEN now() ELSE t.window_started_at END
             RETURNING failures",
        )
        .bind(subject)
        .bind(policy.window.as_secs_f64())
        .fetch_one(pool)
        .await?;
        let failures = u32::try_from(failures).unwrap_or(0);
        if failures >= limit {
            let lockout = lockout_after(policy, failures - limit);
            sqlx::query(
                "UPDATE login_throttle SET locked_until = now() + make_interval(secs => $2) WHERE subject = $1",
            )
            .bind(subject)
            .bind(lockout.as_secs_f64())
            .execute(pool)
            .await?;
            tracing::warn!(subject, failures, lockout_secs = lockout.as_secs(), "login locked after repeated failures");
        }
    }
    // Rows whose window has passed and that hold no lock say nothing any more.
    sqlx::query(
        "DELETE FROM login_throttle WHERE window_started_at <= now() - make_interval(secs => $1)
         AND (locked_until IS NULL OR locked_until <= now())",
    )
    .bind(policy.window.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets the username's failures after a successful login.
pub async fn record_success(pool: &PgPool, subjects: &Subjects) -> Result<(), AuthError> {
    if let Some(subject) = &subjects.username {
        sqlx::query("DELETE FROM login_throttle WHERE subject = $1").bind(subject).execute(pool).await?;
    }
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
