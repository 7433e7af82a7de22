//! Rebuilds the gateway when the built console changes, so that the pages embedded in the
//! binary (`http/web.rs`) are the ones `npm run build` last wrote into `web/dist`, and when a
//! migration is added.

use std::path::Path;

fn main() {
    // `sqlx::migrate!` embeds the migrations; on stable Rust it cannot tell Cargo to watch them.
    println!("cargo:rerun-if-changed=migrations");
    if Path::new("../web/dist").is_dir() {
        // Cargo scans a directory for any file changed in it.
        println!("cargo:rerun-if-changed=../web/dist");
    } else {
        // No console built yet: watch the folder it will appear in (a path that does not
        // exist would rerun this script, and rebuild the gateway, on every build).
        println!("cargo:rerun-if-changed=../web");
    }
}
