//! Cal.com simulator.
