//! The book package (being written).
