//! `alexandria reset-password USER`: the way back in when nobody who could reset a
//! password through the API or the console can log in (the only super_admin forgot
//! theirs, or is locked out). It trusts whoever can reach the database, as
//! `rotate-jwt-secret` does. The new password comes on standard input, never as an
//! argument (which `ps` and shell history would show) and never from a terminal (which
//! would echo it).

use std::io::{BufRead, IsTerminal};

use clap::Args;
use secrecy::SecretString;

use crate::admin::users::{self, PasswordChange};
use crate::cli::args::DatabaseArgs;
use crate::cli::Database;
use crate::names::Actor;

#[derive(Debug, Args)]
pub struct ResetPasswordArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The user whose password is set.
    pub username: String,
}

/// How the audit trail names this command.
const ACTOR: Actor = Actor::System("cli");

pub async fn run(args: ResetPasswordArgs) -> anyhow::Result<()> {
    let name = users::existing_name(&args.username)?;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        anyhow::bail!("{}", NO_PASSWORD);
    }
    let password = read_password(stdin.lock())?;
    let database = Database::open(&args.database).await?;
    let result = async {
        crate::db::migrate(&database.pool).await?;
        Ok::<_, anyhow::Error>(
            users::set_password(&database.pool, &ACTOR, PasswordChange::Reset, &name, password, None).await?,
        )
    }
    .await;
    database.close().await?;
    let set = result?;
    eprintln!(
        "password of user {:?} reset; {} session{} ended{}; recorded in the admin audit trail (user.password.reset by {})",
        name.as_str(),
        set.sessions_ended,
        if set.sessions_ended == 1 { "" } else { "s" },
        if set.login_lock_lifted { "; the login lock on the name lifted" } else { "" },
        ACTOR
    );
    Ok(())
}

const NO_PASSWORD: &str = "give the new password on standard input, e.g. \
    `printf '%s' \"$NEW_PASSWORD\" | alexandria reset-password admin`";

/// The first line of `input`, without its line ending.
fn read_password(mut input: impl BufRead) -> anyhow::Result<SecretString> {
    let mut line = String::new();
    input.read_line(&mut line).map_err(|_| anyhow::anyhow!("cannot read the new password from standard input"))?;
    let password = line.strip_suffix('\n').map_or(line.as_str(), |l| l.strip_suffix('\r').unwrap_or(l));
    if password.is_empty() {
        anyhow::bail!("{}", NO_PASSWORD);
    }
    Ok(SecretString::from(password.to_owned()))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::read_password;

    #[test]
    fn the_first_line_is_the_password_without_its_line_ending() {
        let read = |input: &str| read_password(input.as_bytes()).map(|p| p.expose_secret().to_owned());
        assert_eq!(read("a long new password\n").unwrap(), "a long new password");
        assert_eq!(read("crlf ending password\r\nsecond line\n").unwrap(), "crlf ending password");
        assert_eq!(read("no line ending at all").unwrap(), "no line ending at all");
        assert_eq!(read("  spaces are kept  \n").unwrap(), "  spaces are kept  ");
        for empty in ["", "\n", "\r\n"] {
            assert!(read(empty).unwrap_err().to_string().contains("standard input"), "{empty:?}");
        }
    }
}
