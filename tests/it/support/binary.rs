//! The calsync binary as the tests run it: one way to start it with a clean
//! environment, one way to signal it.

use std::process::Stdio;

/// Whether the binary would read this variable of the test's own environment as
/// configuration: every `CALSYNC_*` (a test's knobs such as `CALSYNC_CRASH_KILLS`
/// included, which calsync would reject as unknown keys), the legacy
/// `CALCOM_ALLOW_OVERWRITES`, and `RUST_LOG`.
pub fn is_configuration(name: &str) -> bool {
    name.starts_with("CALSYNC_") || name == "CALCOM_ALLOW_OVERWRITES" || name == "RUST_LOG"
}

/// `calsync` without any inherited [`is_configuration`] variable, stdin closed,
/// killed when dropped. Add arguments, variables and output handling.
pub fn calsync() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_calsync"));
    for (name, _) in std::env::vars_os() {
        if is_configuration(&name.to_string_lossy()) {
            command.env_remove(name);
        }
    }
    command.stdin(Stdio::null()).kill_on_drop(true);
    command
}

/// Sends `signal` (`"TERM"`, `"HUP"`, …) to a child, as systemd would; whether
/// it was delivered (not when the child has already been reaped).
pub fn signal(child: &tokio::process::Child, signal: &str) -> bool {
    let Some(pid) = child.id() else {
        return false;
    };
    std::process::Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .expect("running kill")
        .success()
}

/// A file of this repository (README, alert rules, dashboards, units).
pub fn repo_file(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}
