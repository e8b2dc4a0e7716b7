//! The library's error type: every failure a user can cause is a value, never a panic.

use std::path::Path;

/// Everything that can go wrong in `unlearn`, each with a one-line, human-readable message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    ///
    /// The message already ends with the I/O error, so it is not also returned as
    /// [`std::error::Error::source`]: printers that walk the source chain would say it twice.
    /// (thiserror makes a field named `source` the source, hence the name `cause`.)
    #[error("{path}: {cause}")]
    Io {
        /// The file concerned.
        path: String,
        /// The underlying I/O error.
        cause: std::io::Error,
    },
    /// A file was read but its content is not in the expected format.
    #[error("{path}: {reason}")]
    Format {
        /// The file concerned.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An argument or an input value is not acceptable (unknown id, empty forget set, ...).
    #[error("{0}")]
    Invalid(String),
    /// A model or tensor operation failed.
    #[error("{0}")]
    Model(String),
    /// The request contradicts one already recorded (an idempotency key reused with other
    /// ids): the service answers 409.
    #[error("{0}")]
    Conflict(String),
    /// The thing asked for does not exist (a request id, a store version, a model file that a
    /// store or manifest names): the service answers 404.
    #[error("{0}")]
    NotFound(String),
    /// The operation is well-formed but this model or store cannot honour it, by definition
    /// rather than by accident (a per-sample method on a BatchNorm network, a removal past the
    /// certified budget that may not retrain): a comparison records the row as not run, the
    /// service answers 422.
    #[error("{0}")]
    Refused(String),
    /// Two inputs that must belong together do not (a split or reference made from other data,
    /// a file whose hash is not the one recorded): never a number computed from them.
    #[error("{0}")]
    Mismatch(String),
    /// A training or unlearning loop stopped because its loss became non-finite or grew past
    /// the bound of `DivergenceGuard` (in `train`); no model is produced.
    #[error(
        "{phase} diverged at step {step}: loss {loss:.4e} (bound {bound:.4e}) at learning rate {learning_rate:.4e}; lower the learning rate"
    )]
    Diverged {
        /// What was running: `training` or `unlearning`.
        phase: &'static str,
        /// The step (from 0) whose loss crossed the bound.
        step: usize,
        /// That loss (possibly NaN or infinite).
        loss: f64,
        /// The bound it crossed.
        bound: f64,
        /// The learning rate of that step.
        learning_rate: f64,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            cause,
        }
    }

    /// A format error in the file at `path`.
    pub fn format(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        Error::Format {
            path: path.as_ref().display().to_string(),
            reason: reason.into(),
        }
    }

    /// An invalid argument or input.
    pub fn invalid(reason: impl Into<String>) -> Self {
        Error::Invalid(reason.into())
    }
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// An error and its causes on one line, outermost first, joined by ": "; a cause whose text
/// the message already holds (an error that prints its source) is not repeated. What the
/// command line prints after `error: `.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = String::new();
    let mut cause = Some(error);
    while let Some(current) = cause {
        let text = current.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        cause = current.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_says_its_cause_once() {
        let cause = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = Error::io("model.json", cause);
        assert_eq!(error.to_string(), "model.json: no such file");
        assert!(std::error::Error::source(&error).is_none());
    }

    /// An error with a context line over a cause, as `anyhow`'s `context` makes one.
    #[derive(Debug)]
    struct Context(&'static str, Error);
    impl std::fmt::Display for Context {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Context {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn an_error_chain_prints_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = Context("reading split", Error::io("m.json", io));
        assert_eq!(one_line(&error), "reading split: m.json: no such file");
        // A cause that its parent already displays is dropped.
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "outer: {}", self.0)
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        assert_eq!(one_line(&Outer(io)), "outer: gone");
    }
}
