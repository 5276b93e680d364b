//! `uniffi-bindgen`: the UniFFI bindings generator, built from the same
//! `uniffi` version as `tessera-ffi` (pinned in the workspace), so the
//! generated Kotlin, Swift and Python code always matches the library's
//! scaffolding (checksums and FFI contract version).
//!
//! Run it from the workspace root (it reads `cargo metadata`):
//!
//! ```text
//! cargo run -p uniffi-bindgen -- generate --no-format \
//!     target/debug/libtessera_ffi.so --language kotlin --out-dir target/bindings/kotlin
//! ```
//!
//! `bindings/run.sh` does this for every language on each test run.

fn main() {
    uniffi::uniffi_bindgen_main()
}
