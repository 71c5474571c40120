//! A running calsync against a fresh database and the simulator.
