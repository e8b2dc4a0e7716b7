//! Progress bars that can be silenced (`--quiet`, `--json`).

use indicatif::{ProgressBar, ProgressStyle};
use std::cell::Cell;

/// Where a long run (the demo) is: the `index`-th of `count` phases, doing `what` (e.g.
/// `unlearning with finetune`). Bars made while a stage is set carry it in their label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    /// The phase's number, from 1.
    pub index: usize,
    /// Number of phases.
    pub count: usize,
    /// What the phase does.
    pub what: &'static str,
    /// The method (or model) concerned.
    pub method: &'static str,
}

thread_local! {
    static STAGE: Cell<Option<Stage>> = const { Cell::new(None) };
}

/// Sets the stage shown by the bars of this thread until the returned guard is dropped.
pub fn enter_stage(stage: Stage) -> StageGuard {
    let previous = STAGE.with(|cell| cell.replace(Some(stage)));
    StageGuard { previous }
}

/// Restores the previous stage when dropped (see [`enter_stage`]).
pub struct StageGuard {
    previous: Option<Stage>,
}

impl Drop for StageGuard {
    fn drop(&mut self) {
        STAGE.with(|cell| cell.set(self.previous));
    }
}

/// The label of a bar doing `message` in the current stage, e.g.
/// `[3/13] unlearning finetune: training`.
pub fn label(message: &str) -> String {
    match STAGE.with(Cell::get) {
        Some(stage) => format!(
            "[{}/{}] {} {}: {message}",
            stage.index, stage.count, stage.what, stage.method
        ),
        None => message.to_string(),
    }
}

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
                "{msg} [{bar:30}] {pos}/{len} steps {elapsed_precise} eta {eta} {prefix}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(label(&message.into()));
        bar
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_labels_bars_until_its_guard_drops() {
        assert_eq!(label("training"), "training");
        {
            let _stage = enter_stage(Stage {
                index: 3,
                count: 13,
                what: "unlearning",
                method: "finetune",
            });
            assert_eq!(
                label("unlearning"),
                "[3/13] unlearning finetune: unlearning"
            );
        }
        assert_eq!(label("training"), "training");
    }
}
