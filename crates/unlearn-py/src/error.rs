//! The Python exception `unlearn.UnlearnError` and the two ways the bindings raise it: from a
//! library error (its one-line message) or with a message of their own.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    unlearn,
    UnlearnError,
    PyException,
    "An error of the unlearn library (bad input, unreadable file, diverged run), with its one-line message."
);

/// Turns a library error into `UnlearnError` with the library's one-line message.
pub(crate) fn fail(error: unlearn::Error) -> PyErr {
    UnlearnError::new_err(error.to_string())
}

/// `UnlearnError` with a message of the bindings' own.
pub(crate) fn invalid(message: impl Into<String>) -> PyErr {
    UnlearnError::new_err(message.into())
}
