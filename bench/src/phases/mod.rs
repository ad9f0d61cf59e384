//! The bench's phases, one module each, in the order they run (see the
//! crate docs for what each measures).

pub mod chat; // E
pub mod hold; // D
pub mod idle; // G
pub mod latency; // C
pub mod ratios; // A, A2
pub mod scaling; // B
pub mod targets;
pub mod translation; // F
