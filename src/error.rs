//! One error type for the whole core; each variant knows the C status code it becomes. The
//! codes are defined here, once; `ffi::evsdk` exports them (cbindgen writes them into ji.h).

use std::os::raw::c_int;

/// Success.
pub const EVSDK_OK: c_int = 0;
/// A NULL pointer, a bad size, or `args` that is not a JSON object.
pub const EVSDK_ERR_INVALID_ARGUMENT: c_int = -1;
/// The bytes are not a decodable image (empty, truncated, unknown format).
pub const EVSDK_ERR_DECODE: c_int = -2;
/// The config or class-names file is missing, malformed or inconsistent (also: CUDA asked
/// for but not available).
pub const EVSDK_ERR_CONFIG: c_int = -3;
/// The model file cannot be loaded as TorchScript, fails on a probe input, or its output
/// width differs from the number of classes.
pub const EVSDK_ERR_MODEL_LOAD: c_int = -4;
/// libtorch failed while running the model.
pub const EVSDK_ERR_INFERENCE: c_int = -5;
/// An internal error (a caught Rust panic). The handle stays usable.
pub const EVSDK_ERR_PANIC: c_int = -6;
/// A file could not be read.
pub const EVSDK_ERR_IO: c_int = -7;
/// The image declares more pixels than the config's `max_image_pixels`.
pub const EVSDK_ERR_IMAGE_TOO_LARGE: c_int = -8;

#[derive(Clone, Debug, thiserror::Error)]
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
    /// The native API's status code for this error (the `EVSDK_ERR_*` constants above).
    pub fn code(&self) -> c_int {
        match self {
            Error::InvalidArgument(_) => EVSDK_ERR_INVALID_ARGUMENT,
            Error::Decode(_) => EVSDK_ERR_DECODE,
            Error::ImageTooLarge { .. } => EVSDK_ERR_IMAGE_TOO_LARGE,
            Error::Config(_) => EVSDK_ERR_CONFIG,
            Error::ModelLoad(_) => EVSDK_ERR_MODEL_LOAD,
            Error::Inference(_) => EVSDK_ERR_INFERENCE,
            Error::Io { .. } => EVSDK_ERR_IO,
            Error::Panic(_) => EVSDK_ERR_PANIC,
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
