//! Cal.com client tests against a mock server.
