//! What cloudha knows of each cloud's API, in one place for every program that talks to a cloud
//! (the `floatip` agent today): the HTTP transport (`api`: bearer and signed requests, error
//! bodies, rate-limit headers) and one module per cloud under `provider`.

pub mod api;
pub mod power;
pub mod provider;
