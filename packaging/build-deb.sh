#!/usr/bin/env bash
# Builds the Debian package: $CARGO_TARGET_DIR/debian/calsync_<version>_<arch>.deb
# with the binary (/usr/bin/calsync), the systemd unit, the example config and
# environment file, the manual page, shell completions, the alert rules and the
# Grafana dashboard. Needs cargo-deb (installed from crates.io if missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/calsync-target}"

command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
cargo build --release --locked --bin calsync
bin="$(realpath -m "$CARGO_TARGET_DIR")/release/calsync"

# Generated assets (listed in Cargo.toml under [package.metadata.deb]).
rm -rf dist
mkdir -p dist/completions
"$bin" manpage | gzip -9n >dist/calsync.1.gz
"$bin" completions bash >dist/completions/calsync.bash
"$bin" completions zsh >dist/completions/_calsync
"$bin" completions fish >dist/completions/calsync.fish
# The unit in the repository runs a `cargo install --root /usr/local` binary;
# the package installs to /usr/bin.
sed 's#/usr/local/bin/calsync#/usr/bin/calsync#g' systemd/calsync.service >dist/calsync.service
grep -q '^ExecStart=/usr/bin/calsync ' dist/calsync.service

mkdir -p "$CARGO_TARGET_DIR/debian"
cargo deb --no-build --locked --strip --output "$CARGO_TARGET_DIR/debian/"
