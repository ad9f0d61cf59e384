//! # kq: the kqueue(2) API on every OS
//!
//! (crate docs are filled in below the API; see `README.md`)

#[cfg(target_os = "linux")]
mod capi;
#[cfg(target_os = "linux")]
pub mod linux;
mod safe;
mod sys;

pub use safe::Kqueue;
pub use sys::*;
