//! Cal.com API v2 client.
