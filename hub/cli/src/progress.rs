//! Progress bars (indicatif) for generating and loading; quiet when stderr is not a terminal.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One bar at a time, re-armed for each phase.
pub struct Bar {
    bar: Mutex<Option<ProgressBar>>,
    quiet: bool,
}

impl Bar {
    pub fn new(quiet: bool) -> Self {
        Self {
            bar: Mutex::new(None),
            quiet,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.bar.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn arm(&self, what: &str, total: u64, unit: &str) {
        let bar = if self.quiet {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden())
        } else {
            ProgressBar::new(total)
        };
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{prefix:>24}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}} ({{elapsed}})"
            ))
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(what.to_string());
        *self.lock() = Some(bar);
    }
}

impl gridhub_synth::Progress for Bar {
    fn start(&self, what: &str, total: u64) {
        self.arm(what, total, "rows");
    }
    fn advance(&self, n: u64) {
        if let Some(b) = &*self.lock() {
            b.inc(n);
        }
    }
    fn finish(&self) {
        if let Some(b) = self.lock().take() {
            b.finish_and_clear();
        }
    }
}

impl gridhub_engine::Progress for Bar {
    fn start(&self, what: &str, total: u64) {
        self.arm(what, total, "steps");
    }
    fn step(&self, what: &str) {
        if let Some(b) = &*self.lock() {
            b.set_message(what.to_string());
            b.inc(1);
        }
    }
    fn finish(&self) {
        if let Some(b) = self.lock().take() {
            b.finish_and_clear();
        }
    }
}
