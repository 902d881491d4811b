//! One error type for the whole core; each variant knows the C status code it becomes.

use std::os::raw::c_int;

/// Status codes of the native `evsdk_*` API (also exported to C by `ffi::evsdk`).
pub mod code {
    use std::os::raw::c_int;
    pub(crate) const OK: c_int = 0;
    pub(crate) const INVALID_ARGUMENT: c_int = -1;
    pub(crate) const DECODE: c_int = -2;
    pub(crate) const CONFIG: c_int = -3;
    pub(crate) const MODEL_LOAD: c_int = -4;
    pub(crate) const INFERENCE: c_int = -5;
    pub(crate) const PANIC: c_int = -6;
    pub(crate) const IO: c_int = -7;
    pub(crate) const IMAGE_TOO_LARGE: c_int = -8;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A caller-supplied argument is unusable (NULL, bad size, bad args JSON, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The bytes are not an image we can decode.
    #[error("cannot decode image: {0}")]
    Decode(String),
    /// The image declares more pixels than `max_image_pixels` allows.
    #[error("image too large: {width}x{height} = {pixels} pixels exceeds the limit of {limit}")]
    ImageTooLarge {
        width: u64,
        height: u64,
        pixels: u64,
        limit: u64,
    },
    /// The config or class-names file is missing, malformed or inconsistent.
    #[error("config error: {0}")]
    Config(String),
    /// The TorchScript model cannot be loaded or does not fit the config.
    #[error("model load error: {0}")]
    ModelLoad(String),
    /// libtorch failed while running the model.
    #[error("inference error: {0}")]
    Inference(String),
    /// A file could not be read.
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
    /// A Rust panic was caught at the C boundary.
    #[error("internal error (panic): {0}")]
    Panic(String),
}

impl Error {
    /// The native API's status code for this error.
    pub fn code(&self) -> c_int {
        match self {
            Error::InvalidArgument(_) => code::INVALID_ARGUMENT,
            Error::Decode(_) => code::DECODE,
            Error::ImageTooLarge { .. } => code::IMAGE_TOO_LARGE,
            Error::Config(_) => code::CONFIG,
            Error::ModelLoad(_) => code::MODEL_LOAD,
            Error::Inference(_) => code::INFERENCE,
            Error::Io { .. } => code::IO,
            Error::Panic(_) => code::PANIC,
        }
    }

    /// A short machine-readable name for the error kind (used in JSON error objects).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) => "invalid_argument",
            Error::Decode(_) => "decode",
            Error::ImageTooLarge { .. } => "image_too_large",
            Error::Config(_) => "config",
            Error::ModelLoad(_) => "model_load",
            Error::Inference(_) => "inference",
            Error::Io { .. } => "io",
            Error::Panic(_) => "panic",
        }
    }

    pub(crate) fn io(path: &std::path::Path, err: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            message: err.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
