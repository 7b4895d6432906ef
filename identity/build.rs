// `sqlx::migrate!` embeds ./migrations at compile time; a new migration file changes no Rust source,
// so tell cargo to rebuild when the directory changes (as sqlx's documentation recommends).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
