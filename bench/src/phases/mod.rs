//! The bench's phases, one module each, named by the letter each is known
//! by (they run in the order of the letters; the crate docs say what each
//! measures).

pub mod batching; // H
pub mod chat; // E, E2
pub mod hold; // D
pub mod idle; // G
pub mod latency; // C
pub mod ratios; // A, A2
pub mod scaling; // B
pub mod targets;
pub mod trace; // I
pub mod translation; // F
