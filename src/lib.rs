//! ji-rs: an ev_sdk-compatible `libji.so` that classifies images with a TorchScript model,
//! with preprocessing that reproduces PIL + torchvision exactly.
//!
//! The safe core (config, class names, decode, resize, preprocess, model, output, engine)
//! never sees a raw pointer; `ffi` is the thin C layer over it.
//!
//! Every unsafe operation sits in its own `unsafe` block with a `SAFETY` note, also inside
//! `unsafe fn`s (the C entry points), so each one states what it relies on.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod awake;
pub mod class_names;
pub mod config;
pub mod cuda;
pub mod decode;
pub mod engine;
pub mod error;
pub mod ffi;
pub mod frame;
pub mod hugepages;
pub mod image;
pub mod metadata;
pub mod model;
pub mod output;
pub mod parallel;
pub mod preprocess;
pub mod resize;

pub use engine::Engine;
pub use error::{Error, Result};

/// The SDK's version, reported by `evsdk_version` and `ji_get_version`.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");
