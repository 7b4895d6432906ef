// `sqlx::migrate!` embeds ./migrations at compile time; a new migration file changes no Rust source,
// so tell cargo to rebuild when the directory changes (as sqlx's documentation recommends). The
// shared tables' migrations are symlinks into common/migrations: watch those files too.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=../messaging/migrations");
}
