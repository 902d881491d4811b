//! ji-rs: an ev_sdk-compatible `libji.so` that classifies images with a TorchScript model,
//! with preprocessing that reproduces PIL + torchvision exactly.
//!
//! The core (config, class names, decode, resize, preprocess, model, output, engine) works in
//! typed values; `ffi` is the thin C layer over it. Raw pointers appear in the core only where
//! it talks to C++ (libtorch modules in `jit`, the optimisation passes in `model`, the CUDA
//! backend in `cuda`, libtorch's thread team in `parallel`), each behind a safe type or
//! function.
//!
//! Every unsafe operation sits in its own `unsafe` block with a `SAFETY` note, also inside
//! `unsafe fn`s (the C entry points), so each one states what it relies on.

#![deny(unsafe_op_in_unsafe_fn)]

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
pub mod jit;
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
