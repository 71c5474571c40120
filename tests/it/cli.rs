//! The command line: exit codes, output formats, secrets.
