//! Progress bars that can be silenced (`--quiet`, `--json`).

use indicatif::{ProgressBar, ProgressStyle};

/// Creates progress bars, or hidden ones when quiet.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// When true, nothing is drawn.
    pub quiet: bool,
}

impl Progress {
    /// A progress reporter that draws nothing.
    pub fn hidden() -> Progress {
        Progress { quiet: true }
    }

    /// A bar of `length` steps labelled `message` (on standard error).
    pub fn bar(&self, length: u64, message: impl Into<String>) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(length);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>14} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta} {prefix}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(message.into());
        bar
    }
}
