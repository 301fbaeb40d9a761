//! gridhub's end-to-end tests as one test binary (each module used to be its own binary,
//! each linking DataFusion, arrow and tonic): governed SQL as golden files, access and
//! security over the synthetic city, the server over Flight SQL and gRPC, the Python ADBC
//! client, faults, duties and the hub's behaviour around its data. nextest names each test
//! by its module: `it::security::small_leaks_are_closed`.

mod access;
mod adbc;
mod duties;
mod end_to_end;
mod errors;
mod faults;
mod golden_engine;
mod golden_sql;
mod hub_behaviour;
mod security;
mod server;
