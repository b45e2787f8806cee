// `sqlx::migrate!` embeds `migrations/` when the crate compiles; without this line cargo
// does not know a new migration file changes the crate, and an incremental build would
// ship a binary without it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
