//! The test harness (being written).
